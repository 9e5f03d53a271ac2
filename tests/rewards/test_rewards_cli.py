"""``vlmguard rewards score`` / ``compare`` as a user runs them."""
import json

import yaml

from conftest import run_cli
from vlmguard.examples import write_sample_file


def _data(tmp_path):
    path = write_sample_file(tmp_path / "d.jsonl", 12)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for i, r in enumerate(rows):
        good = i % 3 != 0
        r["rewrite"] = r.pop("reference_rewrite") if good else "no tags here"
        r["response"] = "I'm sorry, I can't help with that." if i % 4 == 1 else "Here is a careful answer."
        r["gold"] = 1.0 if good else 0.0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_and_compare(tmp_path, tiny_models):
    data = _data(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rewards": {"format": {}, "intent": {}}}))
    judged = tmp_path / "judged.yaml"
    judged.write_text(yaml.safe_dump({"rewards": {"format": {"weight": 0.5}, "over_refusal": {},
                                                  "safety": {"judge": f"hf:{tiny_models['judge']}",
                                                             "max_new_tokens": 6}}}))
    out = run_cli("rewards", "score", "--config", str(rules), "--data", str(data), "--out", str(tmp_path / "s.jsonl"))
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout[:out.stdout.rindex("}") + 1])
    assert summary["rewards"]["format"]["mean"] == 8 / 12
    assert summary["rewards"]["format"]["gold_accuracy"] == 1.0 and summary["rewards"]["format"]["gold_auroc"] == 1.0
    scores = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert scores[0]["rewards"]["format"] == 0.0 and scores[1]["rewards"]["intent"] > 0.9  # benign copy
    assert scores[1]["total"] == scores[1]["rewards"]["format"] + scores[1]["rewards"]["intent"]

    out = run_cli("rewards", "compare", str(rules), str(judged), "--data", str(data), "--out", str(tmp_path / "cmp"),
                  "--top", "3")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    judged_summary = report["configs"][1]["rewards"]
    assert judged_summary["over_refusal"]["scored"] == 6  # benign rows only; answers given with the data
    assert judged_summary["over_refusal"]["mean"] == -3 / 6  # benign rows 1, 5, 9 (i % 4 == 1) refuse
    assert len(report["most_disagreement"]) == 3
    assert (tmp_path / "cmp" / "distributions.png").stat().st_size > 1000
    assert "most disagreement:" in out.stdout


def test_bad_config_is_one_line(tmp_path):
    data = _data(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"rewards": {"safety": {}}}))
    out = run_cli("rewards", "score", "--config", str(bad), "--data", str(data))
    assert out.returncode == 1 and "reward 'safety': reward 'safety' needs `judge: <backend spec>`" in out.stderr
    assert "Traceback" not in out.stderr
