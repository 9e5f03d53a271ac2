"""The inference product: the rewriter turns (image, instruction) into a refined prompt; the target answers it."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

from .backends import Backend, OnError, SamplingParams, load_backend, resolve_specs
from .chat import Chat, last_user, user_chat, with_user_text
from .format import REFUSAL, Fallback, Parsed, resolve
from .images import ImageLike
from .prompts import load_prompt

log = logging.getLogger(__name__)


def rewriter_chat(instruction: str, image: ImageLike | None = None, system: str | None = None) -> Chat:
    """The rewriter's input: its system prompt, then the user's image and instruction. SFT data, GRPO prompts
    and inference all build it here, so the rewriter always sees the same shape."""
    return user_chat(instruction, image, system or load_prompt("rewriter_system"))


@dataclass
class GuardConfig:
    fallback: Fallback = "original"
    """What the target receives when the rewrite has no usable <prompt>: ``original``, ``safe-prefix``, ``refuse``."""
    rewrite: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=384))
    """Sampling for the rewriter (greedy by default)."""
    answer: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=512))
    """Sampling for the target when the Guard is used directly (``run``); ``generate`` takes the caller's."""
    system: str | None = None
    """Rewriter system prompt (text); default: the bundled ``rewriter_system`` template."""


@dataclass
class GuardResult:
    instruction: str
    completion: str | None
    """The rewriter's raw output (None when the rewriter call failed)."""
    parsed: Parsed
    prompt: str | None
    """What the target received; None when the fallback refused."""
    fallback_used: bool
    answer: str | None = None


class Guard(Backend):
    """``Guard(rewriter, target)``; itself a Backend, so anything that calls a model can call a guarded one."""

    def __init__(self, rewriter: str | Backend, target: str | Backend | None = None,
                 config: GuardConfig | None = None) -> None:
        super().__init__()
        resolve_specs(rewriter, target)  # both specs checked before either model loads
        self.rewriter = load_backend(rewriter)
        self.target = load_backend(target) if target is not None else None
        self.config = config or GuardConfig()
        self.spec = f"guard({self.rewriter.spec} -> {self.target.spec if self.target else 'none'})"

    def rewrite(self, chats: Sequence[Chat], on_error: OnError = "raise") -> list[GuardResult]:
        """Rewrite the last user turn of each chat; no target call."""
        turns = [last_user(c) for c in chats]
        originals = [text for text, _ in turns]
        inputs = [rewriter_chat(text, image, self.config.system) for text, image in turns]
        completions = self.rewriter.generate(inputs, self.config.rewrite, on_error)
        results = []
        for text, completion in zip(originals, completions):
            r = resolve(completion or "", text, self.config.fallback)
            self.stats["rewrites"] += 1
            self.stats["rewriter_failed"] += completion is None
            self.stats["unparsed"] += not r.parsed.usable
            self.stats["fallbacks"] += r.fallback_used
            results.append(GuardResult(text, completion, r.parsed, r.prompt, r.fallback_used))
        fallbacks = sum(r.fallback_used for r in results)
        if fallbacks:
            failed = sum(r.completion is None for r in results)
            log.warning("%s: %d of %d rewrites had no usable <prompt> (%d rewriter calls failed); fallback %r used",
                        self.rewriter.spec, fallbacks, len(results), failed, self.config.fallback)
        return results

    def run(self, chats: Sequence[Chat], params: SamplingParams | None = None,
            on_error: OnError = "raise") -> list[GuardResult]:
        """Rewrite, then have the target answer every refined prompt in one batch."""
        if self.target is None:
            raise ValueError("this Guard has no target: pass one to answer, or call rewrite()")
        results = self.rewrite(chats, on_error)
        todo = [(i, with_user_text(c, r.prompt)) for i, (c, r) in enumerate(zip(chats, results)) if r.prompt is not None]
        answers = self.target.generate([c for _, c in todo], params or self.config.answer, on_error)
        for (i, _), answer in zip(todo, answers):
            results[i].answer = answer
        for r in results:
            if r.prompt is None:
                r.answer = REFUSAL
                self.stats["refused"] += 1
        return results

    def ask(self, instruction: str, image: ImageLike | None = None) -> GuardResult:
        """One guarded question."""
        return self.run([user_chat(instruction, image)])[0]

    def generate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                 on_error: OnError = "raise") -> list[str | None]:
        return [r.answer for r in self.run(chats, params, on_error)]

    def close(self) -> None:
        self.rewriter.close()
        if self.target is not None:
            self.target.close()
