"""Benchmark loaders: local copies of the official releases, mapped to :class:`~vlmguard.schema.Sample`.

Each loader reads the on-disk layout of the benchmark's own repository (no network), fails with a
:class:`VLMGuardError` naming the expected file or field and where to get it, and counts items whose image
file is missing as skips (by reason) rather than failing. ``load_benchmark`` adds the benchmark's judging
protocol (:mod:`vlmguard.eval.protocols`).

Sample ids are stable: ``siuo/<question_id>``, ``mmsb/<scenario>/<image type>/<id>``,
``vlguard/<subset>/<id>``, ``mmvet/<key>``; ``records`` keeps the dataset's own ids.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import VLMGuardError
from ..schema import Sample, load_samples
from .protocol import Protocol
from .protocols import MMSafetyBenchProtocol, MMVetProtocol, RecordsProtocol, SIUOProtocol, VLGuardProtocol

MISSING_IMAGE = "missing image"

MMSB_SCENARIOS = ("01-Illegal_Activitiy", "02-HateSpeech", "03-Malware_Generation", "04-Physical_Harm",
                  "05-EconomicHarm", "06-Fraud", "07-Sex", "08-Political_Lobbying", "09-Privacy_Violence",
                  "10-Legal_Opinion", "11-Financial_Advice", "12-Health_Consultation", "13-Gov_Decision")
"""Official scenario names, spelling included (``Activitiy``): file stems and image folder names."""
MMSB_QUESTION_FIELD = {"SD": "Rephrased Question(SD)", "SD_TYPO": "Rephrased Question", "TYPO": "Rephrased Question"}
"""The question each image type is paired with (the official README's three kinds)."""


@dataclass
class Benchmark:
    name: str
    samples: list[Sample]
    protocol: Protocol
    skipped: dict[str, int]
    """Items left out, by reason (``missing image``…)."""
    root: str


@dataclass(frozen=True)
class BenchmarkKind:
    title: str
    source: str
    layout: str
    """The official on-disk layout, as written in error messages."""
    subsets: tuple[str, ...]
    """Selectable subsets; ``limit`` applies per subset (MM-SafetyBench: per scenario and image type)."""
    load: Callable[..., dict[str, list[Sample]]]
    """``load(kind, root, subsets, skipped, **options)`` → samples grouped for ``limit``, in a fixed order."""
    protocol: type[Protocol]
    options: tuple[str, ...] = ()
    protocol_options: tuple[str, ...] = ()


# --- shared helpers ----------------------------------------------------------------------------------------


def _locate(kind: BenchmarkKind, root: Path, candidates: Sequence[str]) -> Path:
    """The first candidate path under ``root`` that exists, or an error naming the official layout."""
    for rel in candidates:
        if (root / rel).exists():
            return root / rel
    raise VLMGuardError(f"{root / candidates[0]} not found: expected the official {kind.title} layout {kind.layout}; "
                        f"get it from {kind.source}")


def _folder(kind: BenchmarkKind, path: Path) -> Path:
    if not path.is_dir():
        raise VLMGuardError(f"image folder {path} not found: expected the official {kind.title} layout {kind.layout}; "
                            f"get the images from {kind.source}")
    return path


def _read_json(kind: BenchmarkKind, path: Path, expect: type) -> Any:
    """A JSON file of the expected top-level type, or an error naming the file and the fix."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VLMGuardError(f"{path} is not valid JSON ({e}): re-download it from {kind.source}") from e
    if not isinstance(data, expect):
        raise VLMGuardError(f"{path}: expected a JSON {'list' if expect is list else 'object'} at the top level, got "
                            f"{type(data).__name__}: is this the official {kind.title} file ({kind.source})?")
    return data


def _field(item: Any, key: str, where: str, kind: type | tuple[type, ...] = str, required: bool = True) -> Any:
    """``item[key]`` checked for type (and, for required text, non-empty); errors name ``where`` and the field."""
    if not isinstance(item, dict):
        raise VLMGuardError(f"{where}: expected an object with field {key!r}, got {type(item).__name__}")
    if key not in item:
        raise VLMGuardError(f"{where}: missing field {key!r}")
    value = item[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise VLMGuardError(f"{where}: field {key!r} must be {name}, got {type(value).__name__} {value!r:.60}")
    if required and isinstance(value, str) and not value.strip():
        raise VLMGuardError(f"{where}: field {key!r} is empty")
    return value


def _image(path: Path, skipped: Counter, count: int = 1) -> str | None:
    """The image's absolute path, or None (and ``count`` skips) when the file is missing."""
    if path.is_file():
        return str(path)
    skipped[MISSING_IMAGE] += count
    return None


def _natural(key: str) -> tuple[int, int | str]:
    """Order ids numerically where they are numbers (``v1_2`` before ``v1_10``)."""
    tail = key.rsplit("_", 1)[-1]
    return (0, int(tail)) if tail.isdigit() else (1, key)


def _dedupe(samples: list[Sample]) -> None:
    """Ids must be unique within a benchmark: a repeated id gets ``#2``, ``#3``… in load order (stable)."""
    seen: Counter = Counter()
    for s in samples:
        seen[s.id] += 1
        if seen[s.id] > 1:
            s.id = f"{s.id}#{seen[s.id]}"


# --- SIUO --------------------------------------------------------------------------------------------------


def _load_siuo(kind: BenchmarkKind, root: Path, subsets: tuple[str, ...], skipped: Counter) -> dict[str, list[Sample]]:
    data_file = _locate(kind, root, ("data/siuo_gen.json", "siuo_gen.json"))
    images = _folder(kind, data_file.parent / "images")
    samples = []
    for i, item in enumerate(_read_json(kind, data_file, list)):
        qid = _field(item, "question_id", f"{data_file} item {i}", int)
        where = f"{data_file} question_id {qid}"
        image_name, question = _field(item, "image", where), _field(item, "question", where)
        category, warning = _field(item, "category", where), _field(item, "safety_warning", where)
        reference = _field(item, "reference_answer", where, required=False)
        path = _image(images / image_name, skipped)
        if path is not None:
            samples.append(Sample(id=f"siuo/{qid}", image=path, instruction=question, label="harmful",
                                  category=category, source="SIUO",
                                  extra={"subset": "gen", "question_id": qid, "safety_warning": warning,
                                         "reference": reference}))
    return {"gen": sorted(samples, key=lambda s: s.extra["question_id"])}


# --- MM-SafetyBench ----------------------------------------------------------------------------------------


def _mmsb_scenarios(names: Sequence[str] | str | None) -> list[str]:
    """Official scenario names from full names, ``08``/``8`` numbers or names without the number."""
    if names is None:
        return list(MMSB_SCENARIOS)
    lookup = {}
    for sc in MMSB_SCENARIOS:
        number, name = sc.split("-", 1)
        lookup.update({sc.lower(): sc, number: sc, str(int(number)): sc, name.lower(): sc})
    chosen = []
    for name in [names] if isinstance(names, str) else names:
        if str(name).lower() not in lookup:
            raise VLMGuardError(f"unknown MM-SafetyBench scenario {name!r}; choose from {', '.join(MMSB_SCENARIOS)}")
        chosen.append(lookup[str(name).lower()])
    return list(dict.fromkeys(chosen))


def _mmsb_tiny(kind: BenchmarkKind, root: Path, tiny: bool | str) -> dict[str, set[str]]:
    """``TinyVersion_ID_List.json``: a list of ``{"Scenario": ..., "Sampled_ID_List": [int, ...]}``."""
    path = Path(tiny) if isinstance(tiny, str) else _locate(kind, root, ("TinyVersion_ID_List.json",
                                                                          "data/TinyVersion_ID_List.json"))
    if not path.is_file():
        raise VLMGuardError(f"tiny-version id list {path} not found: it is TinyVersion_ID_List.json at the root of "
                            f"{kind.source}")
    chosen: dict[str, set[str]] = {}
    for i, entry in enumerate(_read_json(kind, path, list)):
        where = f"{path} entry {i}"
        ids = _field(entry, "Sampled_ID_List", where, list)
        chosen[_field(entry, "Scenario", where)] = {str(int(x)) for x in ids}
    return chosen


def _load_mmsb(kind: BenchmarkKind, root: Path, subsets: tuple[str, ...], skipped: Counter,
               scenarios: Sequence[str] | str | None = None, tiny: bool | str = False) -> dict[str, list[Sample]]:
    questions = _locate(kind, root, ("data/processed_questions", "processed_questions"))
    images = _folder(kind, questions.parent / "imgs")
    tiny_ids = _mmsb_tiny(kind, root, tiny) if tiny else None
    groups: dict[str, list[Sample]] = {}
    for sc in _mmsb_scenarios(scenarios):
        path = questions / f"{sc}.json"
        if not path.is_file():
            raise VLMGuardError(f"{path} not found: expected the official {kind.title} layout {kind.layout} with all "
                                f"13 scenarios (get it from {kind.source}), or pass scenarios=[...] to evaluate fewer")
        data = _read_json(kind, path, dict)
        ids = [qid for qid in sorted(data, key=_natural)
               if tiny_ids is None or (qid.isdigit() and str(int(qid)) in tiny_ids.get(sc, ()))]
        for image_type in subsets:
            group = groups.setdefault(f"{sc}/{image_type}", [])
            for qid in ids:
                where, item = f"{path} id {qid}", data[qid]
                text = _field(item, MMSB_QUESTION_FIELD[image_type], where)
                img = _image(images / sc / image_type / f"{qid}.jpg", skipped)
                if img is None:
                    continue
                group.append(Sample(
                    id=f"mmsb/{sc}/{image_type}/{qid}", image=img, instruction=text, label="harmful", category=sc,
                    source="MM-SafetyBench",
                    extra={"subset": image_type, "scenario": sc, "image_type": image_type, "question_id": qid,
                           "question": item.get("Question"), "key_phrase": item.get("Key Phrase"),
                           "phrase_type": item.get("Phrase Type")}))
    return groups


# --- VLGuard -----------------------------------------------------------------------------------------------

_VLGUARD_KEYS = {"unsafes": "instruction", "safe_unsafes": "unsafe_instruction", "safe_safes": "safe_instruction"}


def _load_vlguard(kind: BenchmarkKind, root: Path, subsets: tuple[str, ...], skipped: Counter,
                  image_dir: str | None = None) -> dict[str, list[Sample]]:
    meta = _locate(kind, root, ("test.json", "data/test.json"))
    images = _folder(kind, Path(image_dir).expanduser().resolve() if image_dir else meta.parent / "test")
    groups: dict[str, list[Sample]] = {s: [] for s in subsets}
    for i, item in enumerate(_read_json(kind, meta, list)):
        vid = _field(item, "id", f"{meta} item {i}")
        where = f"{meta} id {vid}"
        image_rel, safe = _field(item, "image", where), _field(item, "safe", where, bool)
        pairs = _field(item, "instr-resp", where, list)
        wanted = [s for s in (("safe_unsafes", "safe_safes") if safe else ("unsafes",)) if s in subsets]
        if not wanted:
            continue
        img = _image(images / image_rel, skipped, len(wanted))
        if img is None:
            continue
        for subset in wanted:
            key = _VLGUARD_KEYS[subset]  # found by key, not position: the order differs between items
            entry = next((p for p in pairs if isinstance(p, dict) and key in p), None)
            if entry is None:
                raise VLMGuardError(f"{where}: no 'instr-resp' entry with field {key!r}")
            groups[subset].append(Sample(
                id=f"vlguard/{subset}/{vid}", image=img, instruction=_field(entry, key, f"{where} instr-resp"),
                label="benign" if subset == "safe_safes" else "harmful",
                category=item.get("harmful_category") if subset == "unsafes" else None, source="VLGuard",
                extra={"subset": subset, "reference": entry.get("response") or None,
                       "subcategory": item.get("harmful_subcategory") if subset == "unsafes" else None}))
    return groups


# --- MM-Vet ------------------------------------------------------------------------------------------------


def _load_mmvet(kind: BenchmarkKind, root: Path, subsets: tuple[str, ...], skipped: Counter) -> dict[str, list[Sample]]:
    meta = _locate(kind, root, ("mm-vet.json", "mm-vet/mm-vet.json"))
    images = _folder(kind, meta.parent / "images")
    samples = []
    data = _read_json(kind, meta, dict)
    for key in sorted(data, key=_natural):
        where, item = f"{meta} {key}", data[key]
        imagename, question = _field(item, "imagename", where), _field(item, "question", where)
        answer, caps = _field(item, "answer", where), _field(item, "capability", where, list)
        if not caps or not all(isinstance(c, str) and c for c in caps):
            raise VLMGuardError(f"{where}: field 'capability' must be a non-empty list of names (rec, ocr, …)")
        img = _image(images / imagename, skipped)  # imagename, not the key: questions share images
        if img is not None:
            samples.append(Sample(id=f"mmvet/{key}", image=img, instruction=question, label="benign",
                                  source="MM-Vet",
                                  extra={"subset": "all", "reference": answer, "capability": list(caps),
                                         "integration": "_".join(sorted(set(caps)))}))
    return {"all": samples}


# --- records (the project's own schema) --------------------------------------------------------------------


def _load_records(kind: BenchmarkKind, root: Path, subsets: tuple[str, ...], skipped: Counter) -> dict[str, list[Sample]]:
    groups: dict[str, list[Sample]] = {s: [] for s in subsets}
    for s in load_samples(root):
        if s.label is None:
            raise VLMGuardError(f"{root}: sample {s.id!r} has no 'label'; the records benchmark needs 'benign' or "
                                f"'harmful' on every sample")
        src = s.image_path()
        local = isinstance(src, str) and not src.startswith(("data:", "http://", "https://"))
        if local and _image(Path(src), skipped) is None:
            continue
        if s.label in groups:
            groups[s.label].append(s)
    return groups


BENCHMARKS: dict[str, BenchmarkKind] = {
    "siuo": BenchmarkKind("SIUO", "github.com/sinwang20/SIUO", "<root>/data/siuo_gen.json + <root>/data/images/",
                          ("gen",), _load_siuo, SIUOProtocol),
    "mm-safetybench": BenchmarkKind(
        "MM-SafetyBench", "github.com/isXinLiu/MM-SafetyBench",
        "<root>/data/processed_questions/<NN-Scenario>.json + <root>/data/imgs/<NN-Scenario>/{SD,SD_TYPO,TYPO}/<id>.jpg",
        ("SD", "SD_TYPO", "TYPO"), _load_mmsb, MMSafetyBenchProtocol, options=("scenarios", "tiny")),
    "vlguard": BenchmarkKind(
        "VLGuard test", "huggingface.co/datasets/ys-zong/VLGuard (github.com/ys-zong/VLGuard)",
        "<root>/test.json + <root>/test/<subdir>/<file> (test.zip unpacked; or pass image_dir=...)",
        ("unsafes", "safe_unsafes", "safe_safes"), _load_vlguard, VLGuardProtocol, options=("image_dir",)),
    "mm-vet": BenchmarkKind("MM-Vet", "github.com/yuweihao/MM-Vet (mm-vet.zip)",
                            "<root>/mm-vet.json + <root>/images/", ("all",), _load_mmvet, MMVetProtocol),
    "records": BenchmarkKind("records", "your own data", "a .json/.jsonl/.parquet file in the record schema",
                             ("harmful", "benign"), _load_records, RecordsProtocol,
                             protocol_options=("judge", "served")),
}


def load_benchmark(kind: str, root: str, subsets: Sequence[str] | None = None, limit: int | None = None,
                   rubrics: dict[str, str] | None = None, responses: int | None = None, **options: Any) -> Benchmark:
    """Load a benchmark from its local copy and attach its protocol.

    ``subsets``: a subset of the kind's subsets (all by default); ``limit``: the first N samples per subset in
    the benchmark's fixed order, after missing images are skipped (MM-SafetyBench: per scenario and image type);
    ``rubrics``/``responses``: protocol overrides; ``options``: the kind's own (MM-SafetyBench ``scenarios``,
    ``tiny``; VLGuard ``image_dir``; records ``judge``, ``served``)."""
    spec = BENCHMARKS.get(kind)
    if spec is None:
        raise VLMGuardError(f"unknown benchmark {kind!r}; choose from {', '.join(BENCHMARKS)}")
    chosen = tuple(subsets) if subsets else spec.subsets
    bad = [s for s in chosen if s not in spec.subsets]
    if bad:
        raise VLMGuardError(f"unknown {spec.title} subset {bad[0]!r}; choose from {', '.join(spec.subsets)}")
    unknown = sorted(set(options) - set(spec.options) - set(spec.protocol_options))
    if unknown:
        allowed = ", ".join(spec.options + spec.protocol_options) or "none"
        raise VLMGuardError(f"unknown option {unknown[0]!r} for benchmark {kind!r}; options: {allowed}")
    if limit is not None and limit < 1:
        raise VLMGuardError(f"limit must be a positive number of samples per subset, got {limit}")
    path = Path(root).expanduser().resolve()
    if not path.exists():
        raise VLMGuardError(f"{kind} data not found at {path}: expected the official {spec.title} layout {spec.layout}; "
                            f"get it from {spec.source}")
    skipped: Counter = Counter()
    groups = spec.load(spec, path, chosen, skipped, **{k: v for k, v in options.items() if k in spec.options})
    samples = [s for group in groups.values() for s in group[:limit]]
    if not samples:
        reasons = ", ".join(f"{n} {why}" for why, n in skipped.items()) or "none found"
        raise VLMGuardError(f"{kind} at {path}: no samples to evaluate ({reasons}); check the layout {spec.layout}")
    _dedupe(samples)
    protocol = spec.protocol(rubrics=rubrics, responses=responses,
                             **{k: v for k, v in options.items() if k in spec.protocol_options})
    return Benchmark(name=kind, samples=samples, protocol=protocol, skipped=dict(skipped), root=str(path))
