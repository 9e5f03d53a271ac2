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
from typing import Any

from transformers import TrainerCallback

from .errors import VLMGuardError

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


def auto_precision(args) -> None:
    """bf16 where the GPU has it, fp32 on CPU (TRL's base config turns bf16 on unconditionally, which transformers
    then rejects on a CPU-only machine). Call before the TrainingArguments ``__post_init__``."""
    import torch

    if args.bf16 is None:
        args.bf16 = (not args.fp16) and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if not args.bf16 and not args.fp16:
        args.use_cpu = args.use_cpu or not torch.cuda.is_available()


def resolve_resume(output_dir: str, resume: str | None) -> str | bool | None:
    """``resume_from_checkpoint: true`` → the last checkpoint in output_dir (or a fresh start when there is none)."""
    from transformers.trainer_utils import get_last_checkpoint

    if resume is None or str(resume).lower() in ("false", "no", "0", ""):
        return None
    if str(resume).lower() in ("true", "last", "yes", "1"):
        last = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        if last is None:
            log.warning("resume_from_checkpoint is set but %s has no checkpoint: starting fresh", output_dir)
        return last
    if not os.path.isdir(resume):
        raise VLMGuardError(f"resume_from_checkpoint: {resume} is not a checkpoint folder")
    return resume


def model_init_kwargs(model_args, training_args) -> tuple[dict, Any]:
    """What TRL's own scripts build from ``trl.ModelConfig`` for loading the model: the ``from_pretrained`` kwargs
    (dtype, revision, attn_implementation, and the training config's trust_remote_code) under the config's own
    ``model_init_kwargs`` (which win, as in TRL's scripts), and the bitsandbytes config for ``load_in_4bit`` /
    ``load_in_8bit`` (None without), for the trainer's ``quantization_config``. Checks the quantization options
    here, before any model loads. Placement is TRL's (``create_model_from_path``: device_map "auto" on one process;
    distributed, None, which bitsandbytes maps to the process's own GPU); trl 1.16 has no ``get_kbit_device_map``."""
    kwargs = {"revision": model_args.model_revision, "trust_remote_code": training_args.trust_remote_code}
    if model_args.dtype is not None:
        kwargs["dtype"] = model_args.dtype
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    kwargs.update(training_args.model_init_kwargs or {})
    if model_args.load_in_4bit and model_args.load_in_8bit:
        raise VLMGuardError("set load_in_4bit or load_in_8bit, not both")
    if not (model_args.load_in_4bit or model_args.load_in_8bit):
        return kwargs, None
    import importlib.util

    import torch
    from trl import get_quantization_config

    flag = "load_in_4bit" if model_args.load_in_4bit else "load_in_8bit"
    missing = [what for what, ok in (("a CUDA GPU", torch.cuda.is_available()),
                                     ("bitsandbytes", importlib.util.find_spec("bitsandbytes") is not None)) if not ok]
    if missing:
        raise VLMGuardError(f"{flag}: bitsandbytes quantization needs a CUDA GPU and `pip install bitsandbytes` "
                            f"(missing here: {' and '.join(missing)})")
    if not model_args.use_peft:
        raise VLMGuardError(f"{flag} needs use_peft: true (QLoRA): a quantized model cannot be fully fine-tuned")
    if "quantization_config" in kwargs:
        raise VLMGuardError(f"{flag} and model_init_kwargs.quantization_config both set: keep one")
    return kwargs, get_quantization_config(model_args)


