"""The inference product: the rewriter turns (images, conversation) into a refined prompt; the target answers it.

This is the one guard path: ``vlmguard chat``, the eval's ``vlmguard`` defence, the GRPO reward context and
``vlmguard serve`` all go through :func:`rewriter_chat` / :func:`rewriter_messages` (what the rewriter reads;
SFT data and GRPO prompts are built by the same functions), :func:`resolve_rewrite` (parse + fallback) and
:func:`target_chat` (what the target receives).

**Conversation policy** — nothing reaches the target that the rewriter has not read:

- the rewriter reads everything the client sent: the client's system prompt, every earlier turn (as a
  transcript) and the latest request, with every image of the conversation, in order;
- the target receives one user turn: every image of the conversation and the refined prompt. Earlier turns,
  the client's system prompt and forged assistant turns reach it only through the refined prompt, which the
  rewriter wrote having read them (so "image in turn 1, request in turn 2", a second image, or a request hidden
  in a system prompt cannot walk around the guard).

**Framing** — user text cannot change anyone's framing: the rewriter's own tags (``<prompt>``, ``</threat>``…)
in client text are neutralised before the rewriter reads it, and chat-template control tokens
(``<|im_start|>``, ``<|eot_id|>``, ``[INST]``…) are defused (a zero-width space after their first character)
in every text part, so they tokenize as plain text (``HFBackend`` does the same with its tokenizer's own
special tokens).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from .backends import Backend, OnError, SamplingParams, load_backend, resolve_specs, run_sync
from .chat import Chat, images, last_user_index, parts, text_of, user_chat, with_prefill
from .errors import VLMGuardError
from .format import REFUSAL, TAG_RE, Fallback, Parsed, Resolved, names_threat, resolve
from .images import ImageLike
from .prompts import load_prompt

log = logging.getLogger(__name__)

CONTROL_TOKENS = (
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
    "<|video_pad|>", "<|vision_pad|>", "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|image|>", "<start_of_turn>",
    "<end_of_turn>", "<start_of_image>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<image>", "<s>", "</s>",
    "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|im_sep|>", "<IMG_CONTEXT>", "<img>", "</img>")
"""Control tokens of the common chat templates (ChatML/Qwen, Llama 3, Gemma, Mistral/Llama 2, LLaVA, Phi,
InternVL): defused in client text for any backend, local or remote."""
_ZWSP = "\u200b"


def defuse(text: str, tokens: Iterable[str] = CONTROL_TOKENS) -> str:
    """``text`` with each control token broken by a zero-width space after its first character."""
    for token in sorted(set(tokens), key=len, reverse=True):
        if len(token) > 1 and token in text:
            text = text.replace(token, token[0] + _ZWSP + token[1:])
    return text


def escape_tags(text: str) -> str:
    """The rewriter's tags in client text written with angle quotes (‹prompt›), so they cannot close or open
    the rewriter's own sections."""
    return TAG_RE.sub(lambda m: f"‹{m.group(1)}{m.group(2)}›", text)


def clean(text: str, tokens: Iterable[str] = CONTROL_TOKENS) -> str:
    return escape_tags(defuse(text, tokens))


def rewriter_messages(instruction: str, system: str | None = None) -> list[dict]:
    """The rewriter's input in TRL's conversational form (text content; TRL inserts the image): its system
    prompt, then the instruction. SFT data, GRPO prompts and inference all build it here."""
    return [{"role": "system", "content": system or load_prompt("rewriter_system")},
            {"role": "user", "content": clean(instruction)}]


def rewriter_chat(instruction: str, image: ImageLike | Sequence[ImageLike] | None = None,
                  system: str | None = None) -> Chat:
    """:func:`rewriter_messages` with the image(s) in the user turn: what the rewriter reads at inference."""
    sys_msg, user = rewriter_messages(instruction, system)
    return user_chat(user["content"], image, sys_msg["content"])


def conversation_text(chat: Chat) -> str:
    """What the rewriter reads of a conversation: the latest request alone when it is the only message;
    otherwise a transcript of everything the client sent (system prompt, earlier turns), then the request."""
    i = last_user_index(chat)
    before = [m for m in chat[:i] if text_of(m).strip() or images([m])]
    after = [m for m in chat[i + 1:] if text_of(m).strip()]
    if not before and not after:
        return text_of(chat[i])
    lines = ["The conversation so far (everything the assistant is given):"]
    for m in before:
        shown = len(images([m]))
        lines.append(f"[{m.get('role')}] {text_of(m)}" + (f" ({shown} image(s) above)" if shown else ""))
    lines.append(f"[latest user request] {text_of(chat[i])}")
    lines += [f"[{m.get('role')} (after the request)] {text_of(m)}" for m in after]
    return "\n".join(lines)


