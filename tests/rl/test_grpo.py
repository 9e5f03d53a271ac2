"""GRPO of the tiny rewriter with TRL's GRPOTrainer and the reward library (downstream VLM in the loop)."""

import pytest
import yaml

from vlmguard.errors import VLMGuardError
from vlmguard.rl import main as grpo_main


def _args(tiny_models, tmp_path, rewards, *extra):
    (tmp_path / "rewards.yaml").write_text(yaml.safe_dump(rewards))
    return ["--config", "configs/grpo/tiny.yaml", "--model_name_or_path", str(tiny_models["rewriter"]),
            "--dataset_path", str(tiny_models["sft_data"]), "--rewards_config", str(tmp_path / "rewards.yaml"),
            "--output_dir", str(tmp_path / "out"), "--max_steps", "2", "--per_device_train_batch_size", "8",
            "--num_generations", "4", "--max_completion_length", "24", "--save_strategy", "no", *extra]


def test_two_steps_with_the_target_in_the_loop(tiny_models, target_server, tmp_path):
    rewards = {"target": f"openai:{target_server}?model=tiny-target", "answer_max_new_tokens": 8,
               "rewards": {"format": {"weight": 0.5}, "intent": {"weight": 0.5},
                           "over_refusal": {"weight": 0.5},
                           "safety": {"weight": 1.0, "judge": f"hf:{tiny_models['judge']}", "max_new_tokens": 8}}}
    trainer = grpo_main(_args(tiny_models, tmp_path, rewards))
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logs) == 2 and trainer.args.reward_weights == [0.5, 0.5, 0.5, 1.0]
    for name in ("format", "intent", "over_refusal", "safety"):
        assert f"rewards/{name}/mean" in logs[0] and f"{name}/failed" in logs[0]
    assert "rewrite/parse_rate" in logs[0] and "answer/refusal_rate" in logs[0]
    counters = trainer.vlmguard_rewards.context.counters
    assert counters["target"]["answers"] > 0 and counters["format"]["scored"] == 2 * 8
    assert (tmp_path / "out" / "reward_curves.png").stat().st_size > 1000
    assert (tmp_path / "out" / "model.safetensors").is_file() and (tmp_path / "out" / "processor_config.json").is_file()


def test_bad_rewards_fail_fast(tiny_models, tmp_path):
    with pytest.raises(VLMGuardError, match="unknown reward 'fromat' \\(did you mean format\\?\\)"):
        grpo_main(_args(tiny_models, tmp_path, {"rewards": {"fromat": {}}}))
    with pytest.raises(VLMGuardError, match="cannot connect"):
        grpo_main(_args(tiny_models, tmp_path, {"target": "openai:http://127.0.0.1:9/v1?model=m&retries=0",
                                                "rewards": {"safety": {"judge": "openai:http://127.0.0.1:9/v1"}}}))
    assert not (tmp_path / "out").exists()


def test_accelerate_deepspeed_zero2_two_processes(tiny_models, tmp_path):
    """The shipped launch/accelerate/zero2.yaml, on 2 CPU processes (gloo) instead of GPUs."""
    import subprocess
    import sys
    from pathlib import Path

    cfg = yaml.safe_load(Path("launch/accelerate/zero2.yaml").read_text())
    cfg.update(use_cpu=True, mixed_precision="no", num_processes=2)
    (tmp_path / "zero2_cpu.yaml").write_text(yaml.safe_dump(cfg))
    args = _args(tiny_models, tmp_path, {"rewards": {"format": {}, "intent": {}}}, "--max_steps", "2",
                 "--per_device_train_batch_size", "4")
    out = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                          str(tmp_path / "zero2_cpu.yaml"), "-m", "vlmguard.rl", *args],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 steps on 2 process(es), DEEPSPEED ZeRO-2" in out.stdout
    # each process scored its own slice: 2 steps x 4 completions on this (main) process
    assert "'format': {'scored': 8" in out.stdout


