"""The SFT recipe: parse → data → model → trainer → train → save. ``python -m vlmguard.sft --config FILE``."""
from __future__ import annotations

from typing import Sequence

from vlmguard.backends.hf import absolute_local
from vlmguard.errors import VLMGuardError


def build_trainer(script_args, training_args, model_args):
    from transformers import AutoProcessor
    from trl import SFTTrainer, get_peft_config

    from vlmguard.export import ModelCardMixin
    from vlmguard.training import ResumeMixin, check_model_source, model_init_kwargs

    class RewriterSFTTrainer(ResumeMixin, ModelCardMixin, SFTTrainer):
        pass

    from .data import load_sft_dataset

    if not model_args.model_name_or_path:
        raise VLMGuardError("set model_name_or_path (the rewriter to fine-tune: a local folder or a hub id)")
    check_model_source(model_args.model_name_or_path, "model_name_or_path", " — give a local model folder (build "
                       "tiny ones with `vlmguard tiny --out DIR`) or a hub id that is in the cache, or unset "
                       "HF_HUB_OFFLINE to download it", model_args.model_revision)
    training_args.model_init_kwargs, quantization_config = model_init_kwargs(model_args, training_args)
    model_args.model_name_or_path = absolute_local(model_args.model_name_or_path)  # LoRA adapters record it
    dataset = load_sft_dataset(script_args.dataset_path, script_args.max_train_samples, script_args.validate_images)
    from vlmguard.perception import perceive_dataset, resolve_perception

    script_args.perception = resolve_perception(script_args.perception)
    if script_args.perception:
        dataset = perceive_dataset(dataset, script_args.perception)
    eval_dataset = None
    if script_args.eval_split_size > 0:
        split = dataset.train_test_split(test_size=script_args.eval_split_size, seed=training_args.seed)
        dataset, eval_dataset = split["train"], split["test"]
    processor = AutoProcessor.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision,
                                              trust_remote_code=training_args.trust_remote_code)
    if not hasattr(processor, "image_processor"):
        raise VLMGuardError(f"{model_args.model_name_or_path} has no image processor: the rewriter must be a VLM")
    return RewriterSFTTrainer(model=model_args.model_name_or_path, args=training_args, train_dataset=dataset,
                              eval_dataset=eval_dataset, processing_class=processor,
                              peft_config=get_peft_config(model_args), quantization_config=quantization_config)


def main(argv: Sequence[str] | None = None) -> None:
    import sys

    from trl import ModelConfig

    from vlmguard.config import parse_config
    from vlmguard.training import run_summary, train_and_save

    from .config import RewriterSFTConfig, SFTScriptArguments

    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, training_args, model_args = parse_config(
        [SFTScriptArguments, RewriterSFTConfig, ModelConfig], argv, "vlmguard sft")
    trainer = build_trainer(script_args, training_args, model_args)
    train_and_save(trainer, "vlmguard sft", argv, script_args, training_args, model_args)
    run_summary(trainer, "vlmguard sft")
