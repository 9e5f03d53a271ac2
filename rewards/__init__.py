"""Reward functions for GRPO, their registry and their combination (``vlmguard.rewards``).

Every reward has TRL's signature ``fn(prompts, completions, completion_ids, **columns) -> list[float | None]``
and is async, so TRL runs them concurrently; those that need the downstream answer share one generation per
(sample, refined prompt) per step through a :class:`RewardContext`. A YAML block names them::

    target: openai:http://127.0.0.1:8001/v1?model=Qwen/Qwen2.5-VL-7B-Instruct   # answers the refined prompts
    fallback: original               # what an unparseable rewrite sends (vlmguard.format)
    answer_max_new_tokens: 256
    rewards:
      format: {weight: 0.5}
      intent: {weight: 0.5}                                   # sentence-embedding similarity
      safety: {weight: 1.0, judge: {type: llama_guard, model: "openai:http://127.0.0.1:8002/v1?model=meta-llama/Llama-Guard-3-8B"}}
      safety_rubric: {type: safety, weight: 0.5, judge: "hf:…", image: false}   # a second safety judge
      helpfulness: {weight: 1.0, judge: "hf:…", gate: safety, gate_min: 0.5}
      my_pkg.my_rewards:brevity: {weight: 0.1}               # any TRL-style function by module:function
      # constrained: {type: lagrangian, objective: helpfulness, cost: safety, threshold: 0.1}  (rewards.lagrangian)
"""
from __future__ import annotations

import difflib
import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vlmguard.errors import VLMGuardError

from .base import Reward
from .context import RewardContext
from .intent import IntentReward
from .judged import HelpfulnessReward, OverRefusalReward, SafetyReward
from .lagrangian import LagrangianReward
from .rules import FormatReward, LengthReward

REGISTRY: dict[str, Any] = {cls.name: cls for cls in (FormatReward, LengthReward, SafetyReward, HelpfulnessReward,
                                                      OverRefusalReward, IntentReward, LagrangianReward)}
log = logging.getLogger(__name__)
CONFIG_KEYS = ("target", "fallback", "answer_max_new_tokens", "rewards")


def register(name: str) -> Callable:
    """Decorator: make a Reward subclass or a TRL-style function available by ``name`` in configs (a Reward
    subclass takes that name too, unless an entry names it: ``mine_a: {type: NAME}``, ``mine_b: {type: NAME}``)."""
    def wrap(obj):
        if isinstance(obj, type) and issubclass(obj, Reward) and "name" not in vars(obj):
            obj.name = name
        REGISTRY[name] = obj
        return obj
    return wrap


