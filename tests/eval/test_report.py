"""The report's account of where a defence's difference comes from: items that got better / worse than the
baseline, and what a rewriting defence did to each label's items, on hand-built records."""
from vlmguard.eval import EvalConfig
from vlmguard.eval.report import build_report, render_markdown


def _record(defence: str, item: str, label: str, unsafe: float, prompt: str | None = None,
            threat: str | None = None, fallback: bool = False) -> dict:
    analysis = {} if prompt is None else {"completion": "…", "threat": threat, "fallback_used": fallback}
    return {"benchmark": "b", "target": "t", "defence": defence, "id": item, "label": label,
            "instruction": f"instruction {item}", "groups": {},
            "metrics": {"attack_success": unsafe} if label == "harmful" else {"over_refusal": unsafe},
            "responses": [{"answer": "a", "prompt": prompt, "analysis": analysis}],
            "judge_failed": 0, "latency": {"defence_s": 0.0, "judge_s": 0.0}}


def test_flips_and_what_the_rewriter_did(tmp_path):
    config = EvalConfig.from_dict({"out": str(tmp_path), "targets": {"t": "hf:unused"}, "bootstrap": 50,
                                   "defences": {"none": {}, "vlmguard": {"rewriter": "hf:unused"}},
                                   "benchmarks": {"b": {"kind": "records", "path": str(tmp_path / "x.jsonl")}}})
    base = [_record("none", "h1", "harmful", 1.0), _record("none", "h2", "harmful", 1.0),
            _record("none", "h3", "harmful", 0.0), _record("none", "b1", "benign", 0.0)]
    guarded = [
        _record("vlmguard", "h1", "harmful", 0.0, "What are the dangers of h1?", "Weapons: a bomb"),  # reframed
        _record("vlmguard", "h2", "harmful", 1.0, "instruction h2", "None"),  # passed on verbatim
        _record("vlmguard", "h3", "harmful", 1.0, "instruction h3 ", "none.", fallback=True),  # made unsafe
        _record("vlmguard", "b1", "benign", 1.0, "shorter b1", "None: harmless")]  # refused
    plan = {"b": {"items": 4, "metrics": ["attack_success", "over_refusal"],
                  "higher_is_better": {"attack_success": False, "over_refusal": False}, "breakdowns": []}}
    report = build_report(base + guarded, plan, config)
    paired = {p["metric"]: p for p in report["paired"]}
    assert (paired["attack_success"]["better"], paired["attack_success"]["worse"]) == (1, 1)
    assert paired["attack_success"]["difference"] == 0.0 and paired["attack_success"]["n"] == 3
    assert (paired["over_refusal"]["better"], paired["over_refusal"]["worse"]) == (0, 1)
    did = {w["label"]: w for w in report["rewrites"]}
    assert set(did) == {"harmful", "benign"}  # nothing for `none`, which does not rewrite
    assert {k: did["harmful"][k] for k in ("rewrites", "kept", "changed", "threat", "fallback")} == {
        "rewrites": 3, "kept": 2, "changed": 1, "threat": 1, "fallback": 1}
    assert (did["benign"]["changed"], did["benign"]["threat"]) == (1, 0)
    md = render_markdown({**report, "benchmarks": {"b": {**plan["b"], "kind": "records", "root": "x", "skipped": {},
                                                         "protocol": "P", "responses": 1, "judge": None}}})
    assert "n=3 (1 / 1)" in md and "| t | vlmguard | harmful | 3 | 2 | 1 | 1 | 1 |" in md


def test_threat_ranking_of_a_thresholded_rewriter(tmp_path):
    """The guard records 1 − P(none) when it decides by threshold: the report ranks harmful above benign items
    by it (AUROC, hand-computed) and says nothing for a defence that recorded no scores."""
    config = EvalConfig.from_dict({"out": str(tmp_path), "targets": {"t": "hf:unused"}, "bootstrap": 200,
                                   "defences": {"none": {}, "greedy": {"rewriter": "hf:unused"},
                                                "tau": {"rewriter": "hf:unused"}},
                                   "benchmarks": {"b": {"kind": "records", "path": str(tmp_path / "x.jsonl")}}})
    items = [("h1", "harmful", 0.9), ("h2", "harmful", 0.2), ("h3", "harmful", 0.6),
             ("b1", "benign", 0.5), ("b2", "benign", 0.1)]
    records = [_record("none", i, label, 0.0) for i, label, _ in items]
    records += [_record("greedy", i, label, 0.0, f"instruction {i}", "None") for i, label, _ in items]
    for i, label, score in items:
        r = _record("tau", i, label, 0.0, f"instruction {i}", "None")
        r["responses"][0]["analysis"]["threat_score"] = score
        records.append(r)
    plan = {"b": {"items": 5, "metrics": ["attack_success", "over_refusal"],
                  "higher_is_better": {"attack_success": False, "over_refusal": False}, "breakdowns": []}}
    report = build_report(records, plan, config)
    assert [w["defence"] for w in report["threat_ranking"]] == ["tau"]
    (rank,) = report["threat_ranking"]
    # harmful above benign in 5 of the 6 pairs (0.2 < 0.5 is the one miss)
    assert abs(rank["auroc"] - 5 / 6) < 1e-9 and (rank["harmful"], rank["benign"]) == (3, 2)
    assert rank["ci"] is not None and rank["ci"][0] <= rank["auroc"] <= rank["ci"][1]
    md = render_markdown({**report, "benchmarks": {"b": {**plan["b"], "kind": "records", "root": "x", "skipped": {},
                                                         "protocol": "P", "responses": 1, "judge": None}}})
    ranked = md.split("threat AUROC |")[1].split("##")[0]
    assert "| t | tau | 0.833 [" in ranked and "greedy" not in ranked


def test_paired_against_a_named_baseline(tmp_path):
    """`baseline: sft` pairs every other defence with the SFT rewriter, `none` included, and the report says so."""
    config = EvalConfig.from_dict({"out": str(tmp_path), "targets": {"t": "hf:unused"}, "bootstrap": 50,
                                   "defences": {"none": {}, "sft": {"rewriter": "hf:unused"},
                                                "grpo": {"rewriter": "hf:unused"}}, "baseline": "sft",
                                   "benchmarks": {"b": {"kind": "records", "path": str(tmp_path / "x.jsonl")}}})
    unsafe = {"none": [1.0, 1.0, 1.0], "sft": [0.0, 1.0, 1.0], "grpo": [0.0, 0.0, 1.0]}
    records = [_record(d, f"h{i}", "harmful", u) for d, values in unsafe.items() for i, u in enumerate(values)]
    plan = {"b": {"items": 3, "metrics": ["attack_success"], "higher_is_better": {"attack_success": False},
                  "breakdowns": []}}
    report = build_report(records, plan, config)
    paired = {p["defence"]: p for p in report["paired"]}
    assert set(paired) == {"none", "grpo"} and {p["baseline"] for p in paired.values()} == {"sft"}
    grpo, none = paired["grpo"], paired["none"]
    assert abs(grpo["difference"] + 1 / 3) < 1e-9 and (grpo["better"], grpo["worse"]) == (1, 0)
    assert abs(none["difference"] - 1 / 3) < 1e-9 and (none["better"], none["worse"]) == (0, 1)
