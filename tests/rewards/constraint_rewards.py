"""Plain TRL-style reward functions with known values, imported by the Lagrangian tests (module:function)."""


def mostly_unsafe(prompts, completions, completion_ids=None, **kwargs):
    """A 'safety' score: 0.2 for every completion (cost 0.8)."""
    return [0.2] * len(completions)


def mostly_safe(prompts, completions, completion_ids=None, **kwargs):
    return [0.95] * len(completions)


def length_score(prompts, completions, completion_ids=None, **kwargs):
    """An objective in [0, 1] that differs between completions."""
    return [min(1.0, len(c[0]["content"]) / 200) for c in completions]


def first_half(prompts, completions, completion_ids=None, **kwargs):
    """An objective that applies to the first half of the rows only (as `only: benign` would), None elsewhere."""
    n = len(completions)
    return [0.6 if i < n // 2 else None for i in range(n)]


def last_row_unsafe(prompts, completions, completion_ids=None, **kwargs):
    """A safety score for the rows after the first half only (as `only: harmful` would): the last one unsafe."""
    n = len(completions)
    return [None if i < n // 2 else (0.0 if i == n - 1 else 1.0) for i in range(n)]
