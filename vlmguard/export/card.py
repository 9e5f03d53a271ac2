"""The model card: metadata for the Hub, what the rewriter does, how to use it, its recipe and eval results.

One card, written by ``vlmguard export`` and by the SFT/GRPO trainers (``ModelCardMixin`` replaces TRL's
``create_model_card``, which runs on every checkpoint save and on ``push_to_hub``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import VLMGuardError
from .source import hub_id, load_run_config, run_location

Weights = Literal["full", "merged-lora", "adapter"]
STAGES = {"vlmguard sft": ("SFT", "SFTTrainer"), "vlmguard grpo": ("GRPO", "GRPOTrainer")}


@dataclass(frozen=True)
class EvalRow:
    """One line of an eval ``report.json``'s ``results``."""

    benchmark: str
    metric: str
    value: float
    target: str | None = None
    defence: str | None = None
    n: int | None = None
    ci: tuple[float, float] | None = None


def read_eval_report(path: str | Path, notes: list[str] | None = None) -> list[EvalRow]:
    """The ``results`` rows of an eval report. Rows without benchmark, metric or a numeric value are skipped (and
    counted in ``notes``); other keys are optional and extra keys are ignored."""
    path = Path(path)
    if not path.is_file():
        raise VLMGuardError(f"eval report not found: {path} (give the report.json that `vlmguard eval` writes)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise VLMGuardError(f"eval report {path} is not JSON ({e})") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or not results:
        raise VLMGuardError(f"eval report {path} has no `results` list, so it is not a report.json written by "
                            f"`vlmguard eval`; give that file, or leave out --eval-report")

    def number(x: Any) -> float | None:
        try:
            v = float(x)
        except (TypeError, ValueError):
            return None
        return v if math.isfinite(v) else None

    rows = []
    for r in results:
        value = number(r.get("value")) if isinstance(r, dict) else None
        if value is None or not r.get("benchmark") or not r.get("metric"):
            continue
        ci = r.get("ci")
        ci = (number(ci[0]), number(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 else None
        n = number(r.get("n"))
        defence = r.get("defence", r.get("defense"))
        rows.append(EvalRow(str(r["benchmark"]), str(r["metric"]), value,
                            str(r["target"]) if r.get("target") else None, str(defence) if defence else None,
                            int(n) if n is not None else None, ci if ci and None not in ci else None))
    if not rows:
        raise VLMGuardError(f"eval report {path}: none of its {len(results)} results has a benchmark, a metric and "
                            f"a numeric value")
    if len(rows) < len(results) and notes is not None:
        notes.append(f"eval report {path}: skipped {len(results) - len(rows)} result(s) without benchmark, metric "
                     f"or numeric value")
    return rows


def own_rows(rows: list[EvalRow], defence: str) -> list[EvalRow]:
    """The rows that measure this rewriter (``defence`` matches, or the report does not say)."""
    return [r for r in rows if r.defence in (None, defence)]


@dataclass
class CardFacts:
    """Everything the card says, gathered from the run folder, the export options and the processor."""

    repo_id: str
    weights: Weights
    system_prompt: str
    system_in_template: bool
    """Whether the chat template puts ``system_prompt`` first when a chat has no system message."""
    base_model: str | None = None
    """The Hub id this model was trained from (metadata ``base_model``); None when not known."""
    run: dict[str, Any] | None = None
    license: str | None = None
    datasets: list[str] = field(default_factory=list)
    eval_rows: list[EvalRow] = field(default_factory=list)
    eval_defence: str = "vlmguard"
    threshold: dict[str, Any] | None = None
    """The threat threshold recorded in the rewriter's folder (``vlmguard threshold --save``), if any."""


def _python_str(text: str) -> str:
    """A Python literal for ``text``: triple-quoted when that is exact (also after the card template's whitespace
    clean-up: no trailing spaces, no runs of blank lines), else repr()."""
    lines = text.splitlines()
    if '"""' in text or "\\" in text or text.endswith('"') or "\n\n\n" in text or any(x != x.rstrip() for x in lines):
        return repr(text)
    return f'"""\\\n{text}"""' if "\n" in text else repr(text)


def _fmt(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 1000 else f"{v:.4g}"


def render_card(facts: CardFacts) -> str:
    """README.md text: YAML metadata (checked by ``huggingface_hub.ModelCard``) and the body from the
    ``model_card`` template."""
    import yaml
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    name = facts.repo_id.split("/")[-1]
    command = (facts.run or {}).get("command")
    stage, trainer = STAGES.get(command, (None, None))
    tags = ["vlmguard", "safety", "prompt-rewriting", "vision-language", "image-text-to-text", "arxiv:2504.12661"]
    tags += ["trl", stage.lower()] if stage else []
    tags += ["lora"] if facts.weights != "full" else []
    mine = own_rows(facts.eval_rows, facts.eval_defence)
    results = [EvalResult(task_type="image-text-to-text", task_name="Guarded VLM safety", dataset_type=r.benchmark,
                          dataset_name=r.benchmark, metric_type=r.metric,
                          metric_name=f"{r.metric} (target: {r.target})" if r.target else r.metric,
                          metric_value=r.value) for r in mine]
    data = ModelCardData(base_model=facts.base_model, library_name="peft" if facts.weights == "adapter" else "transformers",
                         pipeline_tag="image-text-to-text", tags=tags, datasets=facts.datasets or None,
                         license=facts.license, model_name=name if results else None, eval_results=results or None)
    recipe = (facts.run or {}).get("recipe")
    table = [{"benchmark": r.benchmark, "target": r.target or "", "defence": r.defence or "", "metric": r.metric,
              "value": _fmt(r.value), "ci": f"[{_fmt(r.ci[0])}, {_fmt(r.ci[1])}]" if r.ci else "",
              "n": "" if r.n is None else str(r.n)} for r in facts.eval_rows]
    from ..prompts import render_prompt

    text = render_prompt(
        "model_card", metadata=data.to_yaml(), name=name, repo_id=facts.repo_id, weights=facts.weights,
        base_model=facts.base_model, stage=stage, command=command, trainer=trainer,
        system_prompt=facts.system_prompt, system_literal=_python_str(facts.system_prompt),
        system_in_template=facts.system_in_template, eval_table=table, eval_defence=facts.eval_defence,
        model_index=bool(results), threshold=facts.threshold,
        recipe_yaml=yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True).strip() if recipe else None,
        included={key: {"path": v["path"], "yaml": yaml.safe_dump(v["content"], sort_keys=False, allow_unicode=True)
                        .strip()} for key, v in ((facts.run or {}).get("included") or {}).items()},
        versions=(facts.run or {}).get("versions") or {}) + "\n"
    ModelCard(text)  # the metadata must parse and validate the way the Hub reads it
    return text


def template_has_system(processor: Any, system: str) -> bool:
    """Whether the processor's chat template puts ``system`` first in a chat that has no system message."""
    from jinja2 import TemplateError

    chat = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    try:
        return system in processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    except (TemplateError, ValueError, TypeError, KeyError):  # no template, or one that rejects this chat
        return False


def card_facts(run: dict[str, Any] | None, repo_id: str, weights: Weights, processor: Any, base_model: str | None,
               system_prompt: str | None = None, **extra: Any) -> CardFacts:
    """The facts both writers share: base model id, datasets and licence defaults, the system prompt."""
    from ..prompts import load_prompt

    system = load_prompt(system_prompt or run_location(run, "rewriter_system") or "rewriter_system")
    datasets = list(extra.pop("datasets", None) or [])
    dataset = hub_id(run_location(run, "dataset_path"))
    if dataset and dataset not in datasets:
        datasets.insert(0, dataset)
    license = extra.pop("license", None) or base_license(base_model) or "other"
    return CardFacts(repo_id, weights, system, template_has_system(processor, system), base_model, run, license,
                     datasets, **extra)


def base_license(base_model: str | None) -> str | None:
    """The licence in the base model's card, when that card is already in the local Hugging Face cache."""
    if not base_model:
        return None
    from huggingface_hub import ModelCard, try_to_load_from_cache

    cached = try_to_load_from_cache(base_model, "README.md")
    if not isinstance(cached, str):
        return None
    try:
        return ModelCard.load(cached, ignore_metadata_errors=True).data.license
    except (OSError, ValueError):  # an unreadable card only costs the default
        return None


class ModelCardMixin:
    """For ``transformers.Trainer`` subclasses: README.md in ``output_dir`` is the vlmguard card (TRL writes its
    own on every checkpoint save and on ``push_to_hub``; this replaces it)."""

    def create_model_card(self, model_name: str | None = None, *args: Any, **kwargs: Any) -> None:
        if not self.is_world_process_zero():
            return
        out = Path(self.args.output_dir)
        repo_id = getattr(self, "hub_model_id", None) or self.args.hub_model_id or model_name or out.name
        run = load_run_config(out)
        weights: Weights = "adapter" if hasattr(self.model, "peft_config") else "full"
        facts = card_facts(run, repo_id, weights, self.processing_class, hub_id(run_location(run, "model_name_or_path")))
        (out / "README.md").write_text(render_card(facts), encoding="utf-8")
