"""SFT configuration: TRL's ``SFTConfig`` and ``ModelConfig`` plus the dataset arguments, from one YAML."""
from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig


@dataclass
class SFTScriptArguments:
    dataset_path: str = field(default=None, metadata={
        "help": "The SFT dataset: the `dataset/` folder `vlmguard synth` writes (prompt, completion, images)."})
    eval_split_size: float = field(default=0.0, metadata={
        "help": "Fraction of the dataset held out for evaluation (0 = none)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N rows."})
    perception: str | None = field(default=None, metadata={
        "help": "Train a text-only rewriter that reads images through the perception front end: each image becomes "
                "its description (ocr, nsfw or ocr,nsfw) in the prompt, and the output folder records it, so every backend "
                "loading the rewriter applies the same front end. For a language model with no trained vision tower."})
    validate_images: bool = field(default=True, metadata={
        "help": "Decode every image once before training, so a broken one is named up front."})


@dataclass
class RewriterSFTConfig(SFTConfig):
    """``trl.SFTConfig`` with defaults for the rewriter: bf16 only where the hardware has it (TRL's default of
    bf16=True fails on CPUs), and no truncation (``max_length=None``: truncating would cut image tokens)."""

    bf16: bool | None = field(default=None, metadata={"help": "bf16 mixed precision; default: where supported."})
    max_length: int | None = field(default=None, metadata={"help": "Truncate sequences to this many tokens."})

    def __post_init__(self) -> None:
        from vlmguard.training import auto_precision

        auto_precision(self)
        super().__post_init__()
