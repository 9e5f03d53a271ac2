"""The eval report: ``report.json`` (every number, for scripts), ``report.md`` (the same as tables) and one PNG
chart per benchmark. Every figure carries the number of items it rests on and a 95% bootstrap interval;
every defence is compared with the baseline on the same items (paired difference); missing answers and
judge failures are counted per cell, never dropped silently. For a rewriting defence it also says what the
rewriter did to each label's items (kept the instruction, changed it, named a threat, fell back), so a gain can be
told apart from prompts that simply lost the request, and — where the guard decided the threat by probability —
how well its threat score (1 − P(none)) ranks the harmful items above the benign ones (AUROC)."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from ..format import names_threat
from ..rewards.metrics import agreement
from .config import EvalConfig
from .stats import estimate, paired_deltas


def spec_name(spec: Any) -> str | None:
    """A backend spec as text (a Backend object passed from Python: its own spec or class name; a judge
    mapping: ``type:model``)."""
    if isinstance(spec, dict):
        return f"{spec.get('type', 'rubric')}:{spec_name(spec.get('model'))}"
    return spec if spec is None or isinstance(spec, str) else (getattr(spec, "spec", "") or type(spec).__name__)


def _values(records: Iterable[dict[str, Any]], metric: str) -> dict[str, float | None]:
    """Item id → value for the items the metric applies to (a protocol leaves out metrics that do not apply,
    e.g. over-refusal on harmful items; None means it applies but could not be scored)."""
    return {r["id"]: r["metrics"][metric] for r in records if metric in r["metrics"]}


def rewrite_counts(rewrites: Iterable[tuple[str, str, str | None, dict[str, Any]]]) -> dict[str, dict[str, int]]:
    """Per item label, what a rewriter did, from ``(label, instruction, prompt, analysis)`` of each rewrite:
    ``rewrites``, ``kept`` (the instruction verbatim), ``changed``, ``threat`` (a ``<threat>`` that names one, not
    "none"), ``fallback`` (no usable prompt). A refused rewrite (prompt None) is left out."""
    out: dict[str, dict[str, int]] = {}
    for label, instruction, prompt, analysis in rewrites:
        if prompt is None:
            continue
        c = out.setdefault(label, {"rewrites": 0, "kept": 0, "changed": 0, "threat": 0, "fallback": 0})
        c["rewrites"] += 1
        c["kept" if prompt.strip() == instruction.strip() else "changed"] += 1
        c["threat"] += names_threat(analysis.get("threat"))
        c["fallback"] += bool(analysis.get("fallback_used"))
    return out


def _rewrites(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """:func:`rewrite_counts` over a cell's records: the answers whose prompt a rewriter wrote (an ``analysis``
    with the rewriter's ``completion``); empty for defences that do not rewrite."""
    return rewrite_counts((str(r.get("label") or "all"), r.get("instruction") or "", resp.get("prompt"),
                           resp["analysis"]) for r in rows for resp in r["responses"]
                          if "completion" in (resp.get("analysis") or {}))


def threat_ranking(rows: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, Any] | None:
    """AUROC (95% bootstrap interval) of the guard's threat score — 1 − P(the threat opens with "none"), recorded
    when it decides by ``threat_threshold`` — for harmful above benign items of a cell; None where the cell has no
    scores for both labels."""
    pairs = [(resp["analysis"]["threat_score"], r["label"] == "harmful") for r in rows
             if r.get("label") in ("harmful", "benign") for resp in r["responses"]
             if (resp.get("analysis") or {}).get("threat_score") is not None]
    if len({h for _, h in pairs}) < 2:
        return None
    got = agreement([s for s, _ in pairs], [h for _, h in pairs], resamples=resamples, seed=seed)
    return {"auroc": got["auroc"], "ci": got["auroc_ci"], "harmful": sum(h for _, h in pairs),
            "benign": sum(not h for _, h in pairs)}


