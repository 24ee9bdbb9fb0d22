"""One self-contained HTML page per job: headline numbers, small tables and the job's PNGs.

Images are inlined as base64 so the page can be mailed or attached to a ticket on its own.
Plain string templating on purpose: a report this small does not justify a templating dependency.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:12px}"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return html.escape(json.dumps(value))
    return html.escape("" if value is None else str(value))


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html_report(
    path: Path,
    title: str,
    headline: Mapping[str, Any],
    tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    images: Sequence[Path] = (),
    raw: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write `path` (an .html file): headline key/values, titled tables, inlined PNGs, the raw JSON."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", _table([{"metric": k, "value": v} for k, v in headline.items()])]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    for name, rows in (tables or {}).items():
        parts += [f"<h2>{html.escape(name)}</h2>", _table(rows)]
    for img in images:
        data = base64.b64encode(Path(img).read_bytes()).decode()
        parts += [f"<h2>{html.escape(Path(img).stem)}</h2>", f"<img alt='{html.escape(Path(img).name)}' src='data:image/png;base64,{data}'>"]
    if raw is not None:
        parts += ["<h2>summary.json</h2>", f"<pre>{html.escape(json.dumps(raw, indent=2, default=str))}</pre>"]
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
