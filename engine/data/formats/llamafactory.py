"""LLaMA-Factory SFT JSONL (sharegpt style) plus the dataset_info.json entry that describes it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from engine.data.formats.common import export_images
from engine.data.images import ImagePolicy
from engine.data.sample import Sample
from engine.model.chat import DEFAULT_RESPONSE_TEMPLATE, format_response


def write(samples: Sequence[Sample], out_path: str | Path, policy: ImagePolicy | None = None, response_template: str = DEFAULT_RESPONSE_TEMPLATE, dataset_name: str = "gradus_sft", **_) -> list[Path]:
    out = Path(out_path)
    img_dir = out.parent / "images"
    out.parent.mkdir(parents=True, exist_ok=True)
    policy = policy or ImagePolicy()
    with out.open("w", encoding="utf-8") as fh:
        for s in samples:
            paths = export_images(s, img_dir, policy)
            messages = [{"role": m.role, "content": m.content} for m in s.prompt_messages]
            messages.append({"role": "assistant", "content": format_response(s.answer, response_template)})
            fh.write(json.dumps({"messages": messages, "images": paths}, ensure_ascii=False) + "\n")
    info = {
        dataset_name: {
            "file_name": out.name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant", "system_tag": "system"},
        }
    }
    info_path = out.parent / "dataset_info.json"
    info_path.write_text(json.dumps(info, indent=2))
    return [out, info_path, img_dir]
