"""GRPO prompts: the rewriter's input (system prompt + user instruction) with its image and metadata columns."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmguard.errors import VLMGuardError


def load_prompts(path: str | None, system: str, image_size: int | None, max_samples: int | None = None):
    """A ``datasets.Dataset`` with ``prompt`` (messages), ``images``, ``instruction``, ``label``, ``category``, ``id``.

    An SFT dataset folder is reused as is (minus its completions); record-schema files are turned into the same
    shape. Images are resized to ``image_size`` squares so that every prompt has the same image-token count."""
    from datasets import Dataset, Features, Image, Sequence, Value, load_from_disk

    if not path:
        raise VLMGuardError("set dataset_path (an SFT dataset folder or samples in the record schema)")
    p = Path(path)
    if p.is_dir() and (p / "dataset_info.json").is_file():
        ds = load_from_disk(str(p))
        missing = [c for c in ("prompt", "images") if c not in ds.column_names]
        if missing:
            raise VLMGuardError(f"{p} lacks column(s) {', '.join(missing)}: a GRPO dataset has prompt and images")
        ds = ds.remove_columns([c for c in ("completion",) if c in ds.column_names])
        if "instruction" not in ds.column_names:
            ds = ds.map(lambda r: {"instruction": next((m["content"] for m in reversed(r["prompt"])
                                                        if m["role"] == "user"), "")})
    else:
        from vlmguard.guard import rewriter_messages
        from vlmguard.images import load_image
        from vlmguard.schema import load_samples

        rows: list[dict[str, Any]] = []
        for s in load_samples(p, max_samples):
            image = load_image(s.image_path()) if s.image is not None else None
            rows.append({"id": s.id, "prompt": rewriter_messages(s.instruction, system),
                         "images": [image] if image is not None else [], "instruction": s.instruction,
                         "label": s.label or "", "category": s.category or ""})
        message = [{"role": Value("string"), "content": Value("string")}]
        ds = Dataset.from_list(rows, features=Features({
            "id": Value("string"), "prompt": message, "images": Sequence(Image()), "instruction": Value("string"),
            "label": Value("string"), "category": Value("string")}))
    if max_samples is not None:
        ds = ds.select(range(min(max_samples, len(ds))))
    if image_size:
        def resize(row: dict[str, Any]) -> dict[str, Any]:
            return {"images": [im.convert("RGB").resize((image_size, image_size)) for im in row["images"]]}
        ds = ds.map(resize)
    return ds