def build_report(records: list[dict[str, Any]], plan: dict[str, Any], config: EvalConfig) -> dict[str, Any]:
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        cells[(r["benchmark"], r["target"], r["defence"])].append(r)
    B, seed = config.bootstrap, config.seed
    results, paired, breakdowns, latency, rewrites, ranking = [], [], [], [], [], []
    for bench, info in plan.items():
        for target in config.targets:
            base = cells.get((bench, target, config.baseline), []) if config.baseline else []
            for defence in config.defences:
                rows = cells.get((bench, target, defence), [])
                missing = info["items"] - len(rows)
                judge_failed = sum(r["judge_failed"] > 0 for r in rows)
                unreachable = sum(r.get("judge_unreachable", 0) > 0 for r in rows)
                unreadable = sum(r.get("judge_unreadable", 0) > 0 for r in rows)
                for metric in info["metrics"]:
                    vals = _values(rows, metric)
                    est = estimate(list(vals.values()), B, seed)
                    results.append({"benchmark": bench, "target": target, "defence": defence, "metric": metric,
                                    **est.to_dict(), "items": info["items"], "missing": missing,
                                    "unscored": len(vals) - est.n, "judge_failed": judge_failed,
                                    "judge_unreachable": unreachable, "judge_unreadable": unreadable,
                                    "higher_is_better": info["higher_is_better"].get(metric, True)})
                    if base and defence != config.baseline:
                        deltas = paired_deltas(vals, _values(base, metric))
                        diff = estimate(deltas, B, seed)
                        up, down = sum(d > 0 for d in deltas), sum(d < 0 for d in deltas)
                        better, worse = (up, down) if info["higher_is_better"].get(metric, True) else (down, up)
                        paired.append({"benchmark": bench, "target": target, "defence": defence,
                                       "baseline": config.baseline, "metric": metric, "difference": diff.value,
                                       "n": diff.n, "ci": diff.to_dict()["ci"], "better": better, "worse": worse})
                    for key in info["breakdowns"]:
                        groups: dict[str, list[float | None]] = defaultdict(list)
                        for r in rows:
                            g = r["groups"].get(key)
                            for name in (g if isinstance(g, list) else [g]):  # MM-Vet: one item, several capabilities
                                if name is not None and metric in r["metrics"]:
                                    groups[str(name)].append(r["metrics"][metric])
                        for name in sorted(groups):
                            breakdowns.append({"benchmark": bench, "target": target, "defence": defence,
                                               "metric": metric, "by": key, "group": name,
                                               **estimate(groups[name], B, seed).to_dict()})
                for label, counts in sorted(_rewrites(rows).items()):
                    rewrites.append({"benchmark": bench, "target": target, "defence": defence, "label": label,
                                     **counts})
                if (rank := threat_ranking(rows, B, seed)) is not None:
                    ranking.append({"benchmark": bench, "target": target, "defence": defence, **rank})
                if rows:
                    latency.append({"benchmark": bench, "target": target, "defence": defence,
                                    "defence_s": sum(r["latency"]["defence_s"] for r in rows) / len(rows),
                                    "judge_s": sum(r["latency"]["judge_s"] for r in rows) / len(rows)})
    settings = {"targets": {k: spec_name(v) for k, v in config.targets.items()}, "defences": {k: asdict(v) for k, v in config.defences.items()},
                "baseline": config.baseline, "answer": asdict(config.answer), "judge": spec_name(config.judge),
                "judging": asdict(config.judging), "bootstrap": B, "seed": seed}
    return {"settings": settings, "benchmarks": plan, "results": results, "paired": paired,
            "breakdowns": breakdowns, "latency": latency, "rewrites": rewrites,
            "threat_ranking": ranking}


