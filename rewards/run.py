"""Scoring a dataset with a rewards config, the way GRPOTrainer calls the reward functions."""
from __future__ import annotations

import asyncio
import inspect
import math
from typing import Any, Sequence

from vlmguard.format import parse
from vlmguard.images import load_image
from vlmguard.schema import Sample

from . import RewardSet


def trl_call_args(samples: Sequence[Sample]) -> tuple[list, list, dict[str, list]]:
    """``prompts``, ``completions`` and dataset columns shaped as GRPOTrainer passes them."""
    images = [load_image(s.image_path()) if s.image is not None else None for s in samples]
    prompts = [[{"role": "user", "content": ([{"type": "image", "image": im}] if im is not None else [])
                 + [{"type": "text", "text": s.instruction}]}] for s, im in zip(samples, images)]
    completions = [[{"role": "assistant", "content": str(s.extra.get("rewrite") or "")}] for s in samples]
    columns = {"id": [s.id for s in samples], "instruction": [s.instruction for s in samples], "image": images,
               "label": [s.label for s in samples], "answer": [s.extra.get("response") for s in samples]}
    return prompts, completions, columns


async def _call(func: Any, prompts, completions, columns) -> list[float | None]:
    out = func(prompts=prompts, completions=completions, completion_ids=None, **columns)
    if inspect.isawaitable(out):
        out = await out
    return list(out)


def total(scores: Sequence[float | None], weights: Sequence[float]) -> float | None:
    """TRL's weighted sum, None-aware (a None reward is left out, as TRL's nansum does)."""
    vals = [w * s for s, w in zip(scores, weights) if s is not None and not math.isnan(s)]
    return sum(vals) if vals else None


def score_samples(rewards: RewardSet, samples: Sequence[Sample], batch_size: int = 16,
                  desc: str = "scoring") -> list[dict[str, Any]]:
    """Per-sample scores of every reward and their weighted total."""
    from tqdm.auto import tqdm

    async def run() -> list[dict[str, Any]]:
        out = []
        with tqdm(total=len(samples), desc=desc, unit="sample", dynamic_ncols=True) as bar:
            for i in range(0, len(samples), batch_size):
                batch = samples[i:i + batch_size]
                prompts, completions, columns = trl_call_args(batch)
                results = await asyncio.gather(*[_call(f, prompts, completions, columns) for f in rewards.funcs])
                for j, s in enumerate(batch):
                    per = {name: res[j] for name, res in zip(rewards.names, results)}
                    out.append({"id": s.id, "label": s.label, "gold": s.extra.get("gold"),
                                "parsed": parse(str(s.extra.get("rewrite") or "")).usable,
                                "rewards": per, "total": total(list(per.values()), rewards.weights)})
                bar.update(len(batch))
        return out

    return asyncio.run(run())
