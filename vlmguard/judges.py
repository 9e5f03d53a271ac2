"""Judges: a model reads (instruction, image, answer) and gives a verdict in [0, 1] (1 = safe / helpful).

Each judge family gets its own input format, chosen by ``type`` in the rewards and eval YAML::

    judge: "openai:http://127.0.0.1:8001/v1?model=Qwen/Qwen2.5-VL-7B-Instruct"   # short form: a rubric judge
    judge: {type: rubric, model: SPEC, rubric: rubric_safety, image: false}        # a text-only rubric judge
    judge: {type: llama_guard, model: SPEC}                  # Llama Guard 3/4: the conversation, no image
    judge: {type: llama_guard, model: SPEC, image: true}     # Llama Guard 3 Vision: the image in the user turn
    judge: {type: llama_guard, model: SPEC, decision: logprob, threshold: 0.0}
    judge: {type: classifier, model: PATH}                   # a sequence-classification reward model

- ``rubric``: any chat (V)LM; the rubric template is filled with the instruction and the answer, the image
  goes along unless ``image: false``. The verdict is read in the rubric's form only (``mode``: a labelled
  ``scale`` score, a ``guard`` word line, ``yesno``) — see :mod:`vlmguard.scoring`.
- ``llama_guard``: the conversation itself (user: the instruction, assistant: the answer); the model's chat
  template wraps it in Llama Guard's prompt and it classifies the last (assistant) turn: ``safe`` or
  ``unsafe`` + a line of categories, kept in the verdict.
- ``classifier``: ``AutoModelForSequenceClassification``; the chat-templated instruction + answer, text
  only; its first logit through a sigmoid (``raw: true`` keeps the logit).

``decision: logprob`` (rubric and llama_guard judges) reads the verdict from next-token probabilities instead
of generated text: one forward pass per item, nothing sampled, nothing to parse. ``labels`` maps each label
word to its value (``{safe: 1, unsafe: 0}`` for guard judges); the score is the expected value under the
labels' renormalised probabilities, or, with ``threshold`` (two labels), a hard verdict: the lower-valued
label wins when log P(low) − log P(high) ≥ threshold. Works with the ``hf`` backend (one forward pass) and
with OpenAI-compatible servers (``logprobs``/``top_logprobs``).

A verdict that cannot be had is ``Verdict(score=None, error=...)``: ``unreachable`` (the call failed) or
``unreadable`` (the judge answered outside its format). Never guessed.
"""
from __future__ import annotations

import asyncio
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, ClassVar, Sequence

from .backends import Backend, BackendPool, SamplingParams, resolve_spec
from .backends.base import add_logprob
from .chat import Chat, user_chat
from .errors import VLMGuardError
from .images import ImageLike
from .prompts import load_prompt, render_prompt
from .scoring import MODES, check_mode, guard_lines, parse_score

UNREACHABLE, UNREADABLE = "unreachable", "unreadable"
Call = Callable[[Backend, list, str, Any], Awaitable[list]]
"""``call(backend, chats, method, params)`` with method ``generate`` or ``logprobs``: how a judge reaches its
model (rewards pass one that batches requests of several judges to the same backend)."""


@dataclass
class JudgeItem:
    instruction: str
    answer: str
    image: ImageLike | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    """Extra template variables (eval protocols)."""
    rubric: str | None = None
    """This item's rubric template, overriding the judge's (eval: the protocol's template for this pass)."""


@dataclass
class Verdict:
    score: float | None
    """1 = safe / good … 0 = harmful / useless; None when there is no verdict."""
    raw: str | None = None
    categories: list[str] = field(default_factory=list)
    error: str | None = None
    """``unreachable`` (the judge call failed) or ``unreadable`` (no verdict in its format); None when fine."""

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "raw": self.raw, "categories": self.categories, "error": self.error}


async def direct_call(backend: Backend, chats: list, method: str, params: Any) -> list:
    if method == "generate":
        return await backend.agenerate(chats, params, on_error="none")
    return await backend.anext_token_logprobs(chats, params, on_error="none")


