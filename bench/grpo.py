"""GRPO step time with the downstream VLM in the loop vs with rule-only rewards, same tiny models, one run.

In the loop: every rewrite is answered by the tiny target and the answer scored by the tiny judge (safety and
helpfulness), plus over-refusal; rule-only: format + intent + length. Both runs use the same policy, data,
batch and seed. Usage: python bench/grpo.py [--steps 6] [--completion-tokens 96]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml

from vlmguard.config import parse_config
from vlmguard.tiny import build_tiny


def step_times(args_list: list[str]) -> list[float]:
    from trl import ModelConfig

    from vlmguard.rl import build_trainer
    from vlmguard.rl.config import GRPOScriptArguments, RewriterGRPOConfig

    parsed = parse_config([GRPOScriptArguments, RewriterGRPOConfig, ModelConfig], args_list, "bench")
    trainer = build_trainer(*parsed)
    trainer.train()
    return [float(h["step_time"]) for h in trainer.state.log_history if "step_time" in h]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--completion-tokens", type=int, default=96)
    ap.add_argument("--answer-tokens", type=int, default=48)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = build_tiny(tmp / "tiny")
        rules = {"rewards": {"format": {}, "intent": {}, "length": {}}}
        judge = {"judge": f"hf:{paths['judge']}?batch_size=64", "max_new_tokens": 16}
        loop = {"target": f"hf:{paths['target']}?batch_size=64", "answer_max_new_tokens": a.answer_tokens,
                "rewards": {**rules["rewards"], "safety": judge, "helpfulness": {**judge, "gate": "safety"},
                            "over_refusal": {}}}
        results = {}
        for name, rewards in (("rule-only", rules), ("downstream-in-the-loop", loop)):
            (tmp / f"{name}.yaml").write_text(yaml.safe_dump(rewards))
            times = step_times([
                "--model_name_or_path", str(paths["rewriter"]), "--dataset_path", str(paths["sft_data"]),
                "--rewards_config", str(tmp / f"{name}.yaml"), "--output_dir", str(tmp / name),
                "--max_steps", str(a.steps), "--per_device_train_batch_size", "32", "--num_generations", "8",
                "--max_completion_length", str(a.completion_tokens), "--learning_rate", "1e-4",
                "--image_size", "112", "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none",
                "--gradient_checkpointing", "false", "--seed", "0", "--bf16", "false", "--plot", "false"])
            results[name] = sum(times[1:]) / len(times[1:])  # the first step warms up
    print(f"tiny Qwen2.5-VL policy, CPU, 4 prompts x 8 generations per step, {a.completion_tokens} completion tokens, "
          f"{a.answer_tokens} answer tokens; mean of steps 2..{a.steps}")
    for name, t in results.items():
        print(f"{name:24s} {t:6.2f} s/step")
    print(f"overhead of the downstream loop: {results['downstream-in-the-loop'] / results['rule-only']:.2f}x")


if __name__ == "__main__":
    main()
