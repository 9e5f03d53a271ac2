"""Rates a reader can trust: a mean with its sample count and a 95% bootstrap interval, and the paired
difference of two defences on the same items."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass
class Estimate:
    value: float | None
    """The mean over the items that could be scored (a rate for 0/1 metrics)."""
    n: int
    """How many items it rests on."""
    ci: tuple[float, float] | None
    """95% percentile-bootstrap interval (None with fewer than 2 items)."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci else None
        return d


def _interval(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def estimate(values: Sequence[float | None], resamples: int = 2000, seed: int = 0) -> Estimate:
    """Mean of the non-None values with its bootstrap interval."""
    got = np.array([v for v in values if v is not None], dtype=float)
    if not len(got):
        return Estimate(None, 0, None)
    return Estimate(float(got.mean()), len(got), _interval(got, resamples, seed))


def paired_deltas(a: dict[str, float | None], b: dict[str, float | None]) -> list[float]:
    """``a[k] - b[k]`` for the items both scored, in item order."""
    return [a[k] - b[k] for k in sorted(k for k in a.keys() & b.keys() if a[k] is not None and b[k] is not None)]


def paired_difference(a: dict[str, float | None], b: dict[str, float | None], resamples: int = 2000,
                      seed: int = 0) -> Estimate:
    """Mean of ``a[k] - b[k]`` over the items both scored, with a bootstrap interval over items (the paired
    design: each item is its own control, so the interval is much tighter than two independent ones)."""
    return estimate(paired_deltas(a, b), resamples, seed)