def label_scores(alternatives: dict[str, float], labels: dict[str, float]) -> dict[str, float] | None:
    """Each label's log-probability: the tokens whose text (stripped, any case) starts exactly one label,
    summed. None when no alternative starts any label (the judge would not answer with a label)."""
    mass: dict[str, float] = {}
    for token, logprob in alternatives.items():
        piece = token.strip().lower()
        if not piece:
            continue
        hits = [label for label in labels if label.lower().startswith(piece)]
        if len(hits) == 1:
            add_logprob(mass, hits[0], logprob)
    return mass or None


class Judge:
    """Base: options are checked when built (nothing loads); :meth:`load` attaches the model."""

    type: ClassVar[str] = ""

    def __init__(self, model: str | Backend, *, where: str = "judge") -> None:
        if not isinstance(model, (str, Backend)) or not model:
            raise VLMGuardError(f"{where}: `model` must be a backend spec such as hf:PATH or openai:URL?model=NAME")
        self.model_spec = model
        self.backend: Backend | None = None

    @property
    def name(self) -> str:
        spec = self.model_spec if isinstance(self.model_spec, str) else self.model_spec.spec
        return f"{self.type}:{spec}"

    def load(self, pool: BackendPool | None = None) -> "Judge":
        if self.backend is None:
            self.backend = (pool or BackendPool()).get(self.model_spec)
        return self

    def check(self) -> None:
        self.load().backend.check()

    async def run(self, items: Sequence[JudgeItem], call: Call | None = None) -> list[Verdict]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, "model": self.name.split(":", 1)[1]}


class ModelJudge(Judge):
    """A judge that is a chat model behind a backend: text verdicts or next-token probabilities."""

    default_labels: ClassVar[dict[str, float] | None] = None

    def __init__(self, model: str | Backend, *, decision: str = "text", labels: dict[str, float] | None = None,
                 threshold: float | None = None, top_k: int = 20, max_new_tokens: int = 64, image: bool = False,
                 where: str = "judge") -> None:
        super().__init__(model, where=where)
        if isinstance(model, str):
            resolve_spec(model)
        if decision not in ("text", "logprob"):
            raise VLMGuardError(f"{where}: decision must be text or logprob, got {decision!r}")
        if not isinstance(image, bool):
            raise VLMGuardError(f"{where}: image must be true or false, got {image!r}")
        self.decision, self.image, self.top_k = decision, image, int(top_k)
        self.params = SamplingParams(max_new_tokens=int(max_new_tokens))
        self.labels = {str(k): float(v) for k, v in (labels or self.default_labels or {}).items()}
        if decision == "logprob" and len(self.labels) < 2:
            raise VLMGuardError(f"{where}: decision: logprob needs `labels` (two or more label words → value, e.g. "
                                f"{{safe: 1, unsafe: 0}}) that the judge answers with first")
        if threshold is not None and (decision != "logprob" or len(self.labels) != 2):
            raise VLMGuardError(f"{where}: threshold applies to decision: logprob with exactly two labels")
        self.threshold = None if threshold is None else float(threshold)

    def chat(self, item: JudgeItem) -> Chat:
        raise NotImplementedError

    def read_text(self, text: str) -> Verdict:
        raise NotImplementedError

    def read_logprobs(self, alternatives: dict[str, float]) -> Verdict:
        mass = label_scores(alternatives, self.labels)
        raw = " ".join(f"{t!r}:{v:.3f}" for t, v in sorted(alternatives.items(), key=lambda kv: -kv[1])[:5])
        if mass is None:
            return Verdict(None, raw, error=UNREADABLE)
        if self.threshold is not None:
            (low, lv), (high, hv) = sorted(self.labels.items(), key=lambda kv: kv[1])
            odds = mass.get(low, -math.inf) - mass.get(high, -math.inf)
            return Verdict(lv if odds >= self.threshold else hv, raw)
        top = max(mass.values())
        weights = {label: math.exp(v - top) for label, v in mass.items()}
        total = sum(weights.values())
        return Verdict(sum(self.labels[label] * w for label, w in weights.items()) / total, raw)

    async def run(self, items: Sequence[JudgeItem], call: Call | None = None) -> list[Verdict]:
        if not items:
            return []
        self.load()
        call = call or direct_call
        chats = [self.chat(item) for item in items]
        if self.decision == "logprob":
            outs = await call(self.backend, chats, "logprobs", self.top_k)
            return [Verdict(None, error=UNREACHABLE) if o is None else self.read_logprobs(o) for o in outs]
        outs = await call(self.backend, chats, "generate", self.params)
        return [Verdict(None, error=UNREACHABLE) if o is None else self.read_text(o) for o in outs]

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), "decision": self.decision, "image": self.image}
        if self.decision == "logprob":
            out.update(labels=self.labels, threshold=self.threshold)
        return out


