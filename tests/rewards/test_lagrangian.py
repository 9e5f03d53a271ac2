"""The Lagrangian (constrained) reward: the update rule by hand, the multiplier's direction, the reward's value,
config errors, and in GRPO: logged, saved in checkpoints and continued exactly on resume."""
import asyncio
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from vlmguard.errors import VLMGuardError
from vlmguard.format import render
from vlmguard.rewards import RewardsConfig, build_rewards
from vlmguard.rewards.lagrangian import LagrangianReward, dual_step

sys.path.insert(0, str(Path(__file__).parent))


def test_dual_step_by_hand():
    assert dual_step(1.0, cost=0.8, threshold=0.1, lr=0.5, upper=10) == pytest.approx(1.35)
    assert dual_step(1.0, cost=0.0, threshold=0.1, lr=0.5, upper=10) == pytest.approx(0.95)
    assert dual_step(0.02, cost=0.0, threshold=0.1, lr=0.5, upper=10) == 0.0       # projected at 0
    assert dual_step(9.9, cost=1.0, threshold=0.0, lr=1.0, upper=10) == 10.0       # clipped at max


def _batch(n=4):
    prompts = [[{"role": "user", "content": [{"type": "text", "text": f"q{i}"}]}] for i in range(n)]
    completions = [[{"role": "assistant", "content": render("t", "i", "x" * (20 * (i + 1)))}] for i in range(n)]
    return prompts, completions


def _run(rs, steps):
    """Call every reward as GRPOTrainer does, one batch per step; returns the Lagrangian's scores per step."""
    lag = next(f for f in rs.funcs if isinstance(f, LagrangianReward))
    prompts, completions = _batch()
    out, metrics = [], []

    async def step(k):
        cols = {"trainer_state": SimpleNamespace(global_step=k), "log_metric": lambda n, v: metrics.append((k, n, v))}
        from vlmguard.rewards.run import _call

        results = await asyncio.gather(*[_call(f, prompts, completions, cols) for f in rs.funcs])
        return results[rs.funcs.index(lag)]
    for k in range(steps):
        out.append(asyncio.run(step(k)))
    return lag, out, metrics


def _config(cost_fn, threshold, **extra):
    return RewardsConfig.from_dict({"rewards": {
        "objective": {"type": "constraint_rewards:length_score", "weight": 0},
        "safety": {"type": cost_fn, "weight": 0},
        "format": {"weight": 0},
        "constrained": {"type": "lagrangian", "objective": "objective", "cost": "safety", "threshold": threshold,
                        "lr": 0.5, "init": 1.0, "max": 10.0, **extra}}})


def test_violated_constraint_drives_the_multiplier_up_and_the_value_is_by_hand():
    lag, scores, metrics = _run(build_rewards(_config("constraint_rewards:mostly_unsafe", 0.1)), 4)
    # cost 0.8 every step: λ = 1 → 1.35 → 1.70 → 2.05 (updated at the start of steps 1, 2, 3)
    assert [h["multiplier"] for h in lag.history] == pytest.approx([1.35, 1.70, 2.05])
    assert [h["cost"] for h in lag.history] == pytest.approx([0.8] * 3)
    lam = 2.05
    objective = [min(1.0, len(render("t", "i", "x" * (20 * (i + 1)))) / 200) for i in range(4)]
    assert scores[-1] == pytest.approx([(o - lam * 0.8) / (1 + lam) for o in objective])
    logged = {(k, n): v for k, n, v in metrics}
    assert logged[(3, "constrained/multiplier")] == pytest.approx(2.05) and logged[(3, "constrained/cost")] == 0.8


def test_met_constraint_drives_the_multiplier_to_zero():
    lag, scores, _ = _run(build_rewards(_config("constraint_rewards:mostly_safe", 0.1)), 45)
    # cost 0.05 ≤ 0.1: λ falls by 0.025 a step and stays at 0; then the reward is the objective alone
    assert lag.history[0]["multiplier"] == pytest.approx(0.975) and lag.multiplier == 0.0
    prompts, completions = _batch()
    from constraint_rewards import length_score
    assert scores[-1] == pytest.approx(length_score(prompts, completions))


def test_cost_from_a_reward_object_and_cost_is_value():
    """The cost may be any entry: here the built-in format reward read as a cost directly (cost_is: value)."""
    cfg = _config("constraint_rewards:mostly_safe", 0.5, cost_is="value")
    cfg.rewards["constrained"]["cost"] = "format"
    lag, _, _ = _run(build_rewards(cfg), 2)
    assert lag.history[0]["cost"] == pytest.approx(1.0)  # every completion is well formed: format = 1


