"""The shipped reference synthesis (data/reference/) matches the eval set it was made from: training items only."""
import json
from pathlib import Path

from vlmguard.evalset import evalset_items
from vlmguard.format import parse

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"


def _records(name):
    return [json.loads(line) for line in (REFERENCE / name).read_text().splitlines() if line.strip()]


def test_reference_synthesis_is_of_training_items_and_parses():
    rows = {r["id"]: r for r in evalset_items(0) + evalset_items(0, extra=True)}
    train = {i for i, r in rows.items() if r["split"] == "train"}
    base, more = _records("offline_synth.jsonl"), _records("offline_synth_more.jsonl")
    ids = [r["id"] for r in base + more]
    assert len(ids) == len(set(ids))
    assert {r["id"] for r in base} <= {i for i in train if not rows[i]["family"].startswith(("more-", "x-more-"))}
    assert set(ids) <= train and len(ids) >= 0.98 * len(train)  # all of train_more.jsonl but the teacher's drops
    for r in base + more:
        row, sample = rows[r["id"]], r["sample"]
        assert r["status"] == "kept" and sample["image"] == row["image"]
        assert (sample["instruction"], sample["label"], sample["category"]) == (row["instruction"], row["label"],
                                                                                row["category"])
        target = parse(r["target"])
        assert target.ok, (r["id"], target.problems)