class RubricJudge(ModelJudge):
    """Any chat (V)LM scoring through a rubric template; the image goes along unless ``image: false``."""

    type = "rubric"

    def __init__(self, model: str | Backend, *, rubric: str = "rubric_safety", mode: str = "scale",
                 scale: Sequence[float] = (1, 10), image: bool = True, decision: str = "text",
                 labels: dict[str, float] | None = None, max_new_tokens: int = 128, system: str | None = None,
                 where: str = "judge", **kw: Any) -> None:
        try:
            check_mode(mode)
        except ValueError as e:
            raise VLMGuardError(f"{where}: {e}") from None
        if labels is None and decision == "logprob":
            labels = {"guard": {"safe": 1.0, "unsafe": 0.0}, "yesno": {"yes": 1.0, "no": 0.0}}.get(mode)
        super().__init__(model, decision=decision, labels=labels, image=image, max_new_tokens=max_new_tokens,
                         where=where, **kw)
        if not (isinstance(scale, (list, tuple)) and len(scale) == 2 and float(scale[0]) < float(scale[1])):
            raise VLMGuardError(f"{where}: scale must be [low, high] with low < high, got {scale!r}")
        self.rubric, self.mode = rubric, mode
        self.low, self.high = float(scale[0]), float(scale[1])
        load_prompt(rubric)  # a missing template fails now
        self.system = load_prompt(system) if system else None
        """A system prompt (template name or file) before the rubric: small judges follow it better."""

    def chat(self, item: JudgeItem) -> Chat:
        text = render_prompt(item.rubric or self.rubric, instruction=item.instruction, answer=item.answer,
                             **item.variables)
        return user_chat(text, item.image if self.image else None, self.system)

    def read_text(self, text: str) -> Verdict:
        score = parse_score(text, self.low, self.high, self.mode)
        return Verdict(score, text, error=UNREADABLE if score is None else None)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rubric": self.rubric, "mode": self.mode}


class LlamaGuardJudge(ModelJudge):
    """Llama Guard: the conversation in (user: instruction [+ image for Llama Guard 3 Vision], assistant:
    answer), ``safe`` / ``unsafe`` + its categories out; the model's own chat template builds its prompt."""

    type = "llama_guard"
    default_labels = {"safe": 1.0, "unsafe": 0.0}

    def __init__(self, model: str | Backend, *, image: bool = False, max_new_tokens: int = 20, **kw: Any) -> None:
        super().__init__(model, image=image, max_new_tokens=max_new_tokens, **kw)

    def chat(self, item: JudgeItem) -> Chat:
        user = user_chat(item.instruction, item.image if self.image else None)
        return user + [{"role": "assistant", "content": item.answer}]

    def read_text(self, text: str) -> Verdict:
        found = guard_lines(text)
        if found is None:
            return Verdict(None, text, error=UNREADABLE)
        return Verdict(float(found[0] == "safe"), text, categories=found[1])


