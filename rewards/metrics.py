"""Agreement of scores with gold labels: accuracy, AUROC and Spearman's rho, written out in numpy."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), 1-based."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    s, y = np.asarray(scores, float), np.asarray(positives, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    r = _ranks(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    x, y = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def agreement(scores: Sequence[float | None], gold: Sequence[float | bool | None],
              threshold: float = 0.5, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Metrics over the samples that have both a score and a gold value; accuracy and AUROC come with 95%
    percentile-bootstrap intervals over samples (``*_ci``; None with fewer than 2 samples of each class)."""
    pairs = [(float(s), float(g)) for s, g in zip(scores, gold) if s is not None and g is not None]
    if not pairs:
        return {"n": 0, "accuracy": None, "accuracy_ci": None, "auroc": None, "auroc_ci": None, "spearman": None}
    s, g = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    correct = (s >= threshold) == (g >= 0.5)
    rng = np.random.default_rng(seed)
    accs, aurocs = [], []
    for idx in rng.integers(0, len(s), size=(resamples, len(s))) if len(s) >= 2 else ():
        accs.append(correct[idx].mean())
        a = auroc(s[idx], g[idx] >= 0.5)
        if a is not None:
            aurocs.append(a)
    ci = lambda v: [float(x) for x in np.percentile(v, [2.5, 97.5])] if len(v) >= resamples // 2 else None  # noqa: E731
    return {"n": len(pairs), "accuracy": float(correct.mean()), "accuracy_ci": ci(accs),
            "auroc": auroc(s, g >= 0.5), "auroc_ci": ci(aurocs), "spearman": spearman(s, g)}
