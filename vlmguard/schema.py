"""The one record schema every loader produces and every stage consumes, and loaders for user files.

A sample: ``id``, ``image`` (path relative to its data file, URL, or PIL), ``instruction``, and optional
``safe_response``, ``unsafe_response``, ``label`` (``benign`` / ``harmful``), ``category``, ``source``.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from .errors import VLMGuardError
from .images import ImageLike

LABELS = {"benign": "benign", "safe": "benign", "harmless": "benign", "0": "benign", "false": "benign",
          "harmful": "harmful", "unsafe": "harmful", "1": "harmful", "true": "harmful"}
SCHEMA_HELP = ("each sample needs 'instruction' (text) and usually 'image' (a path relative to the data file), "
               "and may have 'id', 'safe_response', 'unsafe_response', 'label' (benign/harmful), 'category', 'source'")


@dataclass
class Sample:
    id: str
    image: ImageLike | None
    instruction: str
    safe_response: str | None = None
    unsafe_response: str | None = None
    label: str | None = None
    category: str | None = None
    source: str | None = None
    base_dir: str | None = None
    """Folder that relative image paths are resolved against (the data file's folder)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields outside the schema, kept for the stages that use them (``rewrite``, ``response``, ``gold``…)."""

    @property
    def harmful(self) -> bool:
        return self.label == "harmful"

    def image_path(self) -> ImageLike | None:
        """The image with relative paths resolved (what to hand to a backend)."""
        if isinstance(self.image, str) and self.base_dir and not self.image.startswith(("data:", "http://",
                                                                                          "https://", "/")):
            return str(Path(self.base_dir) / self.image)
        return self.image

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("base_dir")
        if not d["extra"]:
            d.pop("extra")
        d["image"] = self.image_path() if not hasattr(self.image, "size") else None
        return d

    @classmethod
    def from_dict(cls, row: dict[str, Any], where: str, base_dir: str | None = None) -> "Sample":
        """Validate one row; errors name ``where`` (file and row) and the field."""
        if not isinstance(row, dict):
            raise VLMGuardError(f"{where}: a sample must be a mapping of fields, got {type(row).__name__}")
        instruction = row.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            what = "missing field 'instruction'" if instruction is None else "field 'instruction' must be non-empty text"
            raise VLMGuardError(f"{where}: {what}; {SCHEMA_HELP}")
        for key in ("safe_response", "unsafe_response", "category", "source"):
            if row.get(key) is not None and not isinstance(row[key], str):
                raise VLMGuardError(f"{where}: field {key!r} must be text, got {type(row[key]).__name__}")
        label = row.get("label")
        if label is not None:
            label = LABELS.get(str(label).strip().lower())
            if label is None:
                raise VLMGuardError(f"{where}: field 'label' is {row['label']!r}; use 'benign' or 'harmful'")
        image = row.get("image")
        if isinstance(image, dict) and ("bytes" in image or "path" in image):  # a datasets Image() cell
            image = image.get("bytes") or image.get("path")
        if image is not None and not isinstance(image, (str, bytes)) and not hasattr(image, "size"):
            raise VLMGuardError(f"{where}: field 'image' must be a path, URL or image, got {type(image).__name__}")
        sid = row.get("id")
        return cls(id=str(sid) if sid is not None else where, image=image, instruction=instruction,
                   safe_response=row.get("safe_response") or None, unsafe_response=row.get("unsafe_response") or None,
                   label=label, category=row.get("category"), source=row.get("source"), base_dir=base_dir,
                   extra={k: v for k, v in row.items() if k not in _FIELDS})


def _rows(path: Path) -> Iterable[tuple[int, Any]]:
    suffix = path.suffix.lower()
    if path.is_dir():
        from datasets import load_from_disk

        try:
            ds = load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as e:
            raise VLMGuardError(f"{path} is a folder but not a dataset saved with `datasets` save_to_disk: {e}") from e
        if hasattr(ds, "keys"):  # DatasetDict: take 'train' or the only split
            split = "train" if "train" in ds else next(iter(ds))
            ds = ds[split]
        yield from enumerate(ds)
    elif suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if line.strip():
                    try:
                        yield i, json.loads(line)
                    except json.JSONDecodeError as e:
                        raise VLMGuardError(f"{path} line {i + 1} is not valid JSON ({e.msg}): fix or remove it") from e
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise VLMGuardError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from e
        if isinstance(data, dict):
            data = data.get("samples", data.get("data", data))
        if isinstance(data, dict):  # keyed by id
            data = [{"id": k, **v} if isinstance(v, dict) else v for k, v in data.items()]
        if not isinstance(data, list):
            raise VLMGuardError(f"{path}: expected a JSON list of samples (or an object keyed by id)")
        yield from enumerate(data)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from enumerate(pq.read_table(path).to_pylist())
    else:
        raise VLMGuardError(f"{path}: unsupported data file; use .json, .jsonl, .parquet or a `datasets` folder")


def load_samples(path: str | os.PathLike, limit: int | None = None) -> list[Sample]:
    """Read samples in the record schema from JSON / JSONL / Parquet / a ``datasets`` folder.

    Relative image paths resolve against the file's folder. Duplicate ids are an error (resumable stages key
    their work by id)."""
    path = Path(path)
    if not path.exists():
        raise VLMGuardError(f"data not found: {path}")
    base = str(path.resolve().parent)  # a `datasets` folder counts as a file: paths are relative to its parent
    samples, seen = [], {}
    for i, row in _rows(path):
        where = f"{path.name} row {i}"
        s = Sample.from_dict(row, where, base)
        if s.id == where:
            s.id = f"{path.stem}-{i}"
        if s.id in seen:
            raise VLMGuardError(f"{where}: duplicate id {s.id!r} (also {seen[s.id]}); ids must be unique")
        seen[s.id] = where
        samples.append(s)
        if limit is not None and len(samples) >= limit:
            break
    if not samples:
        raise VLMGuardError(f"{path} holds no samples")
    return samples


_FIELDS = {f.name for f in fields(Sample)} - {"base_dir", "extra"}