def check_model_source(name: str, what: str, hint: str = "", revision: str | None = None) -> None:
    """Fail early, in one line, when the model ``name`` cannot load: a local folder must hold a model + processor;
    anything else is a hub id, which offline (HF_HUB_OFFLINE) must already be in the Hugging Face cache. Online, an
    uncached hub id is left to transformers to download. ``hint`` is appended to the offline error."""
    from pathlib import Path

    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    from .backends.hf import check_model_dir

    if Path(name).expanduser().exists():
        check_model_dir(name)
        return
    if name.startswith(("/", ".", "~")):
        raise VLMGuardError(f"{what} {name!r} is not a local folder (no such path){hint}")
    try:
        cached = try_to_load_from_cache(name, "config.json", revision=revision)
    except HFValidationError:  # e.g. a/b/c: neither a folder here nor a hub id
        raise VLMGuardError(f"{what} {name!r} is not a local folder and not a valid hub id{hint}") from None
    if not isinstance(cached, str) and constants.HF_HUB_OFFLINE:
        raise VLMGuardError(f"{what} {name!r} is not a local folder and not in the Hugging Face cache "
                            f"(offline mode){hint}")


class PerceptionFileCallback(TrainerCallback):
    """Writes the rewriter's perception record into each ``checkpoint-N`` as it is saved, so loading (eval, serve,
    export) a checkpoint applies the same image front end as the final folder — without it a checkpoint of a
    perceiving rewriter would silently read images through its untrained vision tower."""

    def __init__(self, components: str):
        self.components = components

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from .perception import write_perception_file

            write_perception_file(os.path.join(args.output_dir, f"checkpoint-{state.global_step}"), self.components)


def train_and_save(trainer, prog: str, argv, script_args, training_args, model_args) -> None:
    """What every recipe does after building its trainer: record the recipe (for the model card `vlmguard
    export` writes), train (resuming from the last checkpoint), save model or adapter + processor, push."""
    from .export import save_run_config

    out = training_args.output_dir
    if trainer.accelerator.is_main_process:
        save_run_config(out, prog, argv, script_args, training_args, model_args)
    if getattr(script_args, "perception", None):  # every checkpoint-N serves and exports like the final folder
        trainer.add_callback(PerceptionFileCallback(script_args.perception))
    resume = resolve_resume(out, training_args.resume_from_checkpoint)
    rewards = getattr(trainer, "vlmguard_rewards", None)
    if resume and rewards is not None:  # GRPO: constrained rewards continue their multipliers exactly
        from .rewards.lagrangian import load_states

        load_states(rewards.funcs, resume)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(out)
    if trainer.accelerator.is_main_process:
        from .threshold import forget_threshold

        forget_threshold(out)  # a threshold recorded for the weights just replaced no longer applies
        trainer.processing_class.save_pretrained(out)
        if getattr(script_args, "perception", None):  # loading the folder applies the same front end
            from .perception import write_perception_file

            write_perception_file(out, script_args.perception)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_path)  # collective: every process calls it


def run_summary(trainer, prog: str, extra: str = "") -> None:
    """One closing line on the main process: steps, processes, distribution and where the model went. Then, when
    several processes ran, each waits for the others and ends the run (accelerate's ``end_training``: trackers
    finished, process group destroyed): a process that exits first with its group alive can abort in teardown
    ("terminate called without an active exception", seen once on 2 CPU processes) and fail the whole launch."""
    acc = trainer.accelerator
    if acc.is_main_process:
        plugin = acc.state.deepspeed_plugin
        print(f"{prog}: {trainer.state.global_step} steps on {acc.num_processes} process(es), "
              f"{acc.distributed_type.value}" + (f" ZeRO-{plugin.zero_stage}" if plugin else "")
              + f"; saved to {trainer.args.output_dir}" + (f"; {extra}" if extra else ""), flush=True)
    if acc.num_processes > 1:
        acc.wait_for_everyone()
        acc.end_training()


def cli_entry(main, prog: str) -> None:
    """``python -m vlmguard.sft`` / ``vlmguard.rl``: run ``main`` and print a VLMGuardError as one line."""
    import sys

    from .logs import setup_logging

    try:
        setup_logging()  # level from env VLMGUARD_LOG_LEVEL (default info)
        main()
    except VLMGuardError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(1)
