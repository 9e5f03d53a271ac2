"""``vlmguard eval``: every benchmark × target × defence, judged, recorded, resumable; then the report.

Per step (``batch_size`` samples of one cell) the defence answers (one batched/concurrent call per model),
the judge reads every answer (one call), and the step's records are appended to ``records.jsonl`` and
fsync'ed. A rerun after a crash or Ctrl-C skips every stored record, so nothing is judged twice. A sample
whose every answer failed (target down) is not stored: it is counted, reported as missing, and retried by
the next run; a stored record whose judge call failed (unreachable, timed out, refused by a hosted judge's
filter) is judged again by the next run (``rejudge=True`` / ``--rejudge``: every record), so the rates never
rest on a denominator that silently drops the answers a judge refused to read.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from ..backends import Backend, BackendPool, resolve_specs, run_sync
from ..chat import user_chat, without_images
from ..errors import VLMGuardError
from ..judges import UNREACHABLE, UNREADABLE, Judge, RubricJudge, build_judge
from ..prompts import template_path
from ..schema import Sample
from ..store import JsonlStore
from .config import EvalConfig
from .defences import Defence, Response, check_defence
from .protocol import Protocol
from .report import build_report, spec_name, write_report

log = logging.getLogger(__name__)


def record_key(r: dict[str, Any]) -> str:
    return f"{r['benchmark']}|{r['target']}|{r['defence']}|{r['id']}"


@dataclass
class Cell:
    benchmark: str
    target: str
    defence: str


def _groups(sample: Sample, protocol: Protocol) -> dict[str, Any]:
    return {key: sample.category if key == "category" else sample.extra.get(key) for key in protocol.breakdowns}


def describe_benchmark(name: str, bench, judge: str | None, responses: int) -> dict[str, Any]:
    """What the report says about how a benchmark was judged: protocol, judge, rubric files and their hashes."""
    p = bench.protocol
    rubrics = {}
    for pass_name, template in p.rubrics.items():
        path = template_path(template)
        rubrics[pass_name] = {"template": str(template), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}
    return {"kind": bench.name, "root": bench.root, "items": len(bench.samples), "skipped": dict(bench.skipped),
            "protocol": type(p).__name__, "metrics": list(p.metrics), "higher_is_better": dict(p.higher_is_better),
            "breakdowns": list(p.breakdowns), "responses": responses, "judge": spec_name(judge) if p.rubrics else None,
            "rubrics": rubrics}


def generative(judge: Judge | None) -> bool:
    """A judge that writes text which the benchmark's own parser reads (a rubric judge deciding by text)."""
    return isinstance(judge, RubricJudge) and judge.decision == "text"


def judge_errors(record: dict[str, Any]) -> list[str | None]:
    """Each judge pass's error in a stored record: ``unreachable``, ``unreadable`` or None (records written
    before errors were stored: no raw text means the call failed)."""
    out = []
    for response in record.get("responses", []):
        for entry in (response.get("judge") or {}).values():
            error = entry.get("error", UNREACHABLE if entry.get("raw") is None else
                              (UNREADABLE if entry.get("verdict") is None else None))
            out.append(error)
    return out


