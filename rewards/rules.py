"""Rule rewards: the output format and the length budget."""
from __future__ import annotations

import re
from typing import Sequence

from vlmguard.format import TAGS, parse

from .base import Reward
from .batch import Row


class FormatReward(Reward):
    """1/3 for each of ``<threat>``, ``<intent>``, ``<prompt>`` that is present, closed and non-empty."""

    name = "format"

    async def score(self, rows: Sequence[Row], completion_ids=None) -> list[float]:
        out = []
        for r in rows:
            p = parse(r.completion)
            bad = {t for t in TAGS if f"<{t}> not closed" in p.problems or f"duplicate <{t}> (first kept)" in p.problems}
            out.append(sum(bool(p.get(t)) and t not in bad for t in TAGS) / len(TAGS))
        return out


class LengthReward(Reward):
    """1 within budget, falling linearly to 0 at twice the budget: the whole completion in tokens
    (``max_tokens``) and the refined prompt in words (``max_prompt_words``), the product of the two."""

    name = "length"

    def __init__(self, ctx, max_tokens: int = 512, max_prompt_words: int = 80, **kw) -> None:
        super().__init__(ctx, **kw)
        self.max_tokens, self.max_prompt_words = max_tokens, max_prompt_words

    @staticmethod
    def _within(n: float, budget: float) -> float:
        return 1.0 if n <= budget else max(0.0, 2.0 - n / budget)

    async def score(self, rows: Sequence[Row], completion_ids=None) -> list[float]:
        out = []
        for i, r in enumerate(rows):
            n_tokens = len(completion_ids[i]) if completion_ids is not None else len(r.completion.split())
            prompt = parse(r.completion).prompt or ""
            out.append(self._within(n_tokens, self.max_tokens) *
                       self._within(len(re.findall(r"\S+", prompt)), self.max_prompt_words))
        return out