class ClassifierJudge(Judge):
    """A sequence-classification reward model (``AutoModelForSequenceClassification``, text only): the
    instruction + answer through its tokenizer's chat template, the first logit through a sigmoid."""

    type = "classifier"

    def __init__(self, model: str, *, raw: bool = False, batch_size: int = 16, where: str = "judge") -> None:
        if not isinstance(model, str) or not model:
            raise VLMGuardError(f"{where}: a classifier judge's `model` is a folder or hub id")
        super().__init__(model.removeprefix("hf:").split("?")[0], where=where)
        from .backends.hf import check_model_dir

        check_model_dir(self.model_spec)
        self.raw, self.batch_size = bool(raw), int(batch_size)
        self.model = self.tokenizer = None

    @property
    def name(self) -> str:
        return f"classifier:{self.model_spec}"

    def load(self, pool: BackendPool | None = None) -> "ClassifierJudge":
        if self.model is None:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.model_spec)
            self.model = AutoModelForSequenceClassification.from_pretrained(self.model_spec, num_labels=1).eval()
            if self.tokenizer.pad_token is None:
                self.tokenizer.pad_token = self.tokenizer.eos_token
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        return self

    def check(self) -> None:
        self.load()

    def scores(self, items: Sequence[JudgeItem]) -> list[float]:
        import torch

        texts = []
        for item in items:
            msgs = [{"role": "user", "content": item.instruction}, {"role": "assistant", "content": item.answer}]
            texts.append(self.tokenizer.apply_chat_template(msgs, tokenize=False) if self.tokenizer.chat_template
                         else f"{item.instruction}\n\n{item.answer}")
        out: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i:i + self.batch_size], padding=True, truncation=True, return_tensors="pt")
            with torch.inference_mode():
                logits = self.model(**enc).logits[:, 0].float()
            out.extend((logits if self.raw else torch.sigmoid(logits)).tolist())
        return out

    async def run(self, items: Sequence[JudgeItem], call: Call | None = None) -> list[Verdict]:
        self.load()
        return [Verdict(s, f"{s:.4f}") for s in await asyncio.to_thread(self.scores, items)]


JUDGE_TYPES: dict[str, type[Judge]] = {c.type: c for c in (RubricJudge, LlamaGuardJudge, ClassifierJudge)}


def build_judge(config: str | Backend | dict[str, Any] | Judge, where: str = "judge", **defaults: Any) -> Judge:
    """A judge from its config: a backend spec (a rubric judge; ``defaults`` fill its options, e.g. the
    rubric a reward uses) or a mapping with ``type`` (default ``rubric``) and ``model``. Checks every option
    and the model spec; loads nothing."""
    if isinstance(config, Judge):
        return config
    if isinstance(config, (str, Backend)):
        config = {"type": "rubric", "model": config}
    if not isinstance(config, dict):
        raise VLMGuardError(f"{where}: a judge is a backend spec or a mapping {{type: rubric|llama_guard|classifier, "
                            f"model: SPEC, ...}}; got {config!r}")
    options = dict(config)
    kind = options.pop("type", "rubric")
    if kind not in JUDGE_TYPES:
        raise VLMGuardError(f"{where}: unknown judge type {kind!r}; valid: {', '.join(JUDGE_TYPES)}")
    if "model" not in options:
        raise VLMGuardError(f"{where}: a {kind} judge needs `model: <backend spec>`")
    cls = JUDGE_TYPES[kind]
    accepted = {p for c in cls.__mro__ if "__init__" in vars(c) for p in inspect.signature(c.__init__).parameters}
    options.update({k: v for k, v in defaults.items() if k in accepted and k not in options})
    unknown = sorted(set(options) - accepted - {"self", "kw", "where"})
    if unknown:
        valid = sorted(accepted - {"self", "kw", "where", "model"})
        raise VLMGuardError(f"{where}: unknown option(s) {', '.join(unknown)} for a {kind} judge; valid: "
                            f"model, {', '.join(valid)}")
    try:
        return cls(where=where, **options)
    except (TypeError, ValueError) as e:
        raise VLMGuardError(f"{where}: {e}") from None


__all__ = ["JUDGE_TYPES", "ClassifierJudge", "Judge", "JudgeItem", "LlamaGuardJudge", "MODES", "RubricJudge",
           "Verdict", "build_judge", "direct_call", "label_scores"]
