"""Plain TRL-style reward functions with known values, imported by the Lagrangian tests (module:function)."""


def mostly_unsafe(prompts, completions, completion_ids=None, **kwargs):
    """A 'safety' score: 0.2 for every completion (cost 0.8)."""
    return [0.2] * len(completions)


def mostly_safe(prompts, completions, completion_ids=None, **kwargs):
    return [0.95] * len(completions)


def length_score(prompts, completions, completion_ids=None, **kwargs):
    """An objective in [0, 1] that differs between completions."""
    return [min(1.0, len(c[0]["content"]) / 200) for c in completions]
