"""What the TRL trainers need from us that transformers gets wrong: resuming a full fine-tune of a model
whose checkpoint keys are renamed on save.

transformers 5 saves Qwen2.5-VL (and other converted architectures) in the original hub key layout
(``model.layers.*``, ``visual.*``) but ``Trainer._load_from_checkpoint`` loads that file raw into the renamed
modules (``model.language_model.*``): every key misses, the load is non-strict, and training "resumes" from
the initial weights with only a warning. ``ResumeMixin`` loads full checkpoints through ``from_pretrained``,
which applies the key conversion, and then fails loudly on any mismatch.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class ResumeMixin:
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = model if model is not None else self.model
        full = any(os.path.isfile(os.path.join(resume_from_checkpoint, f))
                   for f in ("model.safetensors", "model.safetensors.index.json"))
        if not full or getattr(self, "is_fsdp_enabled", False) or hasattr(model, "peft_config"):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        import torch

        loaded = type(model).from_pretrained(resume_from_checkpoint, dtype=next(model.parameters()).dtype,
                                             device_map="cpu")
        with torch.no_grad():
            result = model.load_state_dict(loaded.state_dict(), strict=True)
        del loaded
        log.info("resumed weights from %s (%s)", resume_from_checkpoint, result)