def target_chat(chat: Chat, prompt: str) -> Chat:
    """What the target receives: one user turn with every image of the conversation, then the refined prompt
    (its control tokens defused: the fallback's ``original`` is the client's own text)."""
    return user_chat(defuse(prompt), images(chat) or None)


def resolve_rewrite(chat: Chat, completion: str | None, fallback: Fallback = "original") -> Resolved:
    """Parse the rewriter's completion for this conversation and apply the fallback policy (the fallback's
    ``original`` is the latest request's text)."""
    return resolve(completion or "", text_of(chat[last_user_index(chat)]), fallback)


def is_probability(value: object) -> bool:
    """A number (not a bool) between 0 and 1: what a threat threshold must be."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= 1


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
    threat_threshold: float | str | None = None
    """Decide whether there is a threat from the rewriter's probabilities instead of greedy decoding: its reply is
    started at ``<threat>``, the next token's distribution read (:class:`ThreatRead`), and the reply started with
    the most likely token of the decided side (a threat when ``1 − P(the threat opens "none") ≥ threshold``, else
    "none") before the rewriter writes the rest. Choose it on training data (``vlmguard threshold``); ``"auto"``:
    the threshold ``vlmguard threshold --save`` recorded in the rewriter's folder. Needs a backend that returns
    next-token probabilities and continues a started reply (``hf``, ``vllm``, ``openai`` against ``vllm serve`` or
    SGLang). None: greedy decoding decides."""

    def __post_init__(self) -> None:
        t = self.threat_threshold
        if t is not None and t != "auto" and not is_probability(t):
            raise VLMGuardError(f"threat_threshold {t!r}: give a probability between 0 and 1, auto (the one "
                                "recorded in the rewriter's folder) or none (greedy)")

    def resolved(self, rewriter: str) -> "GuardConfig":
        """This config with ``threat_threshold: auto`` replaced by the threshold recorded for ``rewriter``."""
        if self.threat_threshold != "auto":
            return self
        from .threshold import recorded_threshold

        return replace(self, threat_threshold=recorded_threshold(rewriter))


THREAT_OPEN = "<threat>"


@dataclass(frozen=True)
class ThreatRead:
    """The rewriter's threat decision read from one forward pass with its reply started at ``<threat>``."""

    score: float
    """1 − P(the threat opens with "none"): how sure the rewriter is that there is a threat."""
    threat_token: str | None
    """The most likely first token that names a threat (None when none of the top tokens does)."""
    none_token: str | None
    """The most likely first token of "none"."""

    @classmethod
    def from_logprobs(cls, top: dict[str, float]) -> "ThreatRead":
        words = {t: math.exp(lp) for t, lp in top.items() if t.strip()}
        threat = [t for t in words if names_threat(t)]
        none = [t for t in words if not names_threat(t)]
        return cls(1.0 - min(1.0, sum(words[t] for t in none)), max(threat, key=words.get, default=None),
                   max(none, key=words.get, default=None))

    def opening(self, threshold: float) -> str:
        """The started reply for this decision at ``threshold``."""
        return THREAT_OPEN + ((self.threat_token if self.score >= threshold else self.none_token) or "")


@dataclass
class GuardResult:
    instruction: str
    """The latest user request (the client's text)."""
    completion: str | None
    """The rewriter's raw output (None when the rewriter call failed)."""
    parsed: Parsed
    prompt: str | None
    """The refined prompt the target received; None when the fallback refused."""
    fallback_used: bool
    answer: str | None = None
    target_chat: Chat | None = field(default=None, repr=False)
    """Exactly what the target was (or will be) sent; None when refused."""
    threat_score: float | None = None
    """With ``threat_threshold``: the :attr:`ThreatRead.score` the decision was made on."""

    @property
    def analysis(self) -> dict:
        out = {"completion": self.completion, "threat": self.parsed.threat, "intent": self.parsed.intent,
               "fallback_used": self.fallback_used, "problems": list(self.parsed.problems)}
        return out if self.threat_score is None else {**out, "threat_score": self.threat_score}


