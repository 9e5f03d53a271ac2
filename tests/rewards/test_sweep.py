"""`vlmguard rewards sweep` end to end at tiny size: four combinations (weighted sum, gate, normalize-then-sum,
Lagrangian) trained with GRPO on the tiny rewriter, evaluated on the same held-out items, frontier drawn; a
second run resumes without training or answering anything again."""
import json
import sys
from pathlib import Path

import pytest
import yaml

from vlmguard.errors import VLMGuardError

ROOT = Path(__file__).resolve().parents[2]


def _sweep(tmp_path, tiny_models):
    rules = {"format": {"weight": 1.0}, "length": {"weight": 0.5, "max_tokens": 16, "max_prompt_words": 8}}
    config = {
        "out": str(tmp_path / "sweep"),
        "grpo": str(ROOT / "configs/grpo/tiny.yaml"),
        "grpo_args": ["--model_name_or_path", str(tiny_models["rewriter"]), "--dataset_path",
                      str(tiny_models["sft_data"]), "--max_steps", "2", "--per_device_train_batch_size", "8",
                      "--num_generations", "4", "--max_completion_length", "16", "--save_strategy", "no"],
        "seeds": [0],
        "combinations": {
            "weighted": {"rewards": rules},
            "gate": {"rewards": {**rules, "length": {**rules["length"], "gate": "format", "gate_min": 1.0}}},
            "gdpo": {"config": {"rewards": rules}, "aggregation": "normalize_then_sum"},
            "lagrangian": {"rewards": {"format": {"weight": 0}, "cost": {"type": "constraint_rewards:mostly_unsafe",
                                                                         "weight": 0},
                                       "c": {"type": "lagrangian", "objective": "format", "cost": "cost",
                                             "threshold": 0.1, "lr": 0.5}}},
        },
        "eval": {"target": f"hf:{tiny_models['target']}", "answer_max_new_tokens": 8, "rewriter_max_new_tokens": 16,
                 "benchmark": {"kind": "records", "path": str(tiny_models["samples"]), "limit": 4},
                 "bootstrap": 200},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_sweep_end_to_end_and_resume(tmp_path, tiny_models, monkeypatch):
    from vlmguard.rewards.sweep import run_sweep

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    rows = run_sweep(_sweep(tmp_path, tiny_models))
    assert [r["combination"] for r in rows] == ["none", "weighted", "gate", "gdpo", "lagrangian"]
    for r in rows:
        assert r["attack_success"] is not None and r["over_refusal"] is not None
        assert len(r["attack_success_ci"]) == 1 and r["attack_success_n"] == [4]
    out = tmp_path / "sweep"
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "sweep.json").read_text()) == rows
    assert "| lagrangian | 0 |" in (out / "sweep.md").read_text()
    # resume: nothing trained or evaluated again, same table
    records = (out / "eval" / "records.jsonl").read_text()
    stamp = (out / "runs" / "weighted" / "seed0" / "model.safetensors").stat().st_mtime
    assert run_sweep(_sweep(tmp_path, tiny_models)) == rows
    assert (out / "eval" / "records.jsonl").read_text() == records
    assert (out / "runs" / "weighted" / "seed0" / "model.safetensors").stat().st_mtime == stamp


def test_sweep_config_errors(tmp_path, tiny_models):
    from vlmguard.rewards.sweep import SweepConfig

    path = _sweep(tmp_path, tiny_models)
    data = yaml.safe_load(path.read_text())
    data["combinations"]["gdpo"]["aggregation"] = "sum"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(VLMGuardError, match="aggregation must be one of"):
        SweepConfig.load(path)
    data["combinations"]["gdpo"]["aggregation"] = "normalize_then_sum"
    data["combinations"]["weighted"] = {"rewards": {"fromat": {}}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(VLMGuardError, match="combinations.weighted"):
        SweepConfig.load(path)


def test_shipped_real_model_sweep_config_is_checked(monkeypatch):
    """configs/sweep/offline_real.yaml passes every check `vlmguard rewards sweep` makes before training."""
    from vlmguard.rewards.sweep import SweepConfig

    monkeypatch.chdir(ROOT)
    config = SweepConfig.load("configs/sweep/offline_real.yaml")
    assert [c.name for c in config.combinations] == ["weighted", "normalize_then_sum", "gate", "lagrangian_0.1",
                                                     "lagrangian_0.3"]
    assert config.combinations[1].aggregation == "normalize_then_sum" and config.seeds == [0, 1]
    thresholds = [c.rewards["rewards"]["constrained"]["threshold"] for c in config.combinations[3:]]
    assert thresholds == [0.1, 0.3]
