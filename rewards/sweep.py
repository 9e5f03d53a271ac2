"""``vlmguard rewards sweep``: train the same rewriter under several reward combinations, evaluate each on the
same held-out data, and draw the safety / over-refusal frontier.

::

    out: outputs/sweep/offline_real
    grpo: configs/grpo/tiny.yaml               # the base GRPO recipe: model, data, training arguments
    grpo_args: [--max_steps, "30"]             # extra flags for every run (optional)
    seeds: [0, 1]
    combinations:                              # name → a rewards config (file or mapping), + optional `aggregation`
      weighted: configs/rewards/weighted.yaml
      gdpo: {config: configs/rewards/weighted.yaml, aggregation: normalize_then_sum}
      lagrangian_0.1: {config: {rewards: {...}, target: ...}}
    eval:                                      # one `vlmguard eval` over every trained rewriter (a `vlmguard`
      target: hf:models/smol                   #   defence each, plus `none`), same items, same judge
      benchmark: {kind: records, path: data/heldout.jsonl}
      judge: {type: llama_guard, model: ...}   # optional (records: default the refusal rule with judge: false)
      answer_max_new_tokens: 64
      rewriter_max_new_tokens: 160

Every stage resumes: a trained run (its ``output_dir`` holds the final model) is not trained again, and the
eval resumes from its records. Writes ``frontier.png`` (attack success vs over-refusal, each point with its 95%
interval), ``sweep.md`` / ``sweep.json`` (the table), and the eval report.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vlmguard.errors import VLMGuardError

from . import RewardsConfig, _resolve

AGGREGATIONS = ("sum_then_normalize", "normalize_then_sum")


@dataclass
class Combination:
    name: str
    rewards: dict[str, Any]
    aggregation: str | None = None


@dataclass
class SweepConfig:
    out: str
    grpo: str
    combinations: list[Combination]
    eval: dict[str, Any]
    seeds: list[int] = field(default_factory=lambda: [0])
    grpo_args: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> "SweepConfig":
        path = Path(path)
        if not path.is_file():
            raise VLMGuardError(f"sweep config not found: {path}")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise VLMGuardError(f"{path}: a sweep config is a mapping (out, grpo, combinations, eval, seeds)")
        known = {"out", "grpo", "combinations", "eval", "seeds", "grpo_args"}
        unknown = sorted(set(data) - known)
        missing = sorted({"out", "grpo", "combinations", "eval"} - set(data))
        if unknown or missing:
            raise VLMGuardError(f"{path}: " + (f"unknown key(s) {', '.join(unknown)}; " if unknown else "") +
                                (f"missing {', '.join(missing)}; " if missing else "") + f"keys: {', '.join(sorted(known))}")
        if not Path(data["grpo"]).is_file():
            raise VLMGuardError(f"{path}: grpo recipe {data['grpo']} not found")
        combos = []
        for name, spec in (data["combinations"] or {}).items():
            spec = {"config": spec} if isinstance(spec, (str, dict)) and "config" not in (spec if isinstance(spec, dict)
                                                                                         else {}) else spec
            if not isinstance(spec, dict) or set(spec) - {"config", "aggregation"}:
                raise VLMGuardError(f"{path}: combinations.{name} is a rewards config (file or mapping) or "
                                    f"{{config: ..., aggregation: ...}}")
            source = spec["config"]
            if isinstance(source, str):
                rewards = RewardsConfig.load(source)
                source = {"rewards": rewards.rewards, "target": rewards.target, "fallback": rewards.fallback,
                          "answer_max_new_tokens": rewards.answer_max_new_tokens}
            checked = RewardsConfig.from_dict(source, f"{path}: combinations.{name}")  # checked now, not hours in
            for entry, opts in checked.rewards.items():
                try:
                    _resolve(str(opts.get("type", entry)))
                except VLMGuardError as e:
                    raise VLMGuardError(f"{path}: combinations.{name}: {e}") from None
            aggregation = spec.get("aggregation")
            if aggregation is not None and aggregation not in AGGREGATIONS:
                raise VLMGuardError(f"{path}: combinations.{name}.aggregation must be one of {', '.join(AGGREGATIONS)}")
            combos.append(Combination(str(name), source, aggregation))
        if not combos:
            raise VLMGuardError(f"{path}: no combinations")
        ev = data["eval"]
        if not isinstance(ev, dict) or not ev.get("target") or not isinstance(ev.get("benchmark"), dict):
            raise VLMGuardError(f"{path}: eval needs `target` (a backend spec) and `benchmark` ({{kind, path}})")
        seeds = [int(s) for s in (data.get("seeds") or [0])]
        return cls(out=str(data["out"]), grpo=str(data["grpo"]), combinations=combos, eval=ev, seeds=seeds,
                   grpo_args=[str(a) for a in data.get("grpo_args") or []])


def _trained(folder: Path) -> bool:
    return any((folder / f).is_file() for f in ("model.safetensors", "adapter_model.safetensors",
                                                 "model.safetensors.index.json"))


def train_all(config: SweepConfig) -> dict[str, Path]:
    """GRPO for every combination × seed (skipping finished runs); returns run name → model folder."""
    from vlmguard.rl import main as grpo_main

    out, runs = Path(config.out), {}
    for combo in config.combinations:
        for seed in config.seeds:
            name = f"{combo.name}/seed{seed}"
            folder = out / "runs" / combo.name / f"seed{seed}"
            runs[name] = folder
            if _trained(folder):
                print(f"sweep: {name} already trained ({folder})")
                continue
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "rewards.yaml").write_text(yaml.safe_dump(combo.rewards, sort_keys=False))
            args = ["--config", config.grpo, "--rewards_config", str(folder / "rewards.yaml"), "--output_dir",
                    str(folder), "--seed", str(seed), "--resume_from_checkpoint", "true", *config.grpo_args]
            if combo.aggregation:
                args += ["--multi_objective_aggregation", combo.aggregation]
            print(f"sweep: training {name}")
            grpo_main(args)
    return runs


def evaluate(config: SweepConfig, runs: dict[str, Path]) -> dict[str, Any]:
    """One eval over every trained rewriter (a ``vlmguard`` defence each) and the undefended target."""
    from vlmguard.eval import EvalConfig
    from vlmguard.eval.run import Evaluation

    ev = dict(config.eval)
    bench = dict(ev.pop("benchmark"))
    defences: dict[str, Any] = {"none": {}}
    tokens = ev.pop("rewriter_max_new_tokens", 160)
    for name, folder in runs.items():
        defences[name.replace("/", "@")] = {"type": "vlmguard", "rewriter": f"hf:{folder}", "max_new_tokens": tokens}
    if "judge" not in ev and bench.get("kind") == "records" and "judge" not in bench:
        bench["judge"] = False  # the refusal rule
    data = {"out": str(Path(config.out) / "eval"), "targets": {"target": ev.pop("target")},
            "benchmarks": {"heldout": bench}, "defences": defences, **ev}
    return Evaluation(EvalConfig.from_dict(data, "sweep eval")).run(progress=True)


def summarise(config: SweepConfig, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per combination: attack success and over-refusal (mean over seeds, with each seed's interval)."""
    def cell(defence: str, metric: str) -> dict[str, Any] | None:
        return next((r for r in report["results"] if r["defence"] == defence and r["metric"] == metric), None)

    rows = []
    for name in ["none"] + [c.name for c in config.combinations]:
        defences = ["none"] if name == "none" else [f"{name}@seed{s}" for s in config.seeds]
        row: dict[str, Any] = {"combination": name, "seeds": [] if name == "none" else config.seeds}
        for metric in ("attack_success", "over_refusal"):
            cells = [c for d in defences if (c := cell(d, metric)) is not None and c["value"] is not None]
            row[metric] = sum(c["value"] for c in cells) / len(cells) if cells else None
            row[f"{metric}_ci"] = [c["ci"] for c in cells]
            row[f"{metric}_per_seed"] = [c["value"] for c in cells]
            row[f"{metric}_n"] = [c["n"] for c in cells]
        rows.append(row)
    return rows


