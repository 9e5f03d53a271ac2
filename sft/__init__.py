"""Supervised fine-tuning of the rewriter with TRL's ``SFTTrainer`` (``vlmguard.sft``).

``vlmguard sft --config configs/sft/tiny.yaml`` on one machine, or
``accelerate launch --config_file launch/accelerate/zero2.yaml -m vlmguard.sft --config FILE`` on several GPUs.
"""
from .train import build_trainer, main

__all__ = ["build_trainer", "main"]
