"""How a caught exception reads in an error record or a verifier's reason: one format everywhere."""
from __future__ import annotations


def error_detail(exc: BaseException, limit: int | None = 500, message_limit: int | None = None) -> str:
    """`TypeName: message`, the message cut at `message_limit` and the whole at `limit` characters
    (None: uncut). Bounded so that one huge message (a tensor's repr, a whole prompt) cannot bloat
    every row it lands in."""
    message = str(exc) if message_limit is None else str(exc)[:message_limit]
    text = f"{type(exc).__name__}: {message}"
    return text if limit is None else text[:limit]
