"""The SFT dataset: TRL's conversational prompt-completion form with an ``images`` column.

``prompt`` is the rewriter's input (its system prompt, then the user's instruction; TRL inserts the image
placeholder before the user text), ``completion`` the rendered ``<threat>/<intent>/<prompt>`` target, and
``images`` the user's image. The same ``prompt`` + ``images`` columns feed GRPO.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..guard import rewriter_messages
from ..images import fit, load_image


def sft_row(record_id: str, instruction: str, image: Any, target: str, system: str, **extra: Any) -> dict[str, Any]:
    return {"id": record_id,
            "prompt": rewriter_messages(instruction, system),
            "completion": [{"role": "assistant", "content": target}],
            "images": [image] if image is not None else [], **extra}


def save_sft_dataset(records: list[dict[str, Any]], path: Path, system: str, max_image_side: int | None) -> int:
    """Write the kept records as a ``datasets`` folder; returns the number of rows."""
    from datasets import Dataset, Features, Image, Sequence, Value

    rows = []
    for r in records:
        if r["status"] != "kept":
            continue
        s = r["sample"]
        image = fit(load_image(s["image"]), max_image_side) if s.get("image") else None
        rows.append(sft_row(r["id"], s["instruction"], image, r["target"], system,
                            label=s.get("label") or "", category=s.get("category") or ""))
    message = [{"role": Value("string"), "content": Value("string")}]
    features = Features({"id": Value("string"), "prompt": message, "completion": message,
                         "images": Sequence(Image()), "label": Value("string"), "category": Value("string")})
    ds = Dataset.from_list(rows, features=features) if rows else Dataset.from_dict(
        {k: [] for k in features}, features=features)
    ds.save_to_disk(str(path))
    return len(rows)
