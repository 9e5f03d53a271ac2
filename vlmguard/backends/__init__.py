"""Model backends behind one interface, named by a spec string.

=====================================================  ==============================================
spec                                                   backend
=====================================================  ==============================================
``hf:/path/or/hub-id?batch_size=8&dtype=bfloat16``     in-process transformers, batched, left-padded
``openai:http://127.0.0.1:8000/v1?model=NAME``         any OpenAI-compatible server (``vllm serve``...)
``vllm:/path/or/hub-id?gpu_memory_utilization=0.5``    in-process vLLM engine (extra ``vllm``)
=====================================================  ==============================================

Options after ``?`` are each backend's ``Options`` fields; an unknown option is an error that lists them.
One option is generic, accepted by every kind: ``perception=ocr,nsfw`` (or ``ocr``, ``nsfw``) puts a perception
front end before the model (:mod:`vlmguard.backends.perceive`: each image becomes a text description, extra
``perception``). A local model folder trained on perceived images (a rewriter SFT/GRPO'd with ``perception:``)
records it (``vlmguard-perception.json``) and gets the same front end without the option; ``perception=none``
turns that off.
"""
from __future__ import annotations

import dataclasses
import importlib
import typing
from urllib.parse import parse_qsl

from ..errors import VLMGuardError
from .base import Backend, OnError, SamplingParams, run_sync

KINDS = {"hf": "vlmguard.backends.hf:HFBackend",
         "openai": "vlmguard.backends.openai:OpenAIBackend",
         "vllm": "vlmguard.backends.vllm:VLLMBackend"}
EXAMPLES = "hf:/path/to/model, openai:http://127.0.0.1:8000/v1?model=NAME or vllm:/path/to/model"

__all__ = ["Backend", "BackendPool", "SamplingParams", "OnError", "load_backend", "resolve_spec", "resolve_specs",
           "parse_spec", "parse_options", "run_sync"]


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split ``kind:location?k=v&...`` into its kind, location and raw options."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KINDS or not rest:
        raise VLMGuardError(f"unknown backend spec {spec!r}: expected one of {EXAMPLES}")
    location, _, query = rest.partition("?")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError as e:
        raise VLMGuardError(f"malformed options in backend spec {spec!r}: {e}; write ?key=value&key=value") from e
    return kind, location, options


THROUGHPUT_OPTIONS = ("batch_size", "concurrency", "timeout", "retries")
"""Spec options that change only how fast or how reliably a model answers, not what it answers."""


def answering_spec(spec: str) -> str:
    """The spec without its :data:`THROUGHPUT_OPTIONS` (what decides the answers: resuming with a smaller batch
    after running out of memory is the same model)."""
    try:
        kind, location, options = parse_spec(spec)
    except VLMGuardError:
        return spec
    kept = "&".join(f"{k}={v}" for k, v in options.items() if k not in THROUGHPUT_OPTIONS)
    return f"{kind}:{location}" + (f"?{kept}" if kept else "")


def parse_options(cls: type, raw: dict[str, str], spec: str):
    """Build the dataclass ``cls`` from string options, converting each to its field's type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise VLMGuardError(f"unknown option(s) {', '.join(unknown)} in backend spec {spec!r}; "
                            f"valid options: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, text in raw.items():
        kind = hints[key]
        base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        try:
            if base is bool:
                if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(text)
                values[key] = text.lower() in ("1", "true", "yes")
            else:
                values[key] = base(text)
        except ValueError:
            raise VLMGuardError(f"option {key}={text!r} in backend spec {spec!r} is not a valid "
                                f"{getattr(base, '__name__', base)}") from None
    return cls(**values)


def resolve_spec(spec: str):
    """Parse and statically check a spec without loading anything: (backend class, location, options).
    Callers that load several backends resolve them all first, so a typo fails before any model loads."""
    if not isinstance(spec, str):
        raise VLMGuardError(f"a backend is a spec string such as {EXAMPLES}; got {type(spec).__name__}")
    kind, location, raw = parse_spec(spec)
    perception = raw.pop("perception", None)  # generic option of every kind: checked here, applied by load_backend
    if perception is not None and perception.lower() != "none":
        from ..perception import check_installed, parse_components

        check_installed(parse_components(perception, spec), spec)
    module, _, name = KINDS[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    options = parse_options(cls.Options, raw, spec)
    cls.precheck(location, options)
    return cls, location, options


def resolve_specs(*specs: str | Backend | None) -> None:
    """Statically check every spec string (Backend instances and None are skipped) before any of them loads."""
    for spec in specs:
        if isinstance(spec, str):
            resolve_spec(spec)


def load_backend(spec: str | Backend) -> Backend:
    """The backend a spec names (a Backend instance is returned as is)."""
    if isinstance(spec, Backend):
        return spec
    cls, location, options = resolve_spec(spec)
    perception = perception_of(spec, location)
    backend = cls(location, options)
    backend.spec = spec
    if perception is not None:
        from .perceive import PerceivingBackend

        backend = PerceivingBackend(backend, perception, spec=spec)
    return backend


def perception_of(spec: str, location: str) -> str | None:
    """The perception components a spec asks for: its ``perception=`` option, else what the local model folder
    records (a rewriter trained on perceived images), else None; ``perception=none`` is None."""
    from ..perception import resolve_perception

    option = parse_spec(spec)[2].get("perception")
    perception = resolve_perception(option, location, spec)
    if option is None and perception is not None:
        import logging

        logging.getLogger(__name__).info("%s was trained on perceived images: reading images through perception=%s "
                                         "(add perception=none to the spec to turn it off)", location, perception)
    return perception


class BackendPool:
    """Backends shared by spec: a model named twice (one judge for two rewards, one rewriter for two defences)
    loads once. With ``check``, each is asked whether it can answer (``Backend.check``) as it loads."""

    def __init__(self, check: bool = False) -> None:
        self.check = check
        self.loaded: dict[str, Backend] = {}

    def get(self, spec: str | Backend) -> Backend:
        if isinstance(spec, Backend):
            return spec
        if spec not in self.loaded:
            backend = load_backend(spec)
            if self.check:
                backend.check()
            self.loaded[spec] = backend
        return self.loaded[spec]

    def close(self) -> None:
        for backend in self.loaded.values():
            backend.close()
