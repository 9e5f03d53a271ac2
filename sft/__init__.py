"""Supervised fine-tuning of the rewriter with TRL's ``SFTTrainer`` (``vlmguard.sft``)."""
