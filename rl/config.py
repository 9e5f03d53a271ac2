"""GRPO configuration: TRL's ``GRPOConfig`` and ``ModelConfig`` plus data and rewards, from one YAML."""
from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig


@dataclass
class GRPOScriptArguments:
    dataset_path: str = field(default=None, metadata={
        "help": "Prompts: an SFT dataset folder (its completions are ignored) or samples in the record schema "
                "(.json/.jsonl/.parquet). Columns such as label and category reach the reward functions."})
    rewards_config: str = field(default=None, metadata={
        "help": "Rewards YAML (configs/rewards/*.yaml): reward functions, weights, gates, target and judges."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N prompts."})
    image_size: int | None = field(default=448, metadata={
        "help": "Resize every image to this square size first, so HF and vLLM agree on image-token counts "
                "(TRL #6401); None keeps the originals."})
    perception: str | None = field(default=None, metadata={
        "help": "Rewriter prompts with image descriptions instead of images (see the SFT option); default: what the "
                "model folder records (an SFT rewriter trained with perception), 'none' to turn it off. The "
                "downstream target still receives the image."})
    rewriter_system: str = field(default="rewriter_system", metadata={
        "help": "System prompt for prompts built from record-schema samples (name or path)."})
    plot: bool = field(default=True, metadata={"help": "Write reward_curves.png into output_dir at the end."})


@dataclass
class RewriterGRPOConfig(GRPOConfig):
    """``trl.GRPOConfig`` with bf16 only where the hardware has it (TRL's default bf16=True fails on CPUs)."""

    bf16: bool | None = field(default=None, metadata={"help": "bf16 mixed precision; default: where supported."})

    def __post_init__(self) -> None:
        from vlmguard.training import auto_precision

        auto_precision(self)
        super().__post_init__()
