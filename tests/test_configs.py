"""Every shipped recipe parses with the parser of the command that reads it (no unknown or mistyped keys)."""
from pathlib import Path

import pytest
import yaml

from vlmguard.config import parse_config

ROOT = Path(__file__).resolve().parents[1]


def _parsers():
    from trl import ModelConfig

    from vlmguard.rl.config import GRPOScriptArguments, RewriterGRPOConfig
    from vlmguard.sft.config import RewriterSFTConfig, SFTScriptArguments
    from vlmguard.synth import SynthConfig

    return {"sft": ([SFTScriptArguments, RewriterSFTConfig, ModelConfig], "vlmguard sft"),
            "grpo": ([GRPOScriptArguments, RewriterGRPOConfig, ModelConfig], "vlmguard grpo"),
            "synth": ([SynthConfig], "vlmguard synth")}


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_parses(path, tmp_path, monkeypatch):
    parsers = _parsers()
    if path.parent.name == "rewards":
        from vlmguard.rewards import RewardsConfig, _resolve

        cfg = RewardsConfig.load(path)
        assert all(_resolve(name) for name in cfg.rewards)
        return
    if path.parent.name == "eval":
        from vlmguard.eval import EvalConfig
        from vlmguard.eval.benchmarks import BENCHMARKS
        from vlmguard.eval.defences import check_defence

        monkeypatch.chdir(tmp_path)  # relative model paths resolve as on a fresh clone, not to local outputs/
        cfg = EvalConfig.load(path)
        assert all(b.kind in BENCHMARKS for b in cfg.benchmarks.values()) and cfg.baseline in cfg.defences
        for name, d in cfg.defences.items():  # classes, options and backend specs, without loading a model
            check_defence(d.type, d.options, name)
        return
    if path.parent.name == "serve":
        from vlmguard.backends import resolve_spec
        from vlmguard.service import ServeConfig

        cfg = ServeConfig.load(path)
        for spec in (cfg.rewriter, cfg.target):
            resolve_spec(spec)
        return
    if path.parent.name == "recipes":
        from vlmguard.recipe import load_recipe

        _, stages = load_recipe(str(path))
        for stage in stages:  # every config a stage names is shipped
            words = stage.run.split()
            for flag in ("--config", "--rewards_config"):
                if flag in words:
                    assert (ROOT / words[words.index(flag) + 1]).is_file(), (stage.name, stage.run)
        return
    if path.parent.name not in parsers:
        pytest.skip(f"no parser registered for configs/{path.parent.name}")
    types, prog = parsers[path.parent.name]
    cfg = yaml.safe_load(path.read_text())
    if cfg.get("bf16") is None and prog != "vlmguard synth":  # real-size recipes expect a GPU: check the keys on CPU
        cfg["bf16"] = False
    (tmp_path / path.name).write_text(yaml.safe_dump(cfg))
    parsed = parse_config(types, ["--config", str(tmp_path / path.name)], prog)
    assert parsed


def test_accelerate_configs():
    for name, stage in (("zero2", 2), ("zero3", 3)):
        cfg = yaml.safe_load((ROOT / "launch" / "accelerate" / f"{name}.yaml").read_text())
        assert cfg["distributed_type"] == "DEEPSPEED" and cfg["deepspeed_config"]["zero_stage"] == stage
    assert yaml.safe_load((ROOT / "launch/accelerate/ddp.yaml").read_text())["distributed_type"] == "MULTI_GPU"
