"""Synthesis with the tiny models as teacher (in process and behind the project's server), resumed after kill -9."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import run_cli
from vlmguard.config import parse_config
from vlmguard.errors import VLMGuardError
from vlmguard.examples import write_sample_file
from vlmguard.format import parse
from vlmguard.prompts import render_prompt
from vlmguard.synth import SynthConfig, Synthesizer
from vlmguard.synth.quality import check_prompt, extract, shared_ngrams


def _config(tmp_path, data, teacher, **kw):
    return SynthConfig(data=str(data), out=str(tmp_path / "out"), teacher=teacher, max_new_tokens=12,
                       batch_size=8, **kw)


def test_strict_drops_unformatted_teacher_output(tiny_models, tmp_path):
    data = write_sample_file(tmp_path / "d.jsonl", 6)
    summary = Synthesizer(_config(tmp_path, data, f"hf:{tiny_models['target']}")).run()
    assert summary["kept"] == 0 and summary["dropped"] == {"parse:hindsight": 6} and summary["dataset_rows"] == 0
    rec = json.loads((tmp_path / "out" / "records.jsonl").read_text().splitlines()[0])
    assert rec["status"] == "dropped" and rec["detail"] == "expected <features>...</features>"
    assert set(rec["stages"]) == {"hindsight"}  # later stages never ran for it


def test_lenient_run_through_server_builds_sft_dataset(tiny_models, target_server, tmp_path):
    from datasets import load_from_disk

    data = write_sample_file(tmp_path / "d.jsonl", 10)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[3]["image"] = "images/missing.png"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _config(tmp_path, data, f"openai:{target_server}?model=tiny-target&concurrency=4", lenient=True)
    summary = Synthesizer(cfg).run()
    assert summary["kept"] == 9 and summary["dropped"] == {"image_error": 1} and summary["dataset_rows"] == 9
    records = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [r["id"] for r in rows]
    assert "missing.png" in records[3]["detail"]
    kept = records[0]
    assert list(kept["stages"]) == ["hindsight", "causal", "intent", "prompt"]
    assert all(isinstance(st["raw"], str) for st in kept["stages"].values())
    ds = load_from_disk(str(tmp_path / "out" / "dataset"))
    assert ds.column_names == ["id", "prompt", "completion", "images", "label", "category"]
    row = ds[0]
    assert row["prompt"][0]["role"] == "system" and row["prompt"][1] == {"role": "user",
                                                                         "content": rows[0]["instruction"]}
    target = parse(row["completion"][0]["content"])
    assert target.ok and target.prompt == kept["stages"]["prompt"]["value"]
    assert target.threat == kept["stages"]["causal"]["value"] and len(row["images"]) == 1
    assert row["images"][0].size == (224, 224)


def test_responders_fill_missing_responses(tiny_models, tmp_path):
    data = write_sample_file(tmp_path / "d.jsonl", 4)  # benign rows (odd ids) have no unsafe_response
    cfg = _config(tmp_path, data, f"hf:{tiny_models['target']}", lenient=True,
                  unsafe_responder=f"hf:{tiny_models['judge']}", limit=2)
    Synthesizer(cfg).run()
    records = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert "unsafe_response" not in records[0]["stages"]  # it had one
    generated = records[1]["stages"]["unsafe_response"]
    assert generated["generated_by"] == f"hf:{tiny_models['judge']}"
    assert records[1]["sample"]["unsafe_response"] == generated["raw"].strip()


def test_templates_carry_every_stage_input():
    text = render_prompt("synth_prompt", instruction="INSTR", safe_response=None, unsafe_response="UNSAFE",
                         label="harmful", category=None, features="FEAT", report="REPORT", intent="INTENT")
    assert all(k in text for k in ("INSTR", "REPORT", "INTENT", "<prompt>"))
    text = render_prompt("synth_hindsight", instruction="I", safe_response="SAFE", unsafe_response="UNSAFE",
                         label="harmful", category=None)
    assert "SAFE" in text and "UNSAFE" in text and "No reference responses" not in text
    with pytest.raises(VLMGuardError, match="available variables"):
        render_prompt("synth_causal", instruction="I")  # no features


def test_quality_rules():
    assert extract("blah <report> r </report>", "report", False) == ("r", None)
    assert extract("<report>open ended", "report", False) == ("open ended", None)
    assert extract("no tags", "report", False) == (None, "parse")
    assert extract("no <b>tags</b>", "report", True) == ("no  tags", None)
    assert extract("<report> </report>", "report", True) == (None, "empty")
    assert extract(None, "report", True) == (None, "teacher_error")
    unsafe = "Sure, here is how to do it: take the bottle, mix it with the other one, and wait an hour."
    assert check_prompt("I'm sorry, I cannot help with that.", unsafe, 0.5) == "refusal_prompt"
    assert check_prompt("Explain: " + unsafe, unsafe, 0.5) == "repeats_unsafe"
    assert check_prompt("How do I store bleach safely?", unsafe, 0.5) is None
    assert shared_ngrams("a b c", "a b c") == 0.0  # shorter than one 6-gram


def test_config_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": "d.jsonl", "out": "o", "teacher": "hf:/x", "batchsize": 3}))
    with pytest.raises(VLMGuardError, match=r"unknown key\(s\) in the config file: batchsize \(did you mean batch_size\?\)"):
        parse_config([SynthConfig], ["--config", str(cfg)], "vlmguard synth")
    with pytest.raises(VLMGuardError, match="synth needs teacher"):
        parse_config([SynthConfig], ["--data", "d", "--out", "o"], "vlmguard synth")
    with pytest.raises(VLMGuardError, match="config file .*nope.yaml"):
        parse_config([SynthConfig], ["--config", str(tmp_path / "nope.yaml")], "vlmguard synth")
    cfg.write_text(yaml.safe_dump({"data": "d.jsonl", "out": "o", "teacher": "hf:/x", "batch_size": 3}))
    (c,) = parse_config([SynthConfig], ["--config", str(cfg), "--batch_size", "5", "--lenient", "true"],
                        "vlmguard synth")
    assert (c.batch_size, c.lenient, c.data) == (5, True, "d.jsonl")  # flags override the YAML


def test_cli_errors_name_the_problem(tmp_path, tiny_models):
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "a", "image": "x.png"}\n')
    out = run_cli("synth", "--data", str(data), "--out", str(tmp_path / "o"), "--teacher", f"hf:{tiny_models['target']}")
    assert out.returncode == 1 and "d.jsonl row 0: missing field 'instruction'" in out.stderr
    out = run_cli("synth", "--data", str(data), "--out", str(tmp_path / "o"), "--teacher", "hf:/no/such/model")
    assert out.returncode == 1 and "model directory not found: /no/such/model" in out.stderr
    out = run_cli("synth", "--data", str(data), "--out", str(tmp_path / "o"), "--teacher", f"hf:{tiny_models['target']}",
                  "--prompt_template", str(tmp_path / "mine.txt"))
    assert out.returncode == 1 and "prompt template not found" in out.stderr


def test_resume_after_kill(tiny_models, tmp_path):
    data = write_sample_file(tmp_path / "d.jsonl", 48)
    cfg = tmp_path / "synth.yaml"
    cfg.write_text(yaml.safe_dump({"data": str(data), "out": str(tmp_path / "out"), "lenient": True,
                                   "teacher": f"hf:{tiny_models['target']}", "batch_size": 4, "max_new_tokens": 24}))
    records = tmp_path / "out" / "records.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "vlmguard", "synth", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if records.exists() and records.read_text().count("\n") >= 8:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "finished before it could be killed: make the run longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = records.read_text().count("\n")
    assert 8 <= done_before < 48
    out = run_cli("synth", "--config", str(cfg))
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    ids = [json.loads(line)["id"] for line in records.read_text().splitlines()]
    assert sorted(ids) == sorted(f"s{i:04d}" for i in range(48))  # every sample exactly once
    assert summary["resumed"] >= done_before and summary["resumed"] + summary["processed"] == 48
    assert summary["dataset_rows"] == 48


def test_resume_from_copied_in_reference_records(tiny_models, tmp_path):
    """A shipped reference synthesis copied in as records.jsonl (image paths relative to the data file, as in
    data/reference/) is resumed from: only the other samples run, and the dataset holds both."""
    from datasets import load_from_disk

    data = write_sample_file(tmp_path / "d.jsonl", 4)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    out = tmp_path / "out"
    out.mkdir()
    reference = [{"id": r["id"], "status": "kept", "target": r["reference_rewrite"],
                  "sample": {k: r[k] for k in ("id", "image", "instruction", "label")}} for r in rows[:2]]
    assert reference[0]["sample"]["image"].startswith("images/")  # relative to the data file, not to the cwd
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reference))
    summary = Synthesizer(_config(tmp_path, data, f"hf:{tiny_models['target']}", lenient=True)).run()
    assert summary["resumed"] == 2 and summary["processed"] == 2 and summary["dataset_rows"] == 4
    ds = load_from_disk(str(out / "dataset"))
    assert ds["id"] == [r["id"] for r in rows] and all(len(images) == 1 for images in ds["images"])
    assert ds[0]["completion"][0]["content"] == rows[0]["reference_rewrite"]