@dataclass
class RewardsConfig:
    rewards: dict[str, dict[str, Any]]
    """Entry name → options. ``type`` names the reward (registry name or ``module:function``) and defaults to
    the entry's name, so ``safety: {...}`` and ``safety_guard: {type: safety, ...}`` both work."""
    target: str | None = None
    fallback: str = "original"
    answer_max_new_tokens: int = 256
    source: str = field(default="<config>", repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "RewardsConfig":
        import yaml

        path = Path(path)
        if not path.is_file():
            raise VLMGuardError(f"rewards config not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise VLMGuardError(f"{path}: not valid YAML: {e}") from None
        if isinstance(data, dict) and "rewards_config" in data and "rewards" not in data:
            data = data["rewards_config"]  # a block inside a larger recipe
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<config>") -> "RewardsConfig":
        from vlmguard.format import FALLBACKS

        if not isinstance(data, dict) or not isinstance(data.get("rewards"), dict) or not data["rewards"]:
            raise VLMGuardError(f"{source}: a rewards config is a mapping with `rewards: {{name: {{weight: …}}, …}}`")
        unknown = sorted(set(data) - set(CONFIG_KEYS))
        if unknown:
            raise VLMGuardError(f"{source}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(CONFIG_KEYS)}")
        rewards = {}
        for name, opts in data["rewards"].items():
            if opts is not None and not isinstance(opts, dict):
                raise VLMGuardError(f"{source}: rewards.{name} must be a mapping of options, got {opts!r}")
            rewards[str(name)] = dict(opts or {})
        fallback = data.get("fallback", "original")
        if fallback not in FALLBACKS:
            raise VLMGuardError(f"{source}: fallback {fallback!r} is not one of {', '.join(FALLBACKS)}")
        target = data.get("target")
        if target is not None and not isinstance(target, str):
            raise VLMGuardError(f"{source}: target must be a backend spec string, got {target!r}")
        tokens = data.get("answer_max_new_tokens", 256)
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise VLMGuardError(f"{source}: answer_max_new_tokens must be a positive integer, got {tokens!r}")
        return cls(rewards=rewards, target=target, fallback=fallback, answer_max_new_tokens=tokens, source=source)


def _resolve(name: str) -> Any:
    if name in REGISTRY:
        return REGISTRY[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise VLMGuardError(f"cannot import reward {name!r} ({e}): write it as package.module:function") from e
    close = difflib.get_close_matches(name, REGISTRY, n=1)
    raise VLMGuardError(f"unknown reward {name!r}" + (f" (did you mean {close[0]}?)" if close else "") +
                        f"; known: {', '.join(sorted(REGISTRY))}, or a module:function path")


@dataclass
class RewardSet:
    """The built rewards: pass ``funcs`` and ``weights`` to ``GRPOTrainer(reward_funcs=…, args.reward_weights=…)``."""

    funcs: list[Callable]
    weights: list[float]
    context: RewardContext

    @property
    def names(self) -> list[str]:
        return [getattr(f, "__name__", type(f).__name__) for f in self.funcs]


def build_rewards(config: RewardsConfig | str | Path, check_servers: bool = True) -> RewardSet:
    """Instantiate every reward of a config. Every name, option, judge and backend spec is checked before any
    model loads; then the target and the judges load (and, with ``check_servers``, answer a health check)."""
    from vlmguard.backends import SamplingParams, resolve_specs

    if not isinstance(config, RewardsConfig):
        config = RewardsConfig.load(config)
    resolve_specs(config.target)
    ctx = RewardContext(None, config.fallback, SamplingParams(max_new_tokens=config.answer_max_new_tokens))
    funcs, weights, objects, plain = [], [], {}, {}
    for name, raw in config.rewards.items():
        opts = dict(raw)
        kind = opts.pop("type", name)
        if not isinstance(kind, str):
            raise VLMGuardError(f"{config.source}: rewards.{name}.type must be a reward name, got {kind!r}")
        obj = _resolve(kind)
        weight = opts.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise VLMGuardError(f"{config.source}: reward {name!r}: weight must be a number, got {weight!r}")
        if isinstance(obj, type) and issubclass(obj, Reward):
            try:
                func = obj(ctx, name=name, **opts)
            except (TypeError, ValueError, VLMGuardError) as e:
                raise VLMGuardError(f"{config.source}: reward {name!r}: {e}") from None
            objects[func.name] = func
        else:
            if opts:
                raise VLMGuardError(f"{config.source}: reward {name!r} is a plain function and takes no options "
                                    f"({', '.join(opts)}); only weight")
            func = obj
            plain[name] = obj
        funcs.append(func)
        weights.append(float(weight))
    for func in objects.values():
        func.peers, func.functions = objects, plain
        if func.gate and func.gate not in objects:
            raise VLMGuardError(f"{config.source}: reward {func.name!r} is gated on {func.gate!r}, which the config "
                                f"does not define")
        missing = [n for n in func.requires() if n not in objects and n not in plain]
        if missing:
            raise VLMGuardError(f"{config.source}: reward {func.name!r} reads {', '.join(map(repr, missing))}, which the "
                                f"config does not define; entries: {', '.join(config.rewards)}")
    if config.target is None and any(f.needs_answers for f in objects.values()):
        needing = [f.name for f in objects.values() if f.needs_answers]
        log.warning("%s: rewards %s score the target's answers but no `target` is set: they work only on data that "
                    "carries an `answer` column", config.source, ", ".join(needing))
    # everything is checked: now load
    ctx.target = ctx.backend(config.target) if config.target else None
    if check_servers and ctx.target is not None:
        ctx.target.check()
    for func in objects.values():
        func.load(check_servers)
    return RewardSet(funcs, weights, ctx)

__all__ = ["REGISTRY", "Reward", "RewardContext", "RewardSet", "RewardsConfig", "build_rewards", "register"]