def test_grpo_raises_the_reward(tiny_models, tmp_path):
    """configs/grpo/tiny_learn.yaml from a 40-step SFT rewriter: the mean reward of the last 10 of 40 steps beats the
    first 10 by more than the run-to-run noise (measured over seeds 0-2: see the GRPO issue's closing note)."""
    from vlmguard.sft import main as sft_main

    start = tmp_path / "sft40"
    sft_main(["--config", "configs/sft/tiny.yaml", "--model_name_or_path", str(tiny_models["rewriter"]),
              "--dataset_path", str(tiny_models["sft_data"]), "--output_dir", str(start), "--max_steps", "40",
              "--save_strategy", "no"])
    trainer = grpo_main(["--config", "configs/grpo/tiny_learn.yaml", "--model_name_or_path", str(start),
                         "--dataset_path", str(tiny_models["sft_data"]), "--output_dir", str(tmp_path / "grpo")])
    logs = [h for h in trainer.state.log_history if "reward" in h]
    reward = [h["reward"] for h in logs]
    parse_rate = [h["rewrite/parse_rate"] for h in logs]
    first, last = sum(reward[:10]) / 10, sum(reward[-10:]) / 10
    print(f"mean reward: first 10 steps {first:.3f}, last 10 {last:.3f}; parse rate "
          f"{sum(parse_rate[:10]) / 10:.2f} -> {sum(parse_rate[-10:]) / 10:.2f}")
    assert len(reward) == 40 and last - first > 0.05
    assert sum(parse_rate[-10:]) > sum(parse_rate[:10])
    assert (tmp_path / "grpo" / "reward_curves.png").is_file()


def test_target_failing_mid_run_gives_none_and_training_goes_on(tiny_models, target_server, tmp_path):
    from conftest import FaultProxy

    proxy = FaultProxy(target_server, fail_after=4)  # the first 4 answers succeed, then every request gets a 503
    try:
        rewards = {"target": f"openai:{proxy.url}?model=tiny-target&retries=1&backoff=0.01",
                   "answer_max_new_tokens": 4, "rewards": {"format": {}, "over_refusal": {}}}
        trainer = grpo_main(_args(tiny_models, tmp_path, rewards, "--max_steps", "3"))
    finally:
        proxy.close()
    counters = trainer.vlmguard_rewards.context.counters
    assert trainer.state.global_step == 3 and counters["target"]["failed"] > 0
    # one failed answer is shared by every generation that resolved to the same prompt
    assert counters["over_refusal"]["failed"] >= counters["target"]["failed"]
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert any(h["over_refusal/failed"] > 0 for h in logs)


def test_lora_kl_loss_type_and_resume(tiny_models, tmp_path):
    """LoRA policy, a KL term to the adapter-disabled reference (beta > 0), the original GRPO loss, checkpoints and
    resume from the last one."""
    rewards = {"rewards": {"format": {}, "intent": {}}}
    common = ("--use_peft", "true", "--lora_target_modules", "q_proj", "v_proj", "--lora_r", "4", "--beta", "0.04",
              "--loss_type", "grpo", "--save_strategy", "steps", "--save_steps", "1")
    trainer = grpo_main(_args(tiny_models, tmp_path, rewards, *common))
    assert trainer.state.global_step == 2 and trainer.ref_model is None  # PEFT: the reference is the base model
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert "kl" in logs[0] and trainer.args.loss_type == "grpo"
    assert (tmp_path / "out" / "checkpoint-2" / "adapter_model.safetensors").is_file()
    trainer = grpo_main(_args(tiny_models, tmp_path, rewards, *common, "--max_steps", "3",
                              "--resume_from_checkpoint", "true"))
    steps = [h["step"] for h in trainer.state.log_history if "reward" in h]
    assert trainer.state.global_step == 3 and steps == [1, 2, 3]  # steps 1-2 restored, only step 3 trained anew
