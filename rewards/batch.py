"""What a reward function receives from TRL, as one row per completion."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from vlmguard.chat import images, last_user, parts


@dataclass(frozen=True)
class Row:
    key: str
    """Identifies the sample (its ``id`` column, else a hash of instruction and image)."""
    instruction: str
    """The user's ORIGINAL instruction."""
    image: Any
    completion: str
    """The rewriter's output (for response-only scoring: empty)."""
    label: str | None = None
    answer: str | None = None
    """A downstream answer given with the data (``vlmguard rewards score`` on responses); else generated."""


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:  # conversational: [{"role": "assistant", "content": ...}]
        content = completion[-1].get("content") if isinstance(completion[-1], dict) else completion[-1]
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content or ""
    return ""


def _image_key(image: Any) -> str:
    if image is None:
        return "-"
    if hasattr(image, "tobytes"):
        return hashlib.md5(image.tobytes()).hexdigest()[:16]
    return hashlib.md5(str(image).encode()).hexdigest()[:16]


def rows_from_trl(prompts: Sequence[Any], completions: Sequence[Any], columns: dict[str, Any]) -> list[Row]:
    """Normalise TRL's reward arguments: the original instruction comes from an ``instruction`` column when the
    dataset has one, else from the prompt's last user turn; the image from ``image``/``images`` or the prompt."""
    n = len(completions)
    instructions = columns.get("instruction")
    listed = columns.get("user_images") or columns.get("images")  # user_images: a rewriter reading descriptions
    imgs = columns.get("image") or [(x or [None])[0] if isinstance(x, list) else x for x in listed or [None] * n]
    labels = columns.get("label") or [None] * n
    ids = columns.get("id")
    answers = columns.get("answer") or [None] * n
    rows = []
    for i in range(n):
        prompt = prompts[i] if i < len(prompts) else ""
        if isinstance(prompt, list):
            text, prompt_image = last_user(prompt)
            prompt_image = prompt_image if prompt_image is not None else (images(prompt) or [None])[0]
        else:
            text, prompt_image = str(prompt), None
        instruction = instructions[i] if instructions else text
        image = imgs[i] if imgs[i] is not None else prompt_image
        key = str(ids[i]) if ids else hashlib.md5(f"{instruction}\0{_image_key(image)}".encode()).hexdigest()
        rows.append(Row(key, instruction, image, _text(completions[i]), labels[i], answers[i]))
    return rows


__all__ = ["Row", "rows_from_trl", "parts"]
