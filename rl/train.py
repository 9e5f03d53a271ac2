"""The GRPO recipe: parse → data → rewards → trainer → train → save. ``python -m vlmguard.rl --config FILE``."""
from __future__ import annotations

import sys
from typing import Sequence

from vlmguard.backends.hf import absolute_local
from vlmguard.errors import VLMGuardError


def build_trainer(script_args, training_args, model_args):
    from transformers import AutoProcessor
    from trl import GRPOTrainer, get_peft_config

    from vlmguard.export import ModelCardMixin
    from vlmguard.prompts import load_prompt
    from vlmguard.rewards import build_rewards
    from vlmguard.rewards.lagrangian import LagrangianReward, checkpoint_callback
    from vlmguard.training import ResumeMixin, check_model_source, model_init_kwargs

    from .data import load_prompts
    from .plots import RewardCurveCallback

    class RewriterGRPOTrainer(ResumeMixin, ModelCardMixin, GRPOTrainer):
        pass

    if not model_args.model_name_or_path:
        raise VLMGuardError("set model_name_or_path (the rewriter to refine: an SFT output folder or a hub id)")
    if not script_args.rewards_config:
        raise VLMGuardError("set rewards_config to a rewards YAML (see configs/rewards/)")
    check_model_source(model_args.model_name_or_path, "model_name_or_path", " — if it is the SFT output this recipe "
                       "starts from, train it first (e.g. vlmguard sft --config configs/sft/tiny.yaml --output_dir "
                       f"{model_args.model_name_or_path})", model_args.model_revision)
    training_args.model_init_kwargs, quantization_config = model_init_kwargs(model_args, training_args)
    model_args.model_name_or_path = absolute_local(model_args.model_name_or_path)  # LoRA adapters record it
    rewards = build_rewards(script_args.rewards_config)  # unknown rewards and dead servers fail here, first
    if training_args.reward_weights is None:
        training_args.reward_weights = rewards.weights
    elif len(training_args.reward_weights) != len(rewards.funcs):
        raise VLMGuardError(f"reward_weights has {len(training_args.reward_weights)} values but the rewards config "
                            f"defines {len(rewards.funcs)} rewards ({', '.join(rewards.names)}); set weights there")
    dataset = load_prompts(script_args.dataset_path, load_prompt(script_args.rewriter_system),
                           script_args.image_size, script_args.max_train_samples)
    from vlmguard.perception import perceive_dataset, resolve_perception

    # the option, else what the rewriter's folder records (an SFT rewriter trained with perception)
    script_args.perception = resolve_perception(script_args.perception, model_args.model_name_or_path)
    if script_args.perception:
        dataset = perceive_dataset(dataset, script_args.perception, keep_images_as="user_images")
    processor = AutoProcessor.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision,
                                              trust_remote_code=training_args.trust_remote_code)
    callbacks = [RewardCurveCallback()] if script_args.plot else []
    if any(isinstance(f, LagrangianReward) for f in rewards.funcs):
        callbacks.append(checkpoint_callback(rewards.funcs))  # the multipliers go into every checkpoint
    trainer = RewriterGRPOTrainer(model=model_args.model_name_or_path, reward_funcs=rewards.funcs, args=training_args,
                                  train_dataset=dataset, processing_class=processor,
                                  peft_config=get_peft_config(model_args), quantization_config=quantization_config,
                                  callbacks=callbacks)
    trainer.vlmguard_rewards = rewards
    return trainer


def main(argv: Sequence[str] | None = None):
    from trl import ModelConfig

    from vlmguard.config import parse_config
    from vlmguard.training import run_summary, train_and_save

    from .config import GRPOScriptArguments, RewriterGRPOConfig

    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, training_args, model_args = parse_config(
        [GRPOScriptArguments, RewriterGRPOConfig, ModelConfig], argv, "vlmguard grpo")
    trainer = build_trainer(script_args, training_args, model_args)
    train_and_save(trainer, "vlmguard grpo", argv, script_args, training_args, model_args)
    counters = {k: dict(v) for k, v in trainer.vlmguard_rewards.context.counters.items()}
    run_summary(trainer, "vlmguard grpo", f"reward counters {counters}")
    return trainer
