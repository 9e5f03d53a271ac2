"""The eval recipe: benchmarks × targets × defences, the judge and the report's statistics, from one YAML.

::

    out: outputs/eval/siuo
    judge: openai:https://api.openai.com/v1?model=gpt-4o      # default judge of every benchmark
    targets: {qwen2.5-vl-7b: "openai:http://127.0.0.1:8001/v1?model=Qwen/Qwen2.5-VL-7B-Instruct"}
    defences:
      none: {}
      adashield: {}
      vlmguard: {rewriter: "hf:outputs/grpo/qwen2_5_vl_3b"}
      mine: {type: my_pkg.defences:MyDefence, strength: 2}   # type defaults to the entry's name
    benchmarks:
      siuo: {kind: siuo, path: data/SIUO}                    # options: subsets, limit, rubrics, responses, judge
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import SamplingParams
from ..errors import VLMGuardError


@dataclass
class BenchmarkEntry:
    kind: str
    """``siuo``, ``mm-safetybench``, ``vlguard``, ``mm-vet`` or ``records`` (any record-schema file)."""
    path: str
    """The local copy of the official release (its root folder), or a record-schema file."""
    subsets: list[str] | None = None
    """e.g. VLGuard ``[unsafes, safe_unsafes, safe_safes]``, MM-SafetyBench image types ``[SD, TYPO, SD_TYPO]``."""
    limit: int | None = None
    """First N items per subset (a quick look); ``--limit`` on the command line sets it everywhere."""
    rubrics: dict[str, str] = field(default_factory=dict)
    """Judge pass → your own prompt file, replacing the bundled rubric."""
    responses: int | None = None
    """Answers per item (SIUO's protocol: 3 with majority vote); default: the benchmark's protocol."""
    judge: str | dict | bool | None = None
    """This benchmark's judge (default: the top-level ``judge``): a backend spec or a judge mapping
    (``{type: llama_guard, model: SPEC}``, :mod:`vlmguard.judges`); ``false`` = no judge (``records``: the
    refusal rule decides attack success)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Loader options (e.g. MM-SafetyBench ``tiny: true``)."""


@dataclass
class DefenceEntry:
    type: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalConfig:
    out: str
    """Output folder: records.jsonl (resumable), report.md, report.json, charts."""
    targets: dict[str, str]
    """Display name → backend spec of each target VLM (from Python, a Backend object works too)."""
    benchmarks: dict[str, BenchmarkEntry]
    defences: dict[str, DefenceEntry] = field(default_factory=lambda: {"none": DefenceEntry("none")})
    judge: str | dict | None = None
    """The judge: a backend spec (GPT-4o, a `vllm serve`d model, a local one; from Python, a Backend object)
    that reads each benchmark's own rubrics, or a judge mapping (``{type: llama_guard, model: SPEC}``,
    ``{type: rubric, model: SPEC, decision: logprob}``…) for benchmarks judged by a safety verdict (records,
    MM-SafetyBench); rule-based protocols need none."""
    judge_max_new_tokens: int = 512
    judge_temperature: float = 0.0
    answer_max_new_tokens: int = 512
    answer_temperature: float = 0.0
    """0 = greedy. With several responses per item and greedy decoding, the target is asked once."""
    answer_top_p: float = 1.0
    batch_size: int = 16
    """Samples per step: one batched (hf) or concurrent (openai) call per model per step."""
    baseline: str | None = "none"
    """The defence every other one is compared with, sample by sample (paired differences)."""
    bootstrap: int = 2000
    """Bootstrap resamples for the 95% intervals."""
    seed: int = 0

    @property
    def answer(self) -> SamplingParams:
        return SamplingParams(max_new_tokens=self.answer_max_new_tokens, temperature=self.answer_temperature,
                              top_p=self.answer_top_p, seed=self.seed)

    @property
    def judging(self) -> SamplingParams:
        return SamplingParams(max_new_tokens=self.judge_max_new_tokens, temperature=self.judge_temperature)

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "EvalConfig":
        import yaml

        path = Path(path)
        if not path.is_file():
            raise VLMGuardError(f"eval config not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise VLMGuardError(f"{path}: not valid YAML: {e}") from None
        return cls.from_dict(data, str(path), overrides)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<config>", overrides: dict[str, Any] | None = None) -> "EvalConfig":
        if not isinstance(data, dict):
            raise VLMGuardError(f"{source}: an eval config is a mapping (out, targets, benchmarks, defences, judge…)")
        data = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None and k != "limit"}}
        _check_keys(data, cls, source, "")
        for key in ("out", "targets", "benchmarks"):
            if not data.get(key):
                raise VLMGuardError(f"{source}: missing `{key}`; see configs/eval/tiny.yaml for a complete example")
        if not isinstance(data["targets"], dict):
            raise VLMGuardError(f"{source}: `targets` maps a display name to a backend spec")
        benchmarks = {}
        for name, entry in _mapping(data["benchmarks"], source, "benchmarks").items():
            entry = dict(entry or {})
            _check_keys(entry, BenchmarkEntry, source, f"benchmarks.{name}.")
            if "kind" not in entry or "path" not in entry:
                raise VLMGuardError(f"{source}: benchmarks.{name} needs `kind` and `path`")
            _check_types(entry, BenchmarkEntry, source, f"benchmarks.{name}.")
            if entry.get("judge") is True:
                raise VLMGuardError(f"{source}: benchmarks.{name}.judge: true names no judge; give a backend spec, "
                                    f"a judge mapping, or false (no judge)")
            if (overrides or {}).get("limit") is not None:
                entry["limit"] = overrides["limit"]
            benchmarks[name] = BenchmarkEntry(**entry)
        defences = {name: DefenceEntry(str((opts or {}).get("type", name)),
                                       {k: v for k, v in (opts or {}).items() if k != "type"})
                    for name, opts in _mapping(data.get("defences", {"none": {}}), source, "defences").items()}
        # the default baseline is `none` where it is evaluated, else no paired comparison; a named one must exist
        data["baseline"] = data.get("baseline", "none" if "none" in defences else None)
        if data["baseline"] is not None and data["baseline"] not in defences:
            raise VLMGuardError(f"{source}: baseline {data['baseline']!r} is not one of the defences "
                                f"({', '.join(defences)}); name one of them, or leave `baseline` out")
        scalars = {k: v for k, v in data.items() if k not in ("targets", "benchmarks", "defences")}
        _check_types(scalars, cls, source, "")
        try:
            return cls(targets={str(k): str(v) for k, v in data["targets"].items()}, benchmarks=benchmarks,
                       defences=defences, **scalars)
        except TypeError as e:
            raise VLMGuardError(f"{source}: {e}") from None


def _mapping(value: Any, source: str, key: str) -> dict[str, Any]:
    if isinstance(value, list):  # [none, adashield] or [{name: {...}}]
        out: dict[str, Any] = {}
        for item in value:
            out.update(item if isinstance(item, dict) else {str(item): {}})
        return out
    if not isinstance(value, dict):
        raise VLMGuardError(f"{source}: `{key}` must be a mapping of name → options")
    return value


def _check_keys(data: dict[str, Any], cls: type, source: str, prefix: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise VLMGuardError(f"{source}: unknown key `{prefix}{key}`" + (f" (did you mean {close[0]}?)" if close else "")
                                + f"; valid: {', '.join(known)}")


def _check_types(data: dict[str, Any], cls: type, source: str, prefix: str) -> None:
    """Each value against its field's type (str, int, float, bool, list, dict, and unions of them, None where
    allowed): ``judge_max_new_tokens: "many"`` fails here, naming the key, not deep inside a model call."""
    from ..backends import Backend
    from ..judges import Judge

    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if key not in hints or isinstance(value, (Backend, Judge)):  # objects passed from Python
            continue
        hint = hints[key]
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        allowed = [typing.get_origin(t) or t for t in (typing.get_args(hint) if union else (hint,))]
        if value is None and type(None) in allowed:
            continue
        ok = any(t is not Any and isinstance(value, t) and not (t in (int, float) and isinstance(value, bool))
                 or (t is float and isinstance(value, int) and not isinstance(value, bool)) for t in allowed
                 if isinstance(t, type)) or Any in allowed
        if not ok:
            names = " or ".join("null" if t is type(None) else getattr(t, "__name__", str(t)) for t in allowed)
            raise VLMGuardError(f"{source}: `{prefix}{key}` must be {names}, got {value!r}")
