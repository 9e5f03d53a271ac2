"""GRPO refinement of the rewriter with TRL's ``GRPOTrainer`` (``vlmguard.rl``)."""
