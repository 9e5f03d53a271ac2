import json

import pytest
from PIL import Image

from vlmguard.errors import VLMGuardError
from vlmguard.examples import write_sample_file
from vlmguard.schema import load_samples


def test_formats_agree(tmp_path):
    src = write_sample_file(tmp_path / "d.jsonl", 5)
    rows = [json.loads(line) for line in src.read_text().splitlines()]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    from datasets import Dataset

    Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    loaded = [load_samples(tmp_path / n) for n in ("d.jsonl", "d.json", "d.parquet", "ds")]
    for other in loaded[1:]:
        assert [(s.id, s.instruction, s.label, s.image_path()) for s in other] == \
               [(s.id, s.instruction, s.label, s.image_path()) for s in loaded[0]]
    assert Image.open(loaded[0][0].image_path()).size == (224, 224)


@pytest.mark.parametrize("row, message", [
    ({"image": "a.png"}, "d.jsonl row 1: missing field 'instruction'"),
    ({"instruction": "  "}, "row 1: field 'instruction' must be non-empty"),
    ({"instruction": "x", "label": "maybe"}, "field 'label' is 'maybe'; use 'benign' or 'harmful'"),
    ({"instruction": "x", "safe_response": 3}, "field 'safe_response' must be text"),
    ({"id": "a", "instruction": "x"}, "row 1: duplicate id 'a'"),
])
def test_bad_rows_are_named(tmp_path, row, message):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "a", "instruction": "ok"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(VLMGuardError, match=message.replace("(", r"\(")):
        load_samples(path)


def test_bad_files(tmp_path):
    with pytest.raises(VLMGuardError, match="data not found"):
        load_samples(tmp_path / "none.jsonl")
    (tmp_path / "b.jsonl").write_text('{"instruction": "x"}\n{oops\n')
    with pytest.raises(VLMGuardError, match="b.jsonl line 2 is not valid JSON"):
        load_samples(tmp_path / "b.jsonl")
    (tmp_path / "c.csv").write_text("a,b")
    with pytest.raises(VLMGuardError, match="unsupported data file"):
        load_samples(tmp_path / "c.csv")


def test_labels_normalised_and_ids_defaulted(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"instruction": "x", "label": "SAFE"}) + "\n" + json.dumps(
        {"instruction": "y", "label": "unsafe"}) + "\n")
    a, b = load_samples(path)
    assert (a.id, a.label, b.id, b.label) == ("d-0", "benign", "d-1", "harmful")