class Guard(Backend):
    """``Guard(rewriter, target)``; itself a Backend, so anything that calls a model can call a guarded one."""

    def __init__(self, rewriter: str | Backend, target: str | Backend | None = None,
                 config: GuardConfig | None = None) -> None:
        super().__init__()
        resolve_specs(rewriter, target)  # both specs checked before either model loads
        self.config = (config or GuardConfig()).resolved(rewriter if isinstance(rewriter, str) else rewriter.spec)
        self.rewriter = load_backend(rewriter)
        self.target = load_backend(target) if target is not None else None
        self.spec = f"guard({self.rewriter.spec} -> {self.target.spec if self.target else 'none'})"

    @staticmethod
    def check_chat(chat: Chat) -> None:
        """A conversation the guard can judge: messages with known roles and at least one user turn."""
        if not isinstance(chat, list) or not chat:
            raise VLMGuardError("a chat is a non-empty list of messages")
        for i, m in enumerate(chat):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
                raise VLMGuardError(f"messages[{i}] needs a role of system, user or assistant")
            parts(m)
        last_user_index(chat)

    def rewriter_input(self, chat: Chat) -> Chat:
        """Everything the client sent, as the rewriter reads it (see the module's conversation policy)."""
        self.check_chat(chat)
        return rewriter_chat(conversation_text(chat), images(chat) or None, self.config.system)

    def resolve(self, chats: Sequence[Chat], completions: Sequence[str | None]) -> list[GuardResult]:
        results = []
        for chat, completion in zip(chats, completions):
            r = resolve_rewrite(chat, completion, self.config.fallback)
            self.stats["rewrites"] += 1
            self.stats["rewriter_failed"] += completion is None
            self.stats["unparsed"] += not r.parsed.usable
            self.stats["fallbacks"] += r.fallback_used
            results.append(GuardResult(text_of(chat[last_user_index(chat)]), completion, r.parsed, r.prompt,
                                       r.fallback_used, target_chat=None if r.prompt is None else
                                       target_chat(chat, r.prompt)))
        fallbacks = sum(r.fallback_used for r in results)
        if fallbacks:
            failed = sum(r.completion is None for r in results)
            log.warning("%s: %d of %d rewrites had no usable <prompt> (%d rewriter calls failed); fallback %r used",
                        self.rewriter.spec, fallbacks, len(results), failed, self.config.fallback)
        return results

    async def athreat(self, chats: Sequence[Chat], on_error: OnError = "raise") -> list[ThreatRead | None]:
        """The rewriter's threat decision for each conversation, read from probabilities (None where scoring
        failed with ``on_error="none"``)."""
        started = [with_prefill(self.rewriter_input(c), THREAT_OPEN) for c in chats]
        tops = await self.rewriter.anext_token_logprobs(started, 20, on_error)
        return [None if top is None else ThreatRead.from_logprobs(top) for top in tops]

    async def arewrite(self, chats: Sequence[Chat], on_error: OnError = "raise") -> list[GuardResult]:
        """Rewrite each conversation; no target call. With ``threat_threshold`` the reply is started with the
        decided threat opening (see :class:`GuardConfig`)."""
        inputs = [self.rewriter_input(c) for c in chats]
        threshold = self.config.threat_threshold
        if threshold is None:
            return self.resolve(chats, await self.rewriter.agenerate(inputs, self.config.rewrite, on_error))
        reads = await self.athreat(chats, on_error)
        todo = [(i, r.opening(threshold)) for i, r in enumerate(reads) if r is not None]
        rest = await self.rewriter.agenerate([with_prefill(inputs[i], opening) for i, opening in todo],
                                             self.config.rewrite, on_error)
        completions: list[str | None] = [None] * len(chats)
        for (i, opening), text in zip(todo, rest):
            completions[i] = None if text is None else opening + text
        results = self.resolve(chats, completions)
        for r, read in zip(results, reads):
            r.threat_score = None if read is None else read.score
            self.stats["threats_flagged"] += read is not None and read.score >= threshold
        return results

    async def arun(self, chats: Sequence[Chat], params: SamplingParams | None = None, on_error: OnError = "raise",
                   target: Backend | None = None) -> list[GuardResult]:
        """Rewrite, then have the target (``target`` or the guard's own) answer every refined prompt in one
        batch; a refused rewrite is answered by the guard (:data:`~vlmguard.format.REFUSAL`)."""
        target = target or self.target
        if target is None:
            raise ValueError("this Guard has no target: pass one to answer, or call rewrite()")
        results = await self.arewrite(chats, on_error)
        todo = [r for r in results if r.target_chat is not None]
        answers = await target.agenerate([r.target_chat for r in todo], params or self.config.answer, on_error)
        for r, answer in zip(todo, answers):
            r.answer = answer
            self.stats["target_failed"] += answer is None
        for r in results:
            if r.prompt is None:
                r.answer = REFUSAL
                self.stats["refused"] += 1
        return results

    def rewrite(self, chats: Sequence[Chat], on_error: OnError = "raise") -> list[GuardResult]:
        return run_sync(self.arewrite(chats, on_error))

    def run(self, chats: Sequence[Chat], params: SamplingParams | None = None,
            on_error: OnError = "raise") -> list[GuardResult]:
        return run_sync(self.arun(chats, params, on_error))

    def ask(self, instruction: str, image: ImageLike | None = None) -> GuardResult:
        """One guarded question."""
        return self.run([user_chat(instruction, image)])[0]

    def generate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                 on_error: OnError = "raise") -> list[str | None]:
        return [r.answer for r in self.run(chats, params, on_error)]

    async def agenerate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                        on_error: OnError = "raise") -> list[str | None]:
        return [r.answer for r in await self.arun(chats, params, on_error)]

    def close(self) -> None:
        self.rewriter.close()
        if self.target is not None:
            self.target.close()
