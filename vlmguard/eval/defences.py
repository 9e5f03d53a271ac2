"""Defences: what stands between the user's (image, instruction) and the target VLM's answer.

Each defence is one small class with one method, ``respond(target, chats, params)``, that returns one
:class:`Response` per chat. Built-ins: ``none``, ``adashield`` (AdaShield-S static prompt), ``ecso`` (answer,
self-check, re-answer from a caption), ``rewrite`` (a rewrite without reasoning) and ``vlmguard`` (the
reasoning rewriter from any SFT/GRPO checkpoint). Add your own as ``my_pkg.module:MyDefence``.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..backends import Backend, BackendPool, SamplingParams, answering_spec, resolve_specs
from ..chat import Chat, last_user, user_chat, with_user_text
from ..errors import VLMGuardError
from ..guard import Guard, GuardConfig
from ..prompts import load_prompt, render_prompt
from ..scoring import parse_score


@dataclass
class Response:
    """A defended answer: ``answer`` None when the target failed; ``prompt`` what the target received when the
    defence changed it; ``analysis`` the defence's own record (rewrite fields, self-check verdicts…)."""

    answer: str | None
    prompt: str | None = None
    analysis: dict[str, Any] = field(default_factory=dict)


class Defence(ABC):
    """``respond(target, chats, params) -> [Response]``; one batched call per step, so hf targets batch and
    openai targets run concurrently. Options come from the config as keyword arguments."""

    name: str = ""
    specs: tuple[str, ...] = ()
    """Names of the constructor options that are backend specs (checked before anything loads)."""

    def __init__(self, backends: BackendPool) -> None:
        self.backends = backends

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Check the option values before anything loads (raise VLMGuardError); by default nothing to check."""

    @classmethod
    def setup(cls, options: dict[str, Any]) -> dict[str, Any]:
        """What decides this defence's answers, stored with every record, so that a rerun notices a config change
        that makes stored answers stale (by default: the options as written, backend specs without their
        throughput options)."""
        return {k: answering_spec(v) if k in cls.specs and isinstance(v, str) else v for k, v in options.items()}

    @abstractmethod
    async def respond(self, target: Backend, chats: Sequence[Chat], params: SamplingParams) -> list[Response]:
        ...


class NoDefence(Defence):
    """The target answers the user's turn as is."""

    name = "none"

    async def respond(self, target, chats, params):
        return [Response(a) for a in await target.agenerate(chats, params, on_error="none")]


class PromptTemplate(Defence):
    """The user's instruction is passed through a fixed template (``template``: a bundled name or a file);
    AdaShield-S appends its static defence prompt this way."""

    name = "prompt"
    template = ""

    def __init__(self, backends: BackendPool, template: str | None = None) -> None:
        super().__init__(backends)
        self.template = template or self.template
        if not self.template:
            raise VLMGuardError(f"defence {self.name!r} needs `template: <prompt file>`")
        load_prompt(self.template)

    async def respond(self, target, chats, params):
        prompts = [render_prompt(self.template, instruction=last_user(c)[0]) for c in chats]
        answers = await target.agenerate([with_user_text(c, p) for c, p in zip(chats, prompts)], params, "none")
        return [Response(a, p) for a, p in zip(answers, prompts)]


class AdaShield(PromptTemplate):
    """AdaShield-S: the static safety prompt of Wang et al. (ECCV 2024) appended to every instruction."""

    name = "adashield"
    template = "defence_adashield"


class ECSO(Defence):
    """ECSO (Gou et al., ECCV 2024): answer; the model checks its own answer ("harmful? yes/no"); on yes,
    describe the image in view of the request and answer again from that caption alone (eyes closed).
    ``checker``: another backend for the self-check (default: the target itself). An unreadable check
    counts as safe (the original answer stands) and is recorded."""

    name = "ecso"
    specs = ("checker",)

    def __init__(self, backends: BackendPool, checker: str | None = None, check_max_new_tokens: int = 8,
                 caption_max_new_tokens: int = 256) -> None:
        super().__init__(backends)
        self.checker = backends.get(checker) if checker else None
        self.check_params = SamplingParams(max_new_tokens=check_max_new_tokens)
        self.caption_params = SamplingParams(max_new_tokens=caption_max_new_tokens)

    async def respond(self, target, chats, params):
        turns = [last_user(c) for c in chats]
        answers = await target.agenerate(chats, params, "none")
        checks = [user_chat(render_prompt("defence_ecso_check", instruction=text, answer=a or ""))
                  for (text, _), a in zip(turns, answers)]
        verdicts = await (self.checker or target).agenerate(checks, self.check_params, "none")
        out = [Response(a, analysis={"check": v, "unsafe": parse_score(v, mode="yesno") == 1.0})
               for a, v in zip(answers, verdicts)]
        redo = [i for i, r in enumerate(out) if r.answer is not None and r.analysis["unsafe"]]
        if redo:
            captions = await target.agenerate(
                [user_chat(render_prompt("defence_ecso_caption", instruction=turns[i][0]), turns[i][1]) for i in redo],
                self.caption_params, "none")
            prompts = [render_prompt("defence_ecso_answer", instruction=turns[i][0], caption=c or "")
                       for i, c in zip(redo, captions)]
            again = await target.agenerate([user_chat(p) for p in prompts], params, "none")
            for i, caption, prompt, answer in zip(redo, captions, prompts, again):
                out[i] = Response(answer, prompt, {**out[i].analysis, "caption": caption, "first_answer": out[i].answer})
        return out