def plot_frontier(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for k, row in enumerate(rows):
        color = f"C{k}"
        for x, y, xci, yci in zip(row["over_refusal_per_seed"], row["attack_success_per_seed"],
                                  row["over_refusal_ci"], row["attack_success_ci"]):
            ax.errorbar(100 * x, 100 * y, xerr=[[100 * (x - xci[0])], [100 * (xci[1] - x)]] if xci else None,
                        yerr=[[100 * (y - yci[0])], [100 * (yci[1] - y)]] if yci else None, fmt="o", color=color,
                        capsize=3, alpha=0.85)
        if row["over_refusal"] is not None and row["attack_success"] is not None:
            ax.annotate(row["combination"], (100 * row["over_refusal"], 100 * row["attack_success"]), fontsize=8,
                        xytext=(5, 4), textcoords="offset points", color=color)
    ax.set_xlabel("over-refusal on held-out benign items (%) — lower is better")
    ax.set_ylabel("attack success on held-out harmful items (%) — lower is better")
    ax.set_title("Reward combinations: safety / over-refusal frontier (95% intervals)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(rows: list[dict[str, Any]]) -> str:
    def pct(v, cis):
        return "–" if v is None else f"{100 * v:.1f}" + "".join(f" [{100 * c[0]:.0f}, {100 * c[1]:.0f}]"
                                                                  for c in cis if c)
    lines = ["| combination | seeds | attack success % (per-seed 95% CI) | over-refusal % (per-seed 95% CI) |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['combination']} | {','.join(map(str, r['seeds'])) or '–'} | "
                     f"{pct(r['attack_success'], r['attack_success_ci'])} | "
                     f"{pct(r['over_refusal'], r['over_refusal_ci'])} |")
    return "\n".join(lines) + "\n"


def run_sweep(path: str | Path) -> list[dict[str, Any]]:
    config = SweepConfig.load(path)
    runs = train_all(config)
    report = evaluate(config, runs)
    rows = summarise(config, report)
    out = Path(config.out)
    (out / "sweep.json").write_text(json.dumps(rows, indent=2))
    (out / "sweep.md").write_text(markdown(rows))
    plot_frontier(rows, out / "frontier.png")
    return rows