def _pct(value: float | None, ci: list[float] | None = None, signed: bool = False) -> str:
    if value is None:
        return "–"
    text = f"{value * 100:+.1f}" if signed else f"{value * 100:.1f}"
    return text + (f" [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else "")


def render_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = ["# VLMGuard-R1 evaluation report", "",
             "Rates in %, each with a 95% bootstrap interval [low, high] and n, the number of items it rests on "
             "(missing: not answered, the target failed; judge unreachable: the judge call failed — judged again "
             "by the next run —; judge unreadable: the judge answered outside its format, never guessed). "
             f"Paired differences compare each defence with `{s['baseline']}` on the items both answered.", "",
             "- targets: " + ", ".join(f"`{k}` = `{v}`" for k, v in s["targets"].items()),
             "- defences: " + ", ".join(f"`{k}` ({v['type']})" for k, v in s["defences"].items()),
             f"- answers: max_new_tokens {s['answer']['max_new_tokens']}, temperature {s['answer']['temperature']}, "
             f"top_p {s['answer']['top_p']}, seed {s['seed']}",
             f"- judge sampling: max_new_tokens {s['judging']['max_new_tokens']}, temperature "
             f"{s['judging']['temperature']}; bootstrap resamples {s['bootstrap']}", ""]
    for bench, info in report["benchmarks"].items():
        skipped = ", ".join(f"{v} {k}" for k, v in info["skipped"].items() if v) or "none"
        lines += [f"## {bench}", "",
                  f"{info['kind']} from `{info['root']}`: {info['items']} items (skipped at load: {skipped}); "
                  f"protocol `{info['protocol']}`, {info['responses']} answer(s) per item.",
                  (f"Judge `{info['judge']}`; rubrics: " + ", ".join(f"{k} = `{v['template']}` (sha256 {v['sha256']})"
                                                                    for k, v in info["rubrics"].items())
                   if info["judge"] else "Rule-based metric (no judge)."), ""]
        metrics = info["metrics"]
        arrows = ["↑" if info["higher_is_better"].get(m, True) else "↓" for m in metrics]
        lines += ["| target | defence | " + " | ".join(f"{m} {a}" for m, a in zip(metrics, arrows)) +
                  " | missing | judge unreachable | judge unreadable |", "|---" * (len(metrics) + 5) + "|"]
        rows = [r for r in report["results"] if r["benchmark"] == bench]
        for target in s["targets"]:
            for defence in s["defences"]:
                cell = {r["metric"]: r for r in rows if r["target"] == target and r["defence"] == defence}
                first = cell[metrics[0]]
                lines.append(f"| {target} | {defence} | " + " | ".join(
                    f"{_pct(cell[m]['value'], cell[m]['ci'])} n={cell[m]['n']}" for m in metrics) +
                    f" | {first['missing']} | {first['judge_unreachable']} | {first['judge_unreadable']} |")
        diffs = [p for p in report["paired"] if p["benchmark"] == bench]
        if diffs:
            lines += ["", (f"Paired difference vs `{s['baseline']}` (percentage points; after n, in parentheses, the "
                           "items that got better / worse):"), "",
                      "| target | defence | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
            for target in s["targets"]:
                for defence in s["defences"]:
                    cell = {p["metric"]: p for p in diffs if p["target"] == target and p["defence"] == defence}
                    if cell:
                        lines.append(f"| {target} | {defence} | " + " | ".join(
                            f"{_pct(cell[m]['difference'], cell[m]['ci'], signed=True)} n={cell[m]['n']} "
                            f"({cell[m]['better']} / {cell[m]['worse']})" for m in metrics) + " |")
        did = [w for w in report.get("rewrites", []) if w["benchmark"] == bench]
        if did:
            lines += ["", ("What the rewriter did (answers per item label): the instruction kept verbatim or changed, "
                           "a threat named (`<threat>` not \"none\"), the fallback used:"), "",
                      "| target | defence | label | rewrites | kept | changed | threat named | fallback |",
                      "|---|---|---|---|---|---|---|---|"]
            lines += [f"| {w['target']} | {w['defence']} | {w['label']} | {w['rewrites']} | {w['kept']} | "
                      f"{w['changed']} | {w['threat']} | {w['fallback']} |" for w in did]
        ranked = [w for w in report.get("threat_ranking", []) if w["benchmark"] == bench]
        if ranked:
            lines += ["", ("How well the rewriter's threat score (1 − P(none), read when it decides by "
                           "`threat_threshold`) ranks harmful above benign items, whatever the threshold:"), "",
                      "| target | defence | threat AUROC | harmful | benign |", "|---|---|---|---|---|"]
            lines += [f"| {w['target']} | {w['defence']} | {w['auroc']:.3f}"
                      + (f" [{w['ci'][0]:.3f}, {w['ci'][1]:.3f}]" if w["ci"] else "")
                      + f" | {w['harmful']} | {w['benign']} |" for w in ranked]
        for key in info["breakdowns"]:
            parts = [b for b in report["breakdowns"] if b["benchmark"] == bench and b["by"] == key
                     and b["metric"] == metrics[0]]
            groups = sorted({b["group"] for b in parts})
            if len(groups) < 2:
                continue
            cols = [(t, d) for t in s["targets"] for d in s["defences"]]
            lines += ["", f"{metrics[0]} by {key}:", "", f"| {key} | " + " | ".join(
                f"{t} · {d}" for t, d in cols) + " |", "|---" * (len(cols) + 1) + "|"]
            for g in groups:
                got = {(b["target"], b["defence"]): b for b in parts if b["group"] == g}
                lines.append(f"| {g} | " + " | ".join(
                    f"{_pct(got[c]['value'])} (n={got[c]['n']})" if c in got else "–" for c in cols) + " |")
        lines += ["", f"![{bench}](chart_{bench}.png)", ""]
    if report["latency"]:
        lines += ["## Latency", "", "Seconds per sample (a step's wall time over its batch).", "",
                  "| benchmark | target | defence | defence + target | judge |", "|---|---|---|---|---|"]
        lines += [f"| {r['benchmark']} | {r['target']} | {r['defence']} | {r['defence_s']:.3f} | {r['judge_s']:.3f} |"
                  for r in report["latency"]]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], out: Path) -> list[Path]:
    """One chart per benchmark: a panel per metric, bars per target grouped by defence, 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, paths = report["settings"], []
    targets, defences = list(s["targets"]), list(s["defences"])
    for bench, info in report["benchmarks"].items():
        metrics = info["metrics"]
        panel = max(2.6, 0.45 * len(targets) * len(defences) + 1.0)
        fig, axes = plt.subplots(1, len(metrics), figsize=(panel * len(metrics), 3.4), squeeze=False)
        width = 0.8 / len(defences)
        for ax, metric in zip(axes[0], metrics):
            for d, defence in enumerate(defences):
                vals, errs = [], [[], []]
                for target in targets:
                    r = next(x for x in report["results"] if (x["benchmark"], x["target"], x["defence"], x["metric"])
                             == (bench, target, defence, metric))
                    v = (r["value"] or 0) * 100
                    vals.append(v)
                    lo, hi = (r["ci"] or [r["value"] or 0] * 2)
                    errs[0].append(max(0.0, v - lo * 100))
                    errs[1].append(max(0.0, hi * 100 - v))
                ax.bar([t + d * width for t in range(len(targets))], vals, width, yerr=errs, capsize=3, label=defence)
            ax.set_xticks([t + width * (len(defences) - 1) / 2 for t in range(len(targets))], targets, fontsize=8)
            ax.set_title(f"{metric} ({'↑' if info['higher_is_better'].get(metric, True) else '↓'} better)", fontsize=9)
            ax.set_ylim(0, 100)
            ax.set_ylabel("%")
        axes[0][-1].legend(fontsize=7, loc="upper right")
        fig.suptitle(f"{bench}: {info['items']} items", fontsize=10)
        fig.tight_layout()
        path = out / f"chart_{bench}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    plot(report, out)
