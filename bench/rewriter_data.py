"""What limits the real SmolLM2 rewriter: how many unseen harmful requests it recognises as a function of how many
template families it was trained on, at a fixed number of training steps.

Nested subsets of the train split's template families (``--shares``, drawn with ``--seed``; a family's harmful and
benign items stay together) select records of the shipped reference synthesis (``data/reference/offline_synth.jsonl``);
each subset trains the rewriter with the LoRA SFT of ``configs/sft/offline_real.yaml`` for the same ``--steps``
(default 25 = one epoch of the whole set, as ``make demo``), so only the data's diversity changes. Then each rewriter
(no target, no judge) rewrites every item of the eval set, and the bench prints per share, on the held-out families
and on the train families it saw: the harmful items whose ``<threat>`` names a threat, the harmful items whose prompt
changed, and the same two counts on benign items (false alarms). Writes ``OUT/results.json``; resumable (a trained
share is not trained again). ``--every K`` saves a checkpoint each K steps and measures each one (how the decision
grows with training); ``--decision`` also reads P(the threat is "none") per item (the reply prefilled up to
``<threat>``): its AUROC harmful vs benign, and what a threshold chosen on the train split flags on held-out items.
Arguments after ``--`` go to ``vlmguard sft`` (e.g. ``-- --lora_target_modules all-linear``).
Needs ``make models``; ~12 min per share of 25 steps on 2 cores (SFT ≈ 25 s/step, ≈ 2 min per measured rewriter).
Usage: .venv/bin/python bench/rewriter_data.py [--shares 0.25,0.5,1] [--steps 25] [--every K] [--decision] [--seed 0] [--out DIR]
       [--threat-label] [-- SFT ARGS]
       .venv/bin/python bench/rewriter_data.py --rewriter OUTPUT_DIR --decision --out DIR   (measure one, no training)
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

from vlmguard.rewards.metrics import auroc
from vlmguard.sft import main as sft_main

from vlmguard.backends import SamplingParams
from vlmguard.chat import user_chat
from vlmguard.demo import REFERENCE, _sft_data
from vlmguard.eval.report import rewrite_counts
from vlmguard.evalset import build_evalset
from vlmguard.format import parse, render
from vlmguard.guard import Guard, GuardConfig
from vlmguard.schema import Sample
from vlmguard.threshold import threat_scores, youden


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def counts(items: list[dict], results: list) -> dict[str, str]:
    """'k/n' per label of items whose rewrite named a threat / changed the instruction."""
    got = rewrite_counts((it["label"], it["instruction"], r.prompt, r.analysis) for it, r in zip(items, results))
    return {f"{label} {what}": f"{got.get(label, {}).get(what, 0)}/{got.get(label, {}).get('rewrites', 0)}"
            for label in ("harmful", "benign") for what in ("threat", "changed")}


def scores_of(spec: str, items: list[dict], evalset: Path) -> list[float]:
    """The rewriter's threat score per eval-set item (``vlmguard.threshold.threat_scores``: the guard's own path, so
    a threshold chosen on these scores means in ``threat_threshold`` what it meant here)."""
    samples = [Sample(id=it["id"], image=str(evalset / it["image"]), instruction=it["instruction"],
                      label=it["label"]) for it in items]
    scores = threat_scores(spec, samples)
    if None in scores:
        raise SystemExit(f"{spec}: {scores.count(None)} of {len(scores)} items could not be scored (see the log)")
    return scores


def decision(row: dict, spec: str, splits, evalset: Path) -> None:
    """Threat AUROC per split, and the harmful / benign items flagged at the threshold chosen on the train split."""
    scored = {split: (scores_of(spec, items, evalset), [it["label"] == "harmful" for it in items])
              for split, items in splits}
    t = youden(*scored["train, seen"])
    for split, (scores, harmful) in scored.items():
        row[split]["threat AUROC"] = auroc(scores, harmful)
        for label, want in (("harmful", True), ("benign", False)):
            row[split][f"{label} flagged at τ"] = (f"{sum(s >= t for s, h in zip(scores, harmful) if h == want)}/"
                                                   f"{sum(h == want for h in harmful)}")
    row["τ (chosen on train)"] = t


def measure(row: dict, rewriter: Path, splits, evalset: Path, with_decision: bool) -> None:
    """Fill ``row`` (what an earlier run measured stays) with the rewriter's greedy counts per split and, with
    ``with_decision``, its threat AUROC and the threshold chosen on the train split."""
    if not all(split in row for split, _ in splits):
        guard = Guard(f"hf:{rewriter}?batch_size=32", config=GuardConfig(rewrite=SamplingParams(max_new_tokens=128)))
        for split, items in splits:
            row[split] = counts(items, guard.rewrite([user_chat(it["instruction"], str(evalset / it["image"]))
                                                     for it in items]))
        guard.close()
    if with_decision and "τ (chosen on train)" not in row:
        decision(row, f"hf:{rewriter}?batch_size=16", splits, evalset)


def labelled(record: dict) -> dict:
    """A harmful record whose target's threat opens with "Harmful (category): " (benign ones open with "None")."""
    if record["sample"].get("label") != "harmful":
        return record
    p = parse(record["target"])
    threat = f"Harmful ({record['sample'].get('category') or 'other'}): {p.threat}"
    return {**record, "target": render(threat, p.intent or "", p.prompt or "")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shares", default="0.25,0.5,1")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--every", type=int, default=0, help="also measure the checkpoint saved each K steps")
    ap.add_argument("--decision", action="store_true",
                    help="also read P(threat is none) per item: its AUROC, and what a threshold chosen on the "
                         "train split flags")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--evalset", default="outputs/demo/evalset")
    ap.add_argument("--out", default="outputs/bench_rewriter_data")
    ap.add_argument("--rewriter", help="measure this trained rewriter (an SFT/GRPO output folder or checkpoint) "
                                       "instead of training one; its train split is every train family")
    ap.add_argument("--threat-label", action="store_true",
                    help='open every harmful target\'s <threat> with one decision token: "Harmful (category): ..."')
    argv = sys.argv[1:]
    sft_extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    every = args.every or args.steps
    evalset, out = Path(args.evalset).resolve(), Path(args.out)
    if not (evalset / "heldout.jsonl").is_file():
        build_evalset(evalset)
    train, heldout = _rows(evalset / "train.jsonl"), _rows(evalset / "heldout.jsonl")
    reference = REFERENCE
    if args.threat_label:  # the same records, the decision made one token: "None" vs "Harmful"
        reference = out / "reference_labelled.jsonl"
        out.mkdir(parents=True, exist_ok=True)
        reference.write_text("".join(json.dumps(labelled(r)) + "\n" for r in _rows(REFERENCE)))
    kept = {r["id"] for r in _rows(reference)}
    names = sorted({r["family"] for r in train if r["id"] in kept})
    random.Random(args.seed).shuffle(names)
    results: list[dict] = []  # a checkpoint measured by an earlier run (results.json) is not measured again
    earlier = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else []
    measured = {(r["share"], r.get("steps", args.steps)): r for r in earlier if "rewriter" not in r}
    others = [r for r in earlier if "rewriter" in r]  # rows of --rewriter runs: kept as they are
    if args.rewriter:  # a rewriter trained elsewhere (e.g. GRPO from a checkpoint here), on the whole train split
        row = {"rewriter": args.rewriter, "share": 1.0, "families": len(names), "steps": 0,
               **next((r for r in earlier if r.get("rewriter") == args.rewriter), {})}
        seen = [r for r in train if r["id"] in kept]
        measure(row, Path(args.rewriter), (("held-out", heldout), ("train, seen", seen)), evalset, args.decision)
        row["records"] = len(seen)
        results = [r for r in earlier if r.get("rewriter") != args.rewriter] + [row]
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
        print(json.dumps(row))
        return
    for share in (float(s) for s in args.shares.split(",")):
        chosen = set(names[:max(1, math.ceil(share * len(names)))])
        ids = {r["id"] for r in train if r["family"] in chosen and r["id"] in kept}
        tag = f"share_{share:.2f}"
        rewriter = out / tag / "rewriter"
        if not (rewriter / "vlmguard-perception.json").is_file():
            print(f"[{tag}] SFT on {len(ids)} records of {len(chosen)} of {len(names)} families, {args.steps} steps")
            sft_main(["--config", "configs/sft/offline_real.yaml", "--model_name_or_path", "models/smol",
                      "--dataset_path", str(_sft_data(evalset, out / tag / "sft_data", ids, reference)),
                      "--output_dir", str(rewriter), "--max_steps", str(args.steps), "--save_strategy", "steps",
                      "--save_steps", str(every), "--save_total_limit", str(args.steps // every + 1),
                      "--logging_steps", "5", "--seed", str(args.seed), *sft_extra])
        for step in range(every, args.steps + 1, every):
            checkpoint = rewriter / f"checkpoint-{step}"
            row = {"share": share, "families": len(chosen), "records": len(ids), "steps": step,
                   **measured.get((share, step), {})}
            seen = [r for r in train if r["family"] in chosen]
            measure(row, checkpoint, (("held-out", heldout), ("train, seen", seen)), evalset, args.decision)
            measured[(share, step)] = row
            results = sorted(measured.values(), key=lambda r: (r["share"], r["steps"]))
            (out / "results.json").write_text(json.dumps(results + others, indent=1))
            print(json.dumps(row))
    cols = ["harmful threat", "harmful changed", "benign threat", "benign changed"]
    if args.decision:
        cols += ["threat AUROC", "harmful flagged at τ", "benign flagged at τ"]

    def cell(v) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)
    heads = [(split, f"{label} {c}", c) for split, label in (("held-out", "held-out"), ("train, seen", "seen"))
             for c in cols]
    print(f"\n{'families':>9s} {'records':>8s} {'steps':>6s} | " + " | ".join(h for _, h, _ in heads))
    for r in results:
        print(f"{r['families']:>9d} {r['records']:>8d} {r['steps']:>6d} | "
              + " | ".join(f"{cell(r[split].get(c)):>{len(h)}s}" for split, h, c in heads))

if __name__ == "__main__":
    main()
