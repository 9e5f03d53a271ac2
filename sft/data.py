"""Loading and checking the SFT dataset before any training starts."""
from __future__ import annotations

from pathlib import Path

from vlmguard.errors import VLMGuardError
from vlmguard.format import parse

REQUIRED = ("prompt", "completion", "images")


def load_sft_dataset(path: str | None, max_samples: int | None = None, validate_images: bool = True):
    """The dataset at ``path`` (a ``save_to_disk`` folder), checked: columns, message shapes, images, targets."""
    from datasets import DatasetDict, load_from_disk

    if not path:
        raise VLMGuardError("set dataset_path to the dataset folder written by `vlmguard synth` (OUT/dataset)")
    if not Path(path).is_dir():
        raise VLMGuardError(f"SFT dataset not found: {path} (run `vlmguard synth` first; it writes OUT/dataset)")
    try:
        ds = load_from_disk(path)
    except (FileNotFoundError, ValueError) as e:
        raise VLMGuardError(f"{path} is not a dataset folder saved by `datasets` ({e})") from e
    if isinstance(ds, DatasetDict):
        ds = ds["train"] if "train" in ds else ds[next(iter(ds))]
    missing = [c for c in REQUIRED if c not in ds.column_names]
    if missing:
        raise VLMGuardError(f"{path} lacks column(s) {', '.join(missing)}; an SFT dataset has prompt (messages), "
                            f"completion (assistant message) and images — build it with `vlmguard synth`")
    if len(ds) == 0:
        raise VLMGuardError(f"{path} has no rows (did every sample get dropped? see the synth summary.json)")
    if max_samples is not None:
        ds = ds.select(range(min(max_samples, len(ds))))
    bad_targets = 0
    for i, row in enumerate(ds.select_columns(["prompt", "completion"])):
        for col in ("prompt", "completion"):
            msgs = row[col]
            if not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                                     for m in msgs):
                raise VLMGuardError(f"{path} row {i}: column {col!r} must be a list of {{role, content}} messages")
        if msgs[-1]["role"] != "assistant":
            raise VLMGuardError(f"{path} row {i}: the completion must be an assistant message")
        bad_targets += not parse(msgs[-1]["content"]).ok
    if bad_targets:
        raise VLMGuardError(f"{path}: {bad_targets} completion(s) are not well-formed <threat>/<intent>/<prompt> "
                            f"text; rebuild the dataset with `vlmguard synth` or fix them (vlmguard.format.render)")
    if validate_images:
        from datasets import Image, Sequence

        raw = ds.cast_column("images", Sequence(Image(decode=False)))
        from vlmguard.images import load_image

        for i, row in enumerate(raw.select_columns(["images"])):
            for j, cell in enumerate(row["images"]):
                try:
                    load_image(cell.get("bytes") or cell.get("path"))
                except VLMGuardError as e:
                    raise VLMGuardError(f"{path} row {i} images[{j}]: {e}") from None
    return ds
