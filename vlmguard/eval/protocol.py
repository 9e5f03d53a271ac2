"""How a benchmark is judged: its judge passes, how a verdict is read, and the per-item metrics.

One ``Protocol`` per benchmark family. The eval runner asks the target (through a defence) for
``responses`` answers per sample, sends every chat from ``judge_chats`` to a generative judge, reads each
raw verdict with ``parse`` (or, for a verdict-scoring judge — Llama Guard, a reward model, next-token
probabilities — sends ``judge_items`` and maps each score with ``from_score``) (None = unreadable, counted as a judge failure, never guessed), and hands the
parsed verdicts to ``score``, which returns the sample's metric values (None = cannot be scored).
Rates, bootstrap intervals and paired differences are computed by the report from these values.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

from ..chat import Chat
from ..schema import Sample


class Protocol(ABC):
    name: str = ""
    metrics: tuple[str, ...] = ()
    """Metric names, in report order (e.g. ``safe``, ``effective``, ``safe_and_effective``)."""
    higher_is_better: dict[str, bool] = {}
    """Direction of each metric (attack success: lower is better)."""
    breakdowns: tuple[str, ...] = ("category",)
    """Fields the report groups by: ``category`` or keys of ``sample.extra`` (``scenario``, ``image_type``…)."""
    responses: int = 1
    """Answers sampled per item (SIUO's protocol: 3, majority vote)."""
    rubrics: dict[str, str] = {}
    """Judge pass name → prompt template (bundled name or file path); written into the report with its hash."""

    def __init__(self, rubrics: dict[str, str] | None = None, responses: int | None = None) -> None:
        self.rubrics = {**type(self).rubrics, **(rubrics or {})}
        if responses is not None:
            self.responses = responses

    @abstractmethod
    def judge_chats(self, sample: Sample, answer: str) -> dict[str, Chat]:
        """Named judge passes for one answer (``{}`` when the metric is rule-based)."""

    def judge_items(self, sample: Sample, answer: str) -> dict[str, Any]:
        """The passes a verdict-scoring judge (Llama Guard, a reward model, a rubric read by next-token
        probabilities: :mod:`vlmguard.judges`) can take, as ``JudgeItem``s; ``{}`` when none. Protocols whose
        every judge pass is a safety verdict implement it, with :meth:`from_score`."""
        return {}

    scores_safety: bool = False
    """True when :meth:`judge_items` covers every judge pass (then any judge type can score the benchmark)."""

    def from_score(self, name: str, score: float) -> Any:
        """A verdict judge's score in [0, 1] (1 = safe) as this protocol's verdict for pass ``name``."""
        return score

    @abstractmethod
    def parse(self, name: str, raw: str) -> Any | None:
        """The verdict of judge pass ``name`` read from its raw text; None when it cannot be read."""

    @abstractmethod
    def score(self, sample: Sample, answers: Sequence[str], verdicts: Sequence[dict[str, Any]]) -> dict[str, float | None]:
        """Metric values of one item from its answers and, per answer, the parsed verdict of each pass
        (a pass whose verdict could not be read is None). A metric that cannot be computed is None."""