class PlainRewrite(Defence):
    """A rewriter writes only a refined prompt (no threat/intent reasoning); the target answers it.
    ``rewriter``: any backend spec; ``template``: the instruction it is given."""

    name = "rewrite"
    specs = ("rewriter",)

    def __init__(self, backends: BackendPool, rewriter: str | None = None, template: str = "defence_rewrite",
                 max_new_tokens: int = 256) -> None:
        super().__init__(backends)
        if not rewriter:
            raise VLMGuardError(f"defence {self.name!r} needs `rewriter: <backend spec>`")
        load_prompt(template)
        self.rewriter, self.template = backends.get(rewriter), template
        self.params = SamplingParams(max_new_tokens=max_new_tokens)

    async def respond(self, target, chats, params):
        turns = [last_user(c) for c in chats]
        rewrites = await self.rewriter.agenerate(
            [user_chat(render_prompt(self.template, instruction=t), img) for t, img in turns], self.params, "none")
        prompts = [(r or "").strip() or t for r, (t, _) in zip(rewrites, turns)]  # empty rewrite: original
        answers = await target.agenerate([with_user_text(c, p) for c, p in zip(chats, prompts)], params, "none")
        return [Response(a, p, {"completion": r, "fallback_used": not (r or "").strip()})
                for a, p, r in zip(answers, prompts, rewrites)]


class VLMGuard(Defence):
    """The VLMGuard-R1 rewriter (``rewriter``: an SFT or GRPO checkpoint, any backend spec): it reasons about
    the threat, reconstructs the intent and writes the refined prompt that the target answers. ``fallback``:
    what the target gets when the rewrite has no usable ``<prompt>`` (``original``, ``safe-prefix``, ``refuse``);
    ``threat_threshold``: decide the threat from the rewriter's probabilities (:class:`~vlmguard.guard.GuardConfig`;
    ``auto``: the threshold recorded in the rewriter's folder by ``vlmguard threshold --save``)."""

    name = "vlmguard"
    specs = ("rewriter",)

    def __init__(self, backends: BackendPool, rewriter: str | None = None, fallback: str = "original",
                 max_new_tokens: int = 384, system: str | None = None,
                 threat_threshold: float | str | None = None) -> None:
        super().__init__(backends)
        # a recorded threshold (auto) is read here, before the rewriter loads; check_options only checks the value
        config = self._config(rewriter, fallback, max_new_tokens, system, threat_threshold).resolved(rewriter)
        # the product's own guard path (vlmguard.guard), so what is measured is what users run
        self.guard = Guard(backends.get(rewriter), None, config)

    @classmethod
    def _config(cls, rewriter: str | None = None, fallback: str = "original", max_new_tokens: int = 384,
                system: str | None = None, threat_threshold: float | str | None = None) -> GuardConfig:
        if not rewriter:
            raise VLMGuardError(f"defence {cls.name!r} needs `rewriter: <backend spec>` (an SFT/GRPO checkpoint)")
        if fallback not in ("original", "safe-prefix", "refuse"):
            raise VLMGuardError(f"defence {cls.name!r}: fallback {fallback!r}; use original, safe-prefix or refuse")
        try:
            return GuardConfig(fallback=fallback, rewrite=SamplingParams(max_new_tokens=max_new_tokens),
                               system=load_prompt(system) if system else None, threat_threshold=threat_threshold)
        except VLMGuardError as e:
            raise VLMGuardError(f"defence {cls.name!r}: {e}") from None

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        cls._config(**options)

    @classmethod
    def setup(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The options with ``threat_threshold: auto`` as the number recorded now (a new ``--save`` changes the
        answers while the config reads the same); left as ``auto`` when none is recorded (building it says so)."""
        out = super().setup(options)
        if out.get("threat_threshold") == "auto":
            from ..threshold import recorded_threshold

            try:
                out["threat_threshold"] = recorded_threshold(options.get("rewriter") or "", quiet=True)
            except VLMGuardError:
                pass
        return out

    async def respond(self, target, chats, params):
        results = await self.guard.arun(chats, params, "none", target=target)
        return [Response(r.answer, r.prompt, r.analysis) for r in results]


DEFENCES: dict[str, type[Defence]] = {c.name: c for c in (NoDefence, PromptTemplate, AdaShield, ECSO, PlainRewrite,
                                                          VLMGuard)}


def defence_class(kind: str) -> type[Defence]:
    """A built-in defence by name, or a user's ``package.module:Class``."""
    if kind in DEFENCES:
        return DEFENCES[kind]
    if ":" in kind:
        module, _, attr = kind.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise VLMGuardError(f"cannot import defence {kind!r} ({e}): write it as package.module:Class") from e
        if not (inspect.isclass(cls) and issubclass(cls, Defence)):
            raise VLMGuardError(f"defence {kind!r} is not a subclass of vlmguard.eval.Defence")
        return cls
    close = difflib.get_close_matches(kind, DEFENCES, n=1)
    raise VLMGuardError(f"unknown defence {kind!r}" + (f" (did you mean {close[0]}?)" if close else "") +
                        f"; built-in: {', '.join(DEFENCES)}, or package.module:Class")


def check_defence(kind: str, options: dict[str, Any], where: str) -> type[Defence]:
    """Resolve the class and statically check its options and backend specs, before anything loads."""
    cls = defence_class(kind)
    params = inspect.signature(cls.__init__).parameters
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(options) - set(params) - {"self", "backends"})
    if unknown and not accepts_any:
        valid = [p for p in params if p not in ("self", "backends")]
        raise VLMGuardError(f"{where}: unknown option(s) {', '.join(unknown)} for defence {kind!r}; "
                            f"valid: {', '.join(valid) or '(none)'}")
    try:
        cls.check_options(options)
    except VLMGuardError as e:
        raise VLMGuardError(f"{where}: {e}") from None
    resolve_specs(*(options.get(s) for s in cls.specs))
    return cls