class Evaluation:
    """Build once (every spec, judge, defence option and benchmark file is checked before any model loads),
    then ``run``."""

    def __init__(self, config: EvalConfig) -> None:
        from .benchmarks import load_benchmark

        self.config = config
        where = f"eval config ({config.out})"
        resolve_specs(*config.targets.values())
        self.defence_classes = {name: check_defence(d.type, d.options, f"{where}: defences.{name}")
                                for name, d in config.defences.items()}
        self.benchmarks, self.judges = {}, {}
        for name, entry in config.benchmarks.items():
            options = dict(entry.options)
            if entry.judge is False and entry.kind == "records":
                options["judge"] = False  # the refusal rule decides
            bench = load_benchmark(entry.kind, entry.path, entry.subsets, entry.limit, entry.rubrics or None,
                                   entry.responses, **options)
            spec = self.judge_spec(name)
            judge = None
            if bench.protocol.rubrics:
                if entry.judge is False:
                    raise VLMGuardError(f"{where}: benchmarks.{name}: {entry.kind} is judged by a model; `judge: "
                                        f"false` (no judge) applies only to records, which then use the refusal rule")
                if spec is None:
                    raise VLMGuardError(f"{where}: benchmark {name!r} ({entry.kind}) is judged by a model: set "
                                        f"`judge:` (top level or in benchmarks.{name})")
                judge = build_judge(spec, where=f"{where}: judge of benchmark {name!r}")
                if not generative(judge) and not bench.protocol.scores_safety:
                    raise VLMGuardError(
                        f"{where}: benchmark {name!r} ({entry.kind}) needs a judge that writes its rubrics' verdicts "
                        f"({', '.join(bench.protocol.rubrics)}): a backend spec or {{type: rubric, model: SPEC}}; a "
                        f"{judge.type} judge scores only safety verdicts (records, mm-safetybench)")
                if getattr(bench.protocol, "served", False) and not isinstance(judge, RubricJudge):
                    raise VLMGuardError(
                        f"{where}: benchmarks.{name}: `served` asks the judge whether a benign answer carried out the "
                        f"request (its rubric, e.g. judge_compliance); a {judge.type} judge answers only its own "
                        f"safety question: use {{type: rubric, model: SPEC, rubric: judge_compliance}} or drop "
                        f"`served`")
            self.benchmarks[name], self.judges[name] = bench, judge
        self.store = JsonlStore(Path(config.out) / "records.jsonl", key=record_key)
        self.setups = {d: self.setup(d) for d in config.defences}
        self.check_stored_setups()
        self.counters: dict[str, int] = {"answer_failed": 0, "judge_failed": 0, "recorded": 0, "rejudged": 0}

    def setup(self, defence: str) -> dict[str, Any]:
        """What decides a defence's answers (its type and options, answer sampling), as JSON stores it; every
        record carries it. The target is its name: a server restarted on another port is the same target."""
        d = self.config.defences[defence]
        setup = {"defence": d.type, "options": self.defence_classes[defence].setup(d.options),
                 "answer": asdict(self.config.answer)}
        return json.loads(json.dumps(setup, default=spec_name))  # a Backend object from Python: its spec

    def check_stored_setups(self) -> None:
        """Stored answers made under another setup than the config now gives (a defence option, answer sampling, a
        recorded threshold changed under the same defence name) would be mixed silently into the report: stop and say
        which, before anything loads. Records from before setups were stored are not checked; new weights under
        the same model path are not seen (weights are not hashed)."""
        changed: dict[tuple[str, str], list] = {}
        for r in self.store.records.values():
            now = self.setups.get(r["defence"]) if r["target"] in self.config.targets else None
            if now is not None and r["benchmark"] in self.benchmarks and r.get("setup", now) != now:
                changed.setdefault((r["target"], r["defence"]), [0, _difference(r["setup"], now)])[0] += 1
        if changed:
            cells = "; ".join(f"{n} record(s) of {target} · {defence} ({what})"
                              for (target, defence), (n, what) in changed.items())
            raise VLMGuardError(f"{self.store.path} holds answers made under another setup than this config gives: "
                                f"{cells}. Give the changed defence a new name to keep both, or set a "
                                f"new `out` (or delete {self.store.path}) to answer everything again")

    def judge_spec(self, name: str) -> str | dict | Backend | None:
        entry = self.config.benchmarks[name]
        spec = entry.judge if entry.judge is not None else self.config.judge
        return None if spec is False else spec

    def responses(self, name: str) -> int:
        """Answers asked per item: the protocol's count, or 1 under greedy decoding (the answers would be equal)."""
        n = self.benchmarks[name].protocol.responses
        return 1 if self.config.answer_temperature <= 0 else n

    def plan(self) -> dict[str, Any]:
        out = {}
        for name, b in self.benchmarks.items():
            judge = self.judges[name]
            out[name] = describe_benchmark(name, b, self.judge_spec(name) if judge is not None and generative(judge)
                                           else (judge.name if judge is not None else None), self.responses(name))
            out[name]["judge_config"] = judge.describe() if judge is not None else None
        return out

    def cells(self) -> list[Cell]:
        return [Cell(b, t, d) for b in self.benchmarks for t in self.config.targets for d in self.config.defences]

    def todo(self, cell: Cell) -> list[Sample]:
        return [s for s in self.benchmarks[cell.benchmark].samples
                if record_key({"benchmark": cell.benchmark, "target": cell.target, "defence": cell.defence,
                               "id": s.id}) not in self.store]

    def stale(self, rejudge: bool = False) -> list[dict[str, Any]]:
        """Stored records of this run's cells to judge again: those with a judge call that failed (unreachable),
        those missing a pass the protocol now asks for (records ``served`` turned on over stored answers), or,
        with ``rejudge``, every judged record."""
        cells = {(c.benchmark, c.target, c.defence) for c in self.cells()}
        samples = {b: {s.id: s for s in bench.samples} for b, bench in self.benchmarks.items()}
        out = []
        for r in self.store.records.values():
            if (r["benchmark"], r["target"], r["defence"]) not in cells or self.judges[r["benchmark"]] is None:
                continue
            errors = judge_errors(r)
            if (rejudge and errors) or UNREACHABLE in errors or self.missing_pass(r, samples[r["benchmark"]]):
                out.append(r)
        return out

    def missing_pass(self, record: dict[str, Any], samples: dict[str, Sample]) -> bool:
        """Whether a stored answer lacks a judge pass that the benchmark's protocol asks for now."""
        sample = samples.get(record["id"])
        if sample is None:
            return False
        protocol, judge = self.benchmarks[record["benchmark"]].protocol, self.judges[record["benchmark"]]
        passes = protocol.judge_chats if generative(judge) else protocol.judge_items
        return any(set(passes(sample, x["answer"])) - set(x.get("judge") or {})
                   for x in record.get("responses", []) if x.get("answer") is not None)

    def run(self, progress: bool = True, report: bool = True, rejudge: bool = False) -> dict[str, Any] | None:
        """Judge again what needs it (:meth:`stale`), evaluate what is not recorded yet, then (unless
        ``report=False``) write the report and return it."""
        from tqdm.auto import tqdm

        total = sum(len(self.benchmarks[c.benchmark].samples) for c in self.cells())
        pending = [(c, self.todo(c)) for c in self.cells()]
        stale = self.stale(rejudge)
        done = total - sum(len(t) for _, t in pending)
        if done:
            log.info("resuming: %d of %d records already in %s; %d to judge again", done, total, self.store.path,
                     len(stale))
        backends = BackendPool(check=True)
        try:
            # every model this run needs is loaded and checked before the first sample, so a bad spec or an
            # unreachable server fails now and not an hour in
            needed = [c for c, todo in pending if todo]
            defences: dict[str, Defence] = {}
            for name in dict.fromkeys(c.defence for c in needed):
                try:
                    defences[name] = self.defence_classes[name](backends, **self.config.defences[name].options)
                except TypeError as e:
                    raise VLMGuardError(f"defence {name!r}: {e}") from None
            targets = {t: backends.get(self.config.targets[t]) for t in dict.fromkeys(c.target for c in needed)}
            for b in dict.fromkeys([c.benchmark for c in needed] + [r["benchmark"] for r in stale]):
                if self.judges[b] is not None:
                    self.judges[b].load(backends)  # the pool checks each backend as it loads
        except BaseException:
            backends.close()
            raise
        try:
            if stale:
                self._rejudge(stale, progress)
            bar = tqdm(total=total, initial=done, desc="eval", unit="sample", disable=not progress,
                       dynamic_ncols=True)
            with bar:
                for cell, todo in pending:
                    if not todo:
                        continue
                    bar.set_description(f"{cell.benchmark} · {cell.target} · {cell.defence}")
                    for i in range(0, len(todo), self.config.batch_size):
                        batch = todo[i:i + self.config.batch_size]
                        records = run_sync(self.step(cell, batch, defences[cell.defence], targets[cell.target]))
                        self.store.append(records)
                        self.counters["recorded"] += len(records)
                        bar.update(len(batch))
                        bar.set_postfix(answer_failed=self.counters["answer_failed"],
                                        judge_failed=self.counters["judge_failed"], refresh=False)
        finally:
            backends.close()
        if self.counters["judge_failed"]:
            log.warning("%d record(s) have a judge verdict missing (unreachable calls are judged again by the next "
                        "run; --rejudge judges every record again)", self.counters["judge_failed"])
        return self.report() if report else None

    def _rejudge(self, stale: list[dict[str, Any]], progress: bool) -> None:
        from tqdm.auto import tqdm

        by_cell: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for r in stale:
            by_cell.setdefault((r["benchmark"], r["target"], r["defence"]), []).append(r)
        with tqdm(total=len(stale), desc="judging again", unit="sample", disable=not progress) as bar:
            for (bench, target, defence), records in by_cell.items():
                samples = {s.id: s for s in self.benchmarks[bench].samples}
                records = [r for r in records if r["id"] in samples]
                for i in range(0, len(records), self.config.batch_size):
                    chunk = records[i:i + self.config.batch_size]
                    batch = [samples[r["id"]] for r in chunk]
                    answers = [[Response(x["answer"], x.get("prompt"), x.get("analysis") or {}) for x in r["responses"]]
                               for r in chunk]
                    t0 = time.perf_counter()
                    judged = run_sync(self.judge_answers(bench, batch, answers))
                    t1 = time.perf_counter()
                    new = self.records(Cell(bench, target, defence), batch, answers, judged, 0.0, t1 - t0)
                    for old, r in zip(chunk, new):
                        r["answers_failed"] = old.get("answers_failed", 0)
                        r["latency"]["defence_s"] = old["latency"]["defence_s"]
                    self.store.put(new)
                    self.counters["rejudged"] += len(new)
                    bar.update(len(chunk))

    def report(self) -> dict[str, Any]:
        """Build the report from every stored record and write report.md, report.json and the charts."""
        report = build_report(list(self.store.records.values()), self.plan(), self.config)
        write_report(report, Path(self.config.out))
        return report

    async def judge_answers(self, bench: str, batch: Sequence[Sample],
                            per_sample: Sequence[Sequence[Response]]) -> dict[tuple[int, int], dict[str, Any]]:
        """Every judge pass of every answer: (sample index, answer index) → pass → {raw, verdict, error…}."""
        protocol, judge = self.benchmarks[bench].protocol, self.judges[bench]
        judged: dict[tuple[int, int], dict[str, Any]] = {}
        if judge is None:
            return judged
        answered = [(j, k, s, r.answer) for j, (s, rs) in enumerate(zip(batch, per_sample))
                    for k, r in enumerate(rs) if r.answer is not None]
        if generative(judge):
            requests = [(j, k, name, chat if judge.image else without_images(chat))
                        for j, k, s, a in answered for name, chat in protocol.judge_chats(s, a).items()]
            raw = await judge.backend.agenerate([c for *_, c in requests], self.config.judging, on_error="none")
            for (j, k, name, _), text in zip(requests, raw):
                verdict = None if text is None else protocol.parse(name, text)
                error = UNREACHABLE if text is None else (UNREADABLE if verdict is None else None)
                judged.setdefault((j, k), {})[name] = {"raw": text, "verdict": verdict, "error": error}
            return judged
        requests = [(j, k, name, item) for j, k, s, a in answered for name, item in protocol.judge_items(s, a).items()]
        verdicts = await judge.run([item for *_, item in requests])
        for (j, k, name, _), v in zip(requests, verdicts):
            judged.setdefault((j, k), {})[name] = {
                "raw": v.raw, "verdict": None if v.score is None else protocol.from_score(name, v.score),
                "score": v.score, "categories": v.categories, "error": v.error}
        return judged

    def records(self, cell: Cell, batch: Sequence[Sample], per_sample: Sequence[Sequence[Response]],
                judged: dict[tuple[int, int], dict[str, Any]], defence_s: float, judge_s: float) -> list[dict[str, Any]]:
        """The records of one batch (samples with no answer at all are left out: retried by the next run)."""
        protocol = self.benchmarks[cell.benchmark].protocol
        out = []
        for j, (sample, responses) in enumerate(zip(batch, per_sample)):
            answered = [k for k, r in enumerate(responses) if r.answer is not None]
            if not answered:
                self.counters["answer_failed"] += 1
                continue  # not stored: retried by the next run, reported as missing
            judgements = [judged.get((j, k), {}) for k in answered]
            errors = [v["error"] for jd in judgements for v in jd.values() if v["error"]]
            self.counters["judge_failed"] += bool(errors)
            metrics = protocol.score(sample, [responses[k].answer for k in answered],
                                     [{n: v["verdict"] for n, v in jd.items()} for jd in judgements])
            out.append({
                "benchmark": cell.benchmark, "target": cell.target, "defence": cell.defence, "id": sample.id,
                "instruction": sample.instruction, "label": sample.label, "groups": _groups(sample, protocol),
                "responses": [{"answer": responses[k].answer, "prompt": responses[k].prompt,
                               "analysis": responses[k].analysis, "judge": judgements[n]}
                              for n, k in enumerate(answered)],
                "answers_failed": len(responses) - len(answered), "judge_failed": len(errors),
                "judge_unreachable": errors.count(UNREACHABLE), "judge_unreadable": errors.count(UNREADABLE),
                "metrics": metrics, "setup": self.setups[cell.defence],
                "latency": {"defence_s": defence_s / len(batch), "judge_s": judge_s / len(batch), "batch": len(batch)},
            })
        return out

    async def step(self, cell: Cell, batch: Sequence[Sample], defence: Defence, target: Backend) -> list[dict[str, Any]]:
        """Answer, judge and score one batch of one cell; returns the records to store."""
        chats = [user_chat(s.instruction, s.image_path()) for s in batch]
        t0 = time.perf_counter()
        rounds: list[list[Response]] = []
        for k in range(self.responses(cell.benchmark)):
            params = replace(self.config.answer, seed=self.config.seed + k)
            rounds.append(await defence.respond(target, chats, params))
        t1 = time.perf_counter()
        per_sample = [[r[j] for r in rounds] for j in range(len(batch))]
        judged = await self.judge_answers(cell.benchmark, batch, per_sample)
        return self.records(cell, batch, per_sample, judged, t1 - t0, time.perf_counter() - t1)


def _difference(before: Any, now: Any, path: str = "") -> str:
    """The first place two setups differ, as ``path: before -> now``."""
    if isinstance(before, dict) and isinstance(now, dict):
        for key in dict.fromkeys([*before, *now]):
            if before.get(key) != now.get(key):
                return _difference(before.get(key), now.get(key), f"{path}.{key}" if path else key)
    return f"{path}: {before!r} -> {now!r}"


def run_eval(config: EvalConfig, progress: bool = True, rejudge: bool = False) -> dict[str, Any]:
    return Evaluation(config).run(progress, rejudge=rejudge)


__all__ = ["Evaluation", "run_eval", "record_key"]
