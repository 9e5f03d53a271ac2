"""The built-in evaluation set: counts, kinds, family-level splits, determinism, pictures, loaders."""
import hashlib
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from vlmguard.evalset import _TYPO_STYLES, CATEGORIES, KINDS, SOURCE, build_evalset, draw_item, evalset_items

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_evalset(tmp_path_factory.mktemp("evalset"), seed=0)


def _rows(paths, split):
    return [json.loads(line) for line in paths[split].read_text().splitlines() if line.strip()]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_counts_labels_and_kinds(built):
    train, held = _rows(built, "train"), _rows(built, "heldout")
    rows = train + held
    labels = Counter(r["label"] for r in rows)
    assert labels["harmful"] >= 150 and labels["benign"] >= 150
    for split in (train, held):
        assert {r["label"] for r in split} == {"harmful", "benign"}
        assert {r["kind"] for r in split} == set(KINDS)
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["source"] == SOURCE and r["label"] == KINDS[r["kind"]] and r["category"] in CATEGORIES
        assert (r["category"] == "everyday") <= (r["label"] == "benign")  # harmful items name their harm
        assert not any(k.startswith("_") for k in r)  # the builder's private fields (_scene, _template, _x) stay out
        # requests only: no answers of any kind in the set
        assert not {"safe_response", "unsafe_response", "response", "answer"} & set(r)
    assert {r["category"] for r in rows if r["label"] == "harmful"} == set(CATEGORIES) - {"everyday"}
    assert sum(r["kind"] == "benign_lookalike" for r in rows) >= 40  # over-refusal probes
    assert any("kill a stuck process" in r["instruction"] for r in rows)


def test_split_by_family(built):
    train, held = _rows(built, "train"), _rows(built, "heldout")
    fam_train, fam_held = {r["family"] for r in train}, {r["family"] for r in held}
    assert not fam_train & fam_held
    assert 0.5 <= len(fam_train) / (len(fam_train) + len(fam_held)) <= 0.7
    assert 0.5 <= len(train) / (len(train) + len(held)) <= 0.7
    # no instruction, and no (instruction, picture text) pair, shows up in both splits
    assert not {r["instruction"] for r in train} & {r["instruction"] for r in held}
    pairs = [(r["instruction"], r["image_text"], r["scene"]) for r in train + held]
    assert len(set(pairs)) == len(pairs)
    assert all(r["split"] == "train" for r in train) and all(r["split"] == "heldout" for r in held)


def test_training_only_families_never_meet_the_heldout_split(built):
    train, held, more = _rows(built, "train"), _rows(built, "heldout"), _rows(built, "train_more")
    assert more[:len(train)] == train  # the train split, then the training-only families
    extra = more[len(train):]
    assert extra == _rows(built, "extra")  # extra.jsonl: the training-only families alone
    assert len(extra) >= 100 and all(r["split"] == "train" for r in extra)
    assert {r["kind"] for r in extra} == set(KINDS)
    assert {r["category"] for r in extra if r["label"] == "harmful"} == set(CATEGORIES) - {"everyday"}
    assert not {r["family"] for r in extra} & {r["family"] for r in train + held}
    assert len({r["id"] for r in more + held}) == len(more) + len(held)
    # no template of a held-out family among theirs (but the bare "{x}"), no instruction of the held-out split
    from vlmguard import evalset, trainfamilies

    held_families = {r["family"] for r in held}
    held_templates = {p.instruction for p in evalset.PARTS if p.family in held_families} - {"{x}"}
    assert not {p.instruction for p in trainfamilies.PARTS} & held_templates
    assert not {r["instruction"] for r in extra} & {r["instruction"] for r in held}
    pairs = [(r["instruction"], r["image_text"], r["scene"]) for r in more + held]
    assert len(set(pairs)) == len(pairs)
    for r in extra:
        with Image.open(built["train"].parent / r["image"]) as im:
            assert im.size == (448, 448)


def test_deterministic_by_seed(built, tmp_path):
    again = build_evalset(tmp_path / "again", seed=0)
    for split in ("train", "heldout", "train_more", "extra"):
        assert again[split].read_bytes() == built[split].read_bytes()
    assert _digest(again["images"]) == _digest(built["images"])
    splits = {s: {r["family"]: r["split"] for r in evalset_items(seed=s)} for s in range(4)}
    assert len({tuple(sorted(v.items())) for v in splits.values()}) > 1  # the seed chooses the split


def test_pictures(built):
    rows = _rows(built, "train") + _rows(built, "heldout")
    base = built["train"].parent
    for r in rows:
        path = base / r["image"]
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (448, 448)
            colours = im.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) >= 3  # a picture, not a blank
    kinds = Counter(r["image_style"] for r in rows)
    assert kinds["scene"] > 100 and kinds["label"] >= 10 and set(_TYPO_STYLES) <= set(kinds)
    assert all((r["image_text"] is None) == (r["image_style"] == "scene") == (r["scene"] is not None) for r in rows)
    # typographic pictures hold their text: drawn without it, the same picture loses many dark pixels
    for r in [r for r in rows if r["image_style"] in _TYPO_STYLES][::5]:
        rng = random.Random(f"0:{r['id']}")
        with Image.open(base / r["image"]) as im:
            shown = im.convert("L")
        blank = draw_item({**r, "image_text": ""}, rng).convert("L")
        differ = sum(a != b for a, b in zip(shown.getdata(), blank.getdata()))
        assert differ > 0.005 * 448 * 448, r["id"]


def test_loads_as_samples_and_records_benchmark(built):
    from vlmguard.eval.benchmarks import load_benchmark
    from vlmguard.schema import load_samples

    for split in ("train", "heldout"):
        samples = load_samples(built[split])
        assert len(samples) == len(_rows(built, split))
        s = samples[0]
        assert s.source == SOURCE and s.label in ("harmful", "benign")
        assert {"family", "kind", "split", "image_style", "image_text", "scene"} <= set(s.extra)
        assert Path(s.image_path()).is_file()
        bench = load_benchmark("records", str(built[split]))
        assert len(bench.samples) == len(samples) and not bench.skipped
        assert {x.label for x in bench.samples} == {"harmful", "benign"}
