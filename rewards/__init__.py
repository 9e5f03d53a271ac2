"""Reward functions for GRPO, their registry and combination (``vlmguard.rewards``)."""
