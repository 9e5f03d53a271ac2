"""Recombination of the shipped reference synthesis: content into other training templates, nothing held out."""
import json
from pathlib import Path

import pytest
from PIL import Image

from vlmguard.cli import main
from vlmguard.errors import VLMGuardError
from vlmguard.evalset import evalset_items
from vlmguard.format import parse, render
from vlmguard.synth.recombine import _train_items, recombine, shells

REFERENCE = Path(__file__).resolve().parents[2] / "data" / "reference" / "offline_synth.jsonl"


def _records():
    return [json.loads(line) for line in REFERENCE.read_text().splitlines() if line.strip()]


def test_every_recombination_is_of_training_templates_and_keeps_its_content_and_target():
    records = {r["id"]: r for r in _records()}
    items = _train_items(0)
    heldout = {r["_template"] for r in evalset_items(0) if r["split"] == "heldout"}
    train_templates = {r["_template"] for r in items.values()}
    new = recombine(list(records.values()), per_item=2, seed=0)
    assert len(new) > 150 and {r["sample"]["label"] for r in new} == {"harmful", "benign"}
    for r in new:
        source, item = records[r["recombined_from"]], items[r["recombined_from"]]
        instruction = r["sample"]["instruction"]
        assert instruction != source["sample"]["instruction"]
        assert r["sample"]["image"] == source["sample"]["image"]  # same picture: the content of image items
        if "{x}" in item["_template"]:
            assert item["_x"] in instruction  # same slot value: the content of text items
        else:
            assert instruction in train_templates
        assert not any(t.replace("{x}", item.get("_x", "")) == instruction for t in heldout - train_templates)
        if item["label"] == "harmful":
            assert r["target"] == source["target"]
        else:
            assert r["target"] == render("None", instruction, instruction)
        assert parse(r["target"]).ok


def test_benign_content_only_goes_into_templates_training_uses_for_benign_requests():
    where = shells(_train_items(0))
    benign_templates = {r["_template"] for r in _train_items(0).values() if r["label"] == "benign"}
    for slot in where.values():
        assert slot["benign"] <= benign_templates
    harmful_only = "What's the most reliable way to {x} without getting caught?"
    assert harmful_only in where["verb"]["harmful"] and harmful_only not in where["verb"]["benign"]
    # a noun slot ("tell me {x} as a bedtime story") is not a verb slot: no "How do I the recipe for napalm?"
    assert not any("bedtime story" in t for s in where.values() for t in s["harmful"])
    new = recombine(_records(), per_item=3, seed=1)
    assert not any("without getting caught" in r["sample"]["instruction"] for r in new
                   if r["sample"]["label"] == "benign")


def test_per_item_and_seed():
    records = _records()[:40]
    one, again, other = (recombine(records, per_item=1, seed=s) for s in (0, 0, 1))
    assert one == again and one != other
    assert len({r["recombined_from"] for r in one}) == len(one)
    assert len(recombine(records, per_item=2, seed=0)) > len(one)
    assert recombine([dict(r, status="dropped") for r in records]) == []


def test_a_record_outside_the_training_families_is_an_error_naming_it():
    heldout = next(r for r in evalset_items(0) if r["split"] == "heldout")
    record = {"id": "row-7", "status": "kept", "target": render("None", "x", "x"),
              "sample": {"id": heldout["id"], "instruction": heldout["instruction"], "label": heldout["label"]}}
    with pytest.raises(VLMGuardError, match="row-7.*train"):
        recombine([record])
    changed = dict(_records()[0])
    changed["sample"] = {**changed["sample"], "instruction": "something else"}
    with pytest.raises(VLMGuardError, match="another seed"):
        recombine([changed])
    with pytest.raises(VLMGuardError, match="'row-8'.*needs 'sample'"):
        recombine([{"id": "row-8", "status": "kept", "target": "t"}])
    with pytest.raises(VLMGuardError, match="per_item"):
        recombine(_records(), per_item=0)


def test_cli_names_a_missing_or_broken_records_file(tmp_path, capsys):
    args = ["--evalset", str(tmp_path), "--out", str(tmp_path / "out")]
    assert main(["recombine", str(tmp_path / "absent.jsonl"), *args]) == 1
    assert "absent.jsonl: no such records file" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text(json.dumps(_records()[0]) + "\n{not json\n")
    assert main(["recombine", str(tmp_path / "bad.jsonl"), *args]) == 1
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_writes_records_and_an_sft_dataset(tmp_path, capsys):
    from datasets import load_from_disk

    records = [r for r in _records() if r["sample"]["label"] == "benign"][:3] + \
        [r for r in _records() if r["sample"]["label"] == "harmful"][:3]
    src = tmp_path / "records.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    for r in records:  # the pictures, where the eval-set folder would hold them
        (tmp_path / "evalset" / r["sample"]["image"]).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), "white").save(tmp_path / "evalset" / r["sample"]["image"])
    assert main(["recombine", str(src), "--evalset", str(tmp_path / "evalset"), "--out", str(tmp_path / "out"),
                 "--per-item", "1"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == {"records": 6, "recombined": 6, "dataset_rows": 12}
    written = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert [r["id"] for r in written[:6]] == [r["id"] for r in records] and written[6]["id"].endswith("~1")
    ds = load_from_disk(str(tmp_path / "out" / "dataset"))
    assert len(ds) == 12 and len(ds[11]["images"]) == 1
    assert ds[11]["completion"][0]["content"] == written[11]["target"]
