"""The VLMGuard-R1 reasoning-data pipeline.

For each sample (image, instruction, safe and unsafe responses):
  0. missing responses are written by the optional safe / unsafe responder backends;
  1. hindsight analysis — the teacher contrasts the safe and unsafe responses and names the risk features;
  2. multimodal causal analysis — textual, visual and cross-modal triggers → a risk report (the ``<threat>``);
  3. prompt optimisation — the user's legitimate intent (``<intent>``), then the refined prompt (``<prompt>``).
Benign samples go through the same stages, so the rewriter learns to leave safe prompts (nearly) unchanged.
Every sample's stage outputs land in ``records.jsonl`` (kept or dropped, with the reason), batch by batch, so
a rerun of the same command resumes; the kept ones become the SFT dataset.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import Backend, SamplingParams, load_backend, resolve_specs
from ..chat import user_chat
from ..errors import VLMGuardError
from ..format import render
from ..images import fit, load_image
from ..prompts import load_prompt, render_prompt
from ..schema import Sample, load_samples
from ..store import JsonlStore
from .config import SynthConfig
from .quality import check_prompt, extract

log = logging.getLogger(__name__)
# stage name, its template field in SynthConfig, the tag its answer goes in, the variable later stages see
STAGES = (("hindsight", "hindsight_template", "features", "features"),
          ("causal", "causal_template", "report", "report"),
          ("intent", "intent_template", "intent", "intent"),
          ("prompt", "prompt_template", "prompt", "prompt"))


@dataclass
class _Item:
    sample: Sample
    image: Any = None
    values: dict[str, str] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    reason: str | None = None
    detail: str | None = None

    def drop(self, reason: str, detail: str | None = None) -> None:
        self.reason, self.detail = reason, detail

    def record(self) -> dict[str, Any]:
        v = self.values
        target = None if self.reason else render(v["report"], v["intent"], v["prompt"])
        return {"id": self.sample.id, "status": "dropped" if self.reason else "kept", "reason": self.reason,
                "detail": self.detail, "sample": self.sample.to_dict(), "stages": self.stages, "target": target}


def _resolved(record: dict[str, Any], sample: Sample) -> dict[str, Any]:
    """``record`` with a relative image path resolved as ``sample``'s is (against the data file's folder): records
    this run did not write, such as a shipped reference synthesis copied in to resume from, store paths relative
    to the data file."""
    image = record["sample"].get("image")
    if isinstance(image, str) and not Path(image).is_absolute() and image == sample.image:
        return {**record, "sample": {**record["sample"], "image": sample.image_path()}}
    return record


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:120]


class Synthesizer:
    def __init__(self, config: SynthConfig) -> None:
        self.config = c = config
        resolve_specs(c.teacher, c.safe_responder, c.unsafe_responder)  # all checked before any model loads
        for name in ("hindsight_template", "causal_template", "intent_template", "prompt_template",
                     "safe_responder_template", "unsafe_responder_template", "rewriter_system"):
            load_prompt(getattr(c, name))  # a missing template fails now, not mid-run
        self.teacher: Backend = load_backend(c.teacher)
        self.responders = {k: load_backend(spec) for k, spec in (("safe_response", c.safe_responder),
                                                                 ("unsafe_response", c.unsafe_responder)) if spec}
        self.image_dir = Path(c.out) / "images"
        self.params = SamplingParams(max_new_tokens=c.max_new_tokens, temperature=c.temperature, seed=c.seed)

    # -- one batch -----------------------------------------------------------------------------------
    def process(self, samples: list[Sample]) -> list[dict[str, Any]]:
        items = [_Item(s) for s in samples]
        for it in items:
            try:
                if it.sample.image is not None:
                    it.image = fit(load_image(it.sample.image_path()), self.config.max_image_side)
                    if not isinstance(it.sample.image, str):  # PIL / bytes (a datasets folder): keep a file
                        path = self.image_dir / f"{_safe_name(it.sample.id)}.png"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        it.image.save(path)
                        it.sample.image, it.sample.base_dir = str(path), None
            except VLMGuardError as e:
                it.drop("image_error", str(e))
        self._respond(items)
        for stage, template_field, tag, var in STAGES:
            self._stage(items, stage, getattr(self.config, template_field), tag, var)
        for it in items:
            if not it.reason:
                reason = check_prompt(it.values["prompt"], it.sample.unsafe_response, self.config.repeat_threshold)
                if reason:
                    it.drop(reason)
        return [it.record() for it in items]

    def _respond(self, items: list[_Item]) -> None:
        for key, backend in self.responders.items():
            todo = [it for it in items if not it.reason and not getattr(it.sample, key)]
            if not todo:
                continue
            system = load_prompt(getattr(self.config, key.replace("_response", "_responder_template")))
            outs = backend.generate([user_chat(it.sample.instruction, it.image, system) for it in todo],
                                    self.params, on_error="none")
            for it, out in zip(todo, outs):
                it.stages[key] = {"raw": out, "generated_by": backend.spec}
                if out is None or not out.strip():
                    it.drop(f"{'teacher_error' if out is None else 'empty'}:{key}")
                else:
                    setattr(it.sample, key, out.strip())

    def _stage(self, items: list[_Item], stage: str, template: str, tag: str, var: str) -> None:
        todo = [it for it in items if not it.reason]
        if not todo:
            return
        chats = []
        for it in todo:
            s = it.sample
            text = render_prompt(template, instruction=s.instruction, safe_response=s.safe_response,
                                 unsafe_response=s.unsafe_response, label=s.label, category=s.category,
                                 **it.values)
            chats.append(user_chat(text, it.image))
        outs = self.teacher.generate(chats, self.params, on_error="none")
        for it, out in zip(todo, outs):
            value, problem = extract(out, tag, self.config.lenient)
            it.stages[stage] = {"raw": out, "value": value}
            if problem:
                it.drop(f"{problem}:{stage}", None if out is None else f"expected <{tag}>...</{tag}>")
            else:
                it.values[var] = value

    # -- the whole run -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        c = self.config
        out = Path(c.out)
        samples = load_samples(c.data, c.limit)
        store = JsonlStore(out / "records.jsonl")
        todo = [s for s in samples if s.id not in store]
        resumed = len(samples) - len(todo)
        start = time.perf_counter()
        with tqdm(total=len(samples), initial=resumed, desc="synth", unit="sample", dynamic_ncols=True) as bar:
            for i in range(0, len(todo), c.batch_size):
                batch = todo[i:i + c.batch_size]
                store.append(self.process(batch))
                bar.update(len(batch))
                kept = sum(r["status"] == "kept" for r in store.records.values())
                bar.set_postfix(kept=kept, dropped=len(store) - kept)
        records = [_resolved(store.records[s.id], s) for s in samples]
        from .dataset import save_sft_dataset

        n_rows = save_sft_dataset(records, out / "dataset", load_prompt(c.rewriter_system), c.max_image_side)
        summary = {"samples": len(samples), "resumed": resumed, "processed": len(todo),
                   "kept": sum(r["status"] == "kept" for r in records),
                   "dropped": dict(Counter(r["reason"] for r in records if r["status"] == "dropped").most_common()),
                   "dataset_rows": n_rows, "seconds": round(time.perf_counter() - start, 2),
                   "teacher": self.teacher.spec, "teacher_stats": dict(self.teacher.stats)}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
