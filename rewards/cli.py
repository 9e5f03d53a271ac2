"""``vlmguard rewards score`` and ``vlmguard rewards compare``: reward configs side by side on one dataset."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from vlmguard.schema import load_samples

from . import build_rewards
from .metrics import agreement
from .run import score_samples


def _score(config: str, data: str, limit: int | None, batch_size: int) -> tuple[list[dict[str, Any]], Any]:
    rewards = build_rewards(config)
    samples = load_samples(data, limit)
    return score_samples(rewards, samples, batch_size, desc=Path(config).stem), rewards


def _summary(name: str, rows: list[dict[str, Any]], rewards) -> dict[str, Any]:
    out: dict[str, Any] = {"config": name, "samples": len(rows), "rewards": {}}
    gold = [r["gold"] for r in rows]
    for reward in rewards.names + ["total"]:
        vals = [r["total"] if reward == "total" else r["rewards"][reward] for r in rows]
        got = [v for v in vals if v is not None]
        out["rewards"][reward] = {"mean": sum(got) / len(got) if got else None, "scored": len(got),
                                  "failed": len(vals) - len(got), **{f"gold_{k}": v for k, v in
                                                                      agreement(vals, gold).items()}}
    return out


def cmd_score(args: argparse.Namespace) -> None:
    rows, rewards = _score(args.config, args.data, args.limit, args.batch_size)
    out = Path(args.out or Path(args.config).with_suffix(".scores.jsonl").name)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(json.dumps(_summary(args.config, rows, rewards), indent=2))
    print(f"per-sample scores: {out}")


def _percentile(values: Sequence[float | None]) -> list[float | None]:
    """Rank-normalised scores in [0, 1], so configs on different scales can be compared sample by sample."""
    got = sorted(v for v in values if v is not None)
    if len(got) < 2:
        return [None if v is None else 0.5 for v in values]
    return [None if v is None else sum(g < v for g in got) / (len(got) - 1) for v in values]


def _plot(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    rewards = sorted({k for rows in results.values() for k in rows[0]["rewards"]}) + ["total"]
    fig, axes = plt.subplots(1, len(rewards), figsize=(3.2 * len(rewards), 3), squeeze=False)
    for ax, reward in zip(axes[0], rewards):
        for name in names:
            vals = [r["total"] if reward == "total" else r["rewards"].get(reward) for r in results[name]]
            vals = [v for v in vals if v is not None]
            if vals:
                ax.hist(vals, bins=20, alpha=0.5, label=name)
        ax.set_title(reward)
        ax.set_xlabel("score")
    axes[0][0].set_ylabel("samples")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_compare(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, summaries = {}, []
    for config in args.configs:
        name = Path(config).stem
        rows, rewards = _score(config, args.data, args.limit, args.batch_size)
        results[name] = rows
        summaries.append(_summary(name, rows, rewards))
        (out / f"scores_{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pct = {name: _percentile([r["total"] for r in rows]) for name, rows in results.items()}
    first = next(iter(results.values()))
    spread = []
    for i, row in enumerate(first):
        vals = {name: pct[name][i] for name in results}
        got = [v for v in vals.values() if v is not None]
        if len(got) >= 2:
            spread.append((max(got) - min(got), row["id"], vals, {n: results[n][i]["total"] for n in results}))
    spread.sort(key=lambda t: -t[0])
    disagreements = [{"id": sid, "spread": round(s, 4), "percentile": v, "total": t}
                     for s, sid, v, t in spread[:args.top]]
    _plot(results, out / "distributions.png")
    report = {"data": args.data, "configs": summaries, "most_disagreement": disagreements}
    (out / "compare.json").write_text(json.dumps(report, indent=2))
    print(f"{'config':24s} {'reward':14s} {'mean':>7s} {'failed':>6s} {'accuracy [95% CI]':>22s} "
          f"{'AUROC [95% CI]':>22s} {'rho':>6s}  (vs gold)")
    fmt = lambda v: f"{v:6.3f}" if isinstance(v, float) else f"{'-':>6s}"  # noqa: E731
    ci = lambda v, c: f"{fmt(v)} [{c[0]:.2f}, {c[1]:.2f}]" if c else f"{fmt(v)} {'':12s}"  # noqa: E731
    for summary in summaries:
        for reward, m in summary["rewards"].items():
            print(f"{summary['config']:24s} {reward:14s} {fmt(m['mean']):>7s} {m['failed']:6d} "
                  f"{ci(m['gold_accuracy'], m['gold_accuracy_ci']):>22s} {ci(m['gold_auroc'], m['gold_auroc_ci']):>22s}"
                  f" {fmt(m['gold_spearman'])}")
    print(f"\nmost disagreement: {', '.join(d['id'] for d in disagreements[:5])}")
    print(f"report: {out / 'compare.json'}   chart: {out / 'distributions.png'}")


def cmd_sweep(args: argparse.Namespace) -> None:
    from .sweep import SweepConfig, markdown, run_sweep

    rows = run_sweep(args.config)
    print(markdown(rows))
    out = Path(SweepConfig.load(args.config).out)
    print(f"frontier: {out / 'frontier.png'}   table: {out / 'sweep.md'}   eval report: {out / 'eval' / 'report.md'}")
