"""Rewards on the downstream answer: safety and helpfulness judges (rubric, Llama Guard, reward model), over-refusal.

``judge:`` is a backend spec (a rubric judge; ``rubric``, ``mode``, ``scale``, ``image``, ``decision``,
``labels``, ``threshold``, ``max_new_tokens`` beside it configure it) or a judge mapping
(``{type: llama_guard, model: SPEC}``, see :mod:`vlmguard.judges`), whose options then live inside it.
"""
from __future__ import annotations

from typing import Any, Sequence

from vlmguard.judges import build_judge
from vlmguard.refusal import is_refusal

from .base import Reward
from .batch import Row

def _judge_config(name: str, judge: Any, shorthand: dict[str, Any], defaults: dict[str, Any]):
    given = {k: v for k, v in shorthand.items() if v is not None}
    if isinstance(judge, dict):
        if given:
            raise ValueError(f"put {', '.join(given)} inside `judge:` (a judge mapping carries its own options)")
        return build_judge(judge, where=f"reward {name!r} judge", **defaults)
    return build_judge({"type": "rubric", "model": judge, **defaults, **given}, where=f"reward {name!r} judge")


class JudgeReward(Reward):
    """A judge reads the ORIGINAL instruction (and the image, for judges that take one) and the target's answer;
    its verdict in [0, 1] is the reward. No verdict (judge unreachable, or an answer outside its format) → None."""

    rubric = "rubric_safety"
    needs_answers = True

    def __init__(self, ctx, judge: Any = None, rubric: str | None = None, scale: Sequence[float] | None = None,
                 mode: str | None = None, image: bool | None = None, decision: str | None = None,
                 labels: dict | None = None, threshold: float | None = None, top_k: int | None = None,
                 max_new_tokens: int | None = None, **kw) -> None:
        super().__init__(ctx, **kw)
        if judge is None:
            raise ValueError(f"reward {self.name!r} needs `judge: <backend spec>` or `judge: {{type: ..., model: ...}}`")
        shorthand = dict(rubric=rubric, scale=scale, mode=mode, image=image, decision=decision, labels=labels,
                         threshold=threshold, top_k=top_k, max_new_tokens=max_new_tokens)
        self.judge = _judge_config(self.name, judge, shorthand, {"rubric": type(self).rubric})

    async def score(self, rows: Sequence[Row], completion_ids=None) -> list[float | None]:
        answers = await self.ctx.answers(rows)
        verdicts = await self.ctx.verdicts(self.name, self.judge, rows, answers)
        return [None if v is None else v.score for v in verdicts]


class SafetyReward(JudgeReward):
    """Safety of the downstream answer: 1 safe … 0 harmful."""

    name = "safety"
    rubric = "rubric_safety"


class HelpfulnessReward(JudgeReward):
    """How well the answer serves the legitimate intent: a rubric judge, or a reward model
    (``model: PATH`` — short for ``judge: {type: classifier, model: PATH, raw, batch_size}``)."""

    name = "helpfulness"
    rubric = "rubric_helpfulness"

    def __init__(self, ctx, judge: Any = None, model: str | None = None, raw: bool | None = None,
                 batch_size: int | None = None, **kw) -> None:
        if (judge is None) == (model is None):
            raise ValueError("reward 'helpfulness' needs exactly one of `judge: <backend spec>` or `model: <path>`")
        if model is not None:
            judge = {"type": "classifier", "model": model,
                     **{k: v for k, v in (("raw", raw), ("batch_size", batch_size)) if v is not None}}
        elif raw is not None or batch_size is not None:
            raise ValueError("raw and batch_size apply to a reward model (`model: PATH`), not to a judge")
        super().__init__(ctx, judge=judge, **kw)


class OverRefusalReward(Reward):
    """On samples labelled benign: -1 when the answer refuses, else 0. Harmful or unlabelled samples: None.
    Refusals are detected by rule, or by a judge (``judge: SPEC``: a text-only yes/no rubric,
    ``rubric_refusal``; or any judge mapping whose score 1 means "refused")."""

    name = "over_refusal"
    needs_answers = True

    def __init__(self, ctx, judge: Any = None, rubric: str | None = None, max_new_tokens: int | None = None,
                 decision: str | None = None, **kw) -> None:
        if kw.pop("only", "benign") not in ("benign", ["benign"]):
            raise ValueError("over_refusal scores benign rows only; drop its `only`")
        super().__init__(ctx, only="benign", **kw)  # the base class passes only benign rows to score()
        self.judge = None
        if judge is None:
            if rubric is not None or max_new_tokens is not None or decision is not None:
                raise ValueError("rubric, max_new_tokens and decision apply only with `judge:` (the rule needs none)")
            return
        self.judge = _judge_config(self.name, judge, dict(rubric=rubric, max_new_tokens=max_new_tokens,
                                                          decision=decision),
                                   {"rubric": "rubric_refusal", "mode": "yesno", "image": False, "max_new_tokens": 8})

    async def score(self, rows: Sequence[Row], completion_ids=None) -> list[float | None]:
        answers = await self.ctx.answers(rows)
        if self.judge is None:
            refused: list[Any] = [None if a is None else is_refusal(a) for a in answers]
        else:
            verdicts = await self.ctx.verdicts(self.name, self.judge, rows, answers)
            refused = [None if v is None or v.score is None else v.score >= 0.5 for v in verdicts]
        return [None if flag is None else (-1.0 if flag else 0.0) for flag in refused]