@pytest.mark.parametrize("change, message", [
    ({"objective": "nope"}, "reads 'nope', which the config does not define"),
    ({"objective": "safety"}, "objective and cost must be different"),
    ({"threshold": None}, "threshold must be a number"),
    ({"lr": 0}, "need lr > 0"),
    ({"cost_is": "cost"}, "cost_is must be one_minus"),
])
def test_config_errors(change, message):
    cfg = _config("constraint_rewards:mostly_safe", 0.1)
    cfg.rewards["constrained"].update(change)
    with pytest.raises(VLMGuardError, match=message):
        build_rewards(cfg)


def _grpo_args(tiny_models, tmp_path, *extra):
    tmp_path.mkdir(parents=True, exist_ok=True)
    rewards = {"rewards": {"format": {"weight": 0.0}, "safety": {"type": "constraint_rewards:mostly_unsafe",
                                                                "weight": 0.0},
                           "objective": {"type": "constraint_rewards:length_score", "weight": 0.0},
                           "constrained": {"type": "lagrangian", "objective": "objective", "cost": "safety",
                                           "threshold": 0.1, "lr": 0.5, "init": 1.0, "max": 10.0}}}
    (tmp_path / "rewards.yaml").write_text(yaml.safe_dump(rewards))
    return ["--config", "configs/grpo/tiny.yaml", "--model_name_or_path", str(tiny_models["rewriter"]),
            "--dataset_path", str(tiny_models["sft_data"]), "--rewards_config", str(tmp_path / "rewards.yaml"),
            "--output_dir", str(tmp_path / "out"), "--per_device_train_batch_size", "8", "--num_generations", "4",
            "--max_completion_length", "16", "--save_strategy", "steps", "--save_steps", "1", "--save_total_limit", "10",
            *extra]


def test_grpo_logs_saves_and_resumes_the_multiplier_exactly(tiny_models, tmp_path, monkeypatch):
    from vlmguard.rl import main as grpo_main

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    whole = grpo_main(_grpo_args(tiny_models, tmp_path / "whole", "--max_steps", "4"))
    lam = [h["constrained/multiplier"] for h in whole.state.log_history if "constrained/multiplier" in h]
    assert lam == pytest.approx([1.0, 1.35, 1.70, 2.05])
    state = json.loads((tmp_path / "whole" / "out" / "checkpoint-2" / "lagrangian_state.json").read_text())
    assert state["constrained"]["multiplier"] == pytest.approx(1.35) and state["constrained"]["pending"][1] == 8
    # interrupted after step 2, then resumed: the multiplier continues exactly
    grpo_main(_grpo_args(tiny_models, tmp_path / "cut", "--max_steps", "2"))
    resumed = grpo_main(_grpo_args(tiny_models, tmp_path / "cut", "--max_steps", "4",
                                   "--resume_from_checkpoint", "true"))
    lam_resumed = [h["constrained/multiplier"] for h in resumed.state.log_history if "constrained/multiplier" in h]
    assert lam_resumed == pytest.approx(lam)
    # with TRL's normalize_then_sum aggregation too
    other = grpo_main(_grpo_args(tiny_models, tmp_path / "gdpo", "--max_steps", "2", "--multi_objective_aggregation",
                                 "normalize_then_sum", "--save_strategy", "no"))
    assert [h["constrained/multiplier"] for h in other.state.log_history if "constrained/multiplier" in h] == \
        pytest.approx([1.0, 1.35])


def test_objective_and_cost_on_different_rows():
    """Helpfulness scored on benign rows and safety on harmful rows (`only:`) never meet on one row: each row gets
    the term that applies, the other counting 0; the multiplier moves on the rows the cost applies to."""
    config = RewardsConfig.from_dict({"rewards": {
        "objective": {"type": "constraint_rewards:first_half", "weight": 0},
        "safety": {"type": "constraint_rewards:last_row_unsafe", "weight": 0},
        "constrained": {"type": "lagrangian", "objective": "objective", "cost": "safety", "threshold": 0.1,
                        "lr": 0.5, "init": 1.0, "max": 10.0}}})
    lag, scores, _ = _run(build_rewards(config), 2)
    # step 0, λ = 1: rows 0-1 objective 0.6 → 0.3; row 2 safe → 0; row 3 cost 1 → -0.5
    assert scores[0] == pytest.approx([0.3, 0.3, 0.0, -0.5])
    # mean cost over the 2 rows it applies to = 0.5 > 0.1: λ = 1 + 0.5 * 0.4 = 1.2
    assert lag.multiplier == pytest.approx(1.2)
    assert scores[1] == pytest.approx([0.6 / 2.2, 0.6 / 2.2, 0.0, -1.2 / 2.2])
