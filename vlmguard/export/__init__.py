"""``vlmguard export``: publish a trained rewriter the way TRL users publish models.

From an SFT/GRPO output folder (or a checkpoint in it): merge the LoRA adapter into its base (or keep the adapter,
``adapter_only``), save safetensors (sharded above ``max_shard_size``), the processor with a chat template whose
default system prompt is the rewriter's, the generation config, the run config and a model card; then push it all
in one commit, or write it to a local folder (``dry_run``). Plain ``transformers`` and ``vllm serve`` load the
result without vlmguard. Every check runs before any model loads (``plan_export``).
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VLMGuardError
from .card import CardFacts, EvalRow, ModelCardMixin, card_facts, own_rows, read_eval_report, render_card
from .hub import check_repo_id, commit_operations, folder_files, push, push_token
from .source import RUN_CONFIG, Source, check_base, hub_id, load_run_config, resolve_source, save_run_config

__all__ = ["CardFacts", "EvalRow", "ExportOptions", "ExportPlan", "ExportResult", "ModelCardMixin", "card_facts",
           "check_repo_id", "commit_operations", "export", "hub_id", "load_run_config", "plan_export", "push", "read_eval_report",
           "render_card", "resolve_source", "save_run_config", "with_default_system", "write_export"]
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class ExportOptions:
    source: str
    """A training output folder or a checkpoint-N folder inside one."""
    repo_id: str
    """The Hub repo, NAME or ORG/NAME (also names the model in the card)."""
    adapter_only: bool = False
    """LoRA runs: publish the adapter alone instead of merging it into the base."""
    base_model: str | None = None
    """LoRA runs: where the base model is (default: the adapter's base_model_name_or_path); any run: the Hub id
    the card names as ``base_model`` (default: followed from the run's model_name_or_path)."""
    dtype: str = "auto"
    """Dtype of the saved weights: auto (as stored), float32, bfloat16 or float16."""
    max_shard_size: str = "5GB"
    """Split the weights into safetensors shards of at most this size."""
    eval_report: str | None = None
    """A report.json from ``vlmguard eval``: a results table in the card and model-index metadata."""
    eval_defence: str = "vlmguard"
    """The report's defence name for this rewriter (its rows go into model-index)."""
    license: str | None = None
    """Licence id for the metadata (default: the base model's, when its card is cached, else ``other``)."""
    datasets: list[str] = field(default_factory=list)
    """Hub dataset ids for the metadata (the run's dataset_path is added when it is a hub id)."""
    system_prompt: str | None = None
    """The system prompt the rewriter was trained with (name or file; default: the run's, else rewriter_system)."""
    private: bool = False
    revision: str | None = None
    commit_message: str | None = None
    dry_run: str | None = None
    """Write what would be uploaded into this (new or empty) folder instead of pushing."""


@dataclass
class ExportPlan:
    """The checked inputs of an export: nothing is loaded yet."""

    options: ExportOptions
    source: Source
    eval_rows: list[EvalRow]
    token: str | None
    notes: list[str] = field(default_factory=list)
    """Things the user should know that are not errors (printed after the export)."""


@dataclass
class ExportResult:
    folder: Path
    """Where the files were written (the dry-run folder; a temporary one, since removed, after a push)."""
    files: dict[str, int]
    """Path in the repo → size in bytes."""
    seconds: float
    commit_url: str | None = None
    notes: list[str] = field(default_factory=list)


def plan_export(opts: ExportOptions) -> ExportPlan:
    """Check every input, cheapest first, and fail with one line naming the problem and the fix."""
    check_repo_id(opts.repo_id)
    token = None
    if opts.dry_run:
        out = Path(opts.dry_run)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise VLMGuardError(f"--dry-run {out} exists and is not an empty folder: give a new or empty one")
    else:
        token = push_token()
    if opts.dtype not in DTYPES:
        raise VLMGuardError(f"--dtype {opts.dtype!r}: use one of {', '.join(DTYPES)}")
    if not re.fullmatch(r"\d+(?:[KMGT]i?B)?", str(opts.max_shard_size), re.IGNORECASE):
        raise VLMGuardError(f"--max-shard-size {opts.max_shard_size!r}: give a size such as 5GB, 500MB or 2GiB")
    source = resolve_source(opts.source, opts.base_model)
    if opts.adapter_only and not source.adapter:
        raise VLMGuardError(f"--adapter-only: {source.path} holds full weights (a full fine-tune), not a LoRA "
                            f"adapter; leave the flag out")
    if opts.adapter_only and opts.dtype != "auto":
        raise VLMGuardError("--dtype applies to merged or full weights; an adapter is copied as trained: leave "
                            "--dtype out with --adapter-only")
    if source.adapter and not opts.adapter_only:
        check_base(source)
    notes: list[str] = []
    rows = read_eval_report(opts.eval_report, notes) if opts.eval_report else []
    if rows and not own_rows(rows, opts.eval_defence):
        found = sorted({r.defence for r in rows if r.defence})
        raise VLMGuardError(f"eval report {opts.eval_report} has no results for defence {opts.eval_defence!r} "
                            f"(it has: {', '.join(found)}); name this rewriter's with --eval-defence NAME")
    if opts.system_prompt:
        from ..prompts import load_prompt

        load_prompt(opts.system_prompt)
    return ExportPlan(opts, source, rows, token, notes)


def with_default_system(template: str, system: str) -> str:
    """``template`` preceded by a Jinja prologue that makes ``system`` the first message of any chat that has no
    system message (the string is a JSON literal, which Jinja reads with the same escapes)."""
    return ("{%- if messages and messages[0]['role'] != 'system' %}{%- set messages = [{'role': 'system', "
            f"'content': {json.dumps(system)}}}] + messages %}}{{%- endif %}}" + template)


def _set_default_system(processor: Any, system: str) -> None:
    from .card import template_has_system

    holders = [processor] + ([processor.tokenizer] if hasattr(processor, "tokenizer") else [])
    if template_has_system(processor, system):
        return
    for holder in holders:
        if isinstance(getattr(holder, "chat_template", None), str):
            holder.chat_template = with_default_system(holder.chat_template, system)


def write_export(plan: ExportPlan, folder: Path) -> dict[str, int]:
    """Write the model (merged, full or adapter), processor, generation config, run config and card to ``folder``."""
    import torch
    from transformers import AutoProcessor, GenerationConfig

    from ..backends.hf import load_pretrained

    opts, src = plan.options, plan.source
    folder.mkdir(parents=True, exist_ok=True)
    base_id = src.base_id
    if src.adapter and opts.adapter_only:
        weights = "adapter"
        config = json.loads((src.path / "adapter_config.json").read_text(encoding="utf-8"))
        if base_id:  # a local base path means nothing on another machine; the hub id does
            config["base_model_name_or_path"] = base_id
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        for name in ("adapter_model.safetensors", "adapter_model.bin"):
            if (src.path / name).is_file():
                shutil.copyfile(src.path / name, folder / name)
        processor = AutoProcessor.from_pretrained(src.processor)
        try:
            GenerationConfig.from_pretrained(src.base).save_pretrained(folder)
        except (OSError, TypeError):
            plan.notes.append(f"no generation config found for base model {src.base}; the adapter ships without one")
    else:
        weights = "merged-lora" if src.adapter else "full"
        dtype = opts.dtype if opts.dtype == "auto" else getattr(torch, opts.dtype)
        model, processor = load_pretrained(str(src.path), dtype, src.base, src.processor)
        max_shard = int(opts.max_shard_size) if str(opts.max_shard_size).isdigit() else opts.max_shard_size
        model.save_pretrained(folder, max_shard_size=max_shard)
        del model
    from ..threshold import THRESHOLD_FILE, read_threshold_file

    facts = card_facts(src.run, opts.repo_id, weights, processor, base_id, opts.system_prompt, license=opts.license,
                       datasets=opts.datasets, eval_rows=plan.eval_rows, eval_defence=opts.eval_defence,
                       threshold=read_threshold_file(src.path))
    _set_default_system(processor, facts.system_prompt)
    processor.save_pretrained(folder)
    _drop_load_time_keys(folder / "tokenizer_config.json")
    facts.system_in_template = _template_file_has_system(folder, facts.system_prompt)
    if src.run is not None:
        run_file = src.path / RUN_CONFIG if (src.path / RUN_CONFIG).is_file() else src.path.parent / RUN_CONFIG
        shutil.copyfile(run_file, folder / RUN_CONFIG)
    from ..perception import PERCEPTION_FILE

    # a rewriter that reads images through perception keeps doing so; its recorded threat threshold goes along
    for name in (PERCEPTION_FILE, THRESHOLD_FILE):
        if (src.path / name).is_file():
            shutil.copyfile(src.path / name, folder / name)
    (folder / "README.md").write_text(render_card(facts), encoding="utf-8")
    return {f: (folder / f).stat().st_size for f in folder_files(folder)}


def _drop_load_time_keys(path: Path) -> None:
    """transformers saves how the tokenizer was loaded (``local_files_only`` under HF_HUB_OFFLINE, ``is_local``)
    into tokenizer_config.json; a published tokenizer must not carry that."""
    if path.is_file():
        config = json.loads(path.read_text(encoding="utf-8"))
        if [config.pop(k) for k in ("local_files_only", "is_local") if k in config]:
            path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _template_file_has_system(folder: Path, system: str) -> bool:
    """Whether the processor as saved (what users download) puts the system prompt first."""
    from transformers import AutoProcessor

    from .card import template_has_system

    return template_has_system(AutoProcessor.from_pretrained(folder), system)


def export(opts: ExportOptions, api: Any = None) -> ExportResult:
    """Check, write and push (or only write, for a dry run). ``api``: an ``HfApi`` stand-in (tests)."""
    plan = plan_export(opts)
    start = time.perf_counter()
    if opts.dry_run:
        folder = Path(opts.dry_run)
        files = write_export(plan, folder)
        return ExportResult(folder, files, time.perf_counter() - start, notes=plan.notes)
    with tempfile.TemporaryDirectory(prefix="vlmguard-export-") as tmp:
        folder = Path(tmp)
        files = write_export(plan, folder)
        url = push(folder, opts.repo_id, plan.token, private=opts.private, revision=opts.revision,
                   commit_message=opts.commit_message, api=api)
    return ExportResult(folder, files, time.perf_counter() - start, url, plan.notes)

