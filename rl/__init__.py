"""GRPO refinement of the rewriter with TRL's ``GRPOTrainer`` (``vlmguard.rl``).

``vlmguard grpo --config configs/grpo/tiny.yaml`` on one machine, or
``accelerate launch --config_file launch/accelerate/zero3.yaml -m vlmguard.rl --config FILE`` on a cluster.
Each sampled rewrite is answered by the frozen downstream VLM and scored by the rewards config.
"""
from .train import build_trainer, main

__all__ = ["build_trainer", "main"]
