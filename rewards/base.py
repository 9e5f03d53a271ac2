"""The reward-function base: TRL's signature, shared context, optional gate, failures counted and logged."""
from __future__ import annotations

import logging
import math
from typing import Any, Sequence

from .batch import Row, rows_from_trl
from .context import RewardContext

log = logging.getLogger(__name__)


class Reward:
    """``await reward(prompts, completions, completion_ids=None, **columns) -> list[float | None]``.

    Subclasses implement ``score(rows, completion_ids)``. TRL logs each reward under its ``__name__``; ``None``
    marks a row the reward cannot judge (a failed judgement): TRL leaves it out of that reward's mean.
    A gate (``gate="safety"``, ``gate_min=0.5``) zeroes this reward on rows where the gating reward is below
    ``gate_min`` (e.g. helpfulness counts only when the answer is safe).
    """

    name = "reward"
    needs_answers = False
    """True for rewards that score the downstream answer (they also log the answers' refusal rate)."""

    def __init__(self, ctx: RewardContext, gate: str | None = None, gate_min: float = 0.5, name: str | None = None,
                 only: str | Sequence[str] | None = None, **params: Any) -> None:
        if params:
            raise TypeError(f"reward {name or self.name!r} takes no option(s) {', '.join(sorted(params))}")
        if only is not None and not (isinstance(only, str) or (isinstance(only, (list, tuple)) and only
                                                                and all(isinstance(x, str) for x in only))):
            raise TypeError(f"only must be a label or a list of labels (e.g. only: harmful), got {only!r}")
        self.only = None if only is None else {only} if isinstance(only, str) else set(only)
        """Score only rows whose ``label`` is one of these (others get None, which TRL leaves out of the sum)."""
        if gate is not None and not isinstance(gate, str):
            raise TypeError(f"gate must be the name of another reward, got {gate!r}")
        if isinstance(gate_min, bool) or not isinstance(gate_min, (int, float)):
            raise TypeError(f"gate_min must be a number, got {gate_min!r}")
        self.ctx, self.gate, self.gate_min = ctx, gate, float(gate_min)
        self.name = name or type(self).name  # the config entry's name: two rewards of one kind stay apart
        self.__name__ = self.name
        self.peers: dict[str, "Reward"] = {}
        self.functions: dict[str, Any] = {}  # the config's plain-function rewards, by entry name

    def requires(self) -> tuple[str, ...]:
        """Other entries of the config this reward reads (checked when the config is built)."""
        return ()

    def load(self, check: bool = True) -> None:
        """Load the models this reward needs (after every reward of the config has been checked): its judge, if
        it has one, from the reward set's shared pool, asked whether it can answer with ``check``."""
        judge = getattr(self, "judge", None)
        if judge is not None:
            judge.load(self.ctx._pool)
            if check:
                judge.check()

    async def score(self, rows: Sequence[Row], completion_ids: Sequence[Sequence[int]] | None) -> list[float | None]:
        raise NotImplementedError

    async def _monitor(self, rows: Sequence[Row], log_metric) -> None:
        """Once per batch, whichever reward gets here first: the rewrites' parse rate and, among the answers this
        step already generated (no extra generation), the share that refuse."""
        from vlmguard.format import parse
        from vlmguard.refusal import is_refusal

        sig = tuple((r.key, r.completion) for r in rows)

        async def parse_rate() -> None:
            log_metric("rewrite/parse_rate", sum(parse(r.completion).usable for r in rows) / max(1, len(rows)))
        await self.ctx.once(("monitor:parse", sig), parse_rate)
        if self.needs_answers:
            async def refusal_rate() -> None:
                answers = self.ctx.answered(rows)
                if answers:
                    log_metric("answer/refusal_rate", sum(is_refusal(a) for a in answers) / len(answers))
            await self.ctx.once(("monitor:refusal", sig), refusal_rate)

    def applies(self, row: Row) -> bool:
        """Whether the reward judges this row at all (a None on a row it does not judge is no failure)."""
        return self.only is None or row.label in self.only

    async def compute(self, rows: Sequence[Row], completion_ids=None) -> list[float | None]:
        """This reward's scores for these rows, computed once per step even when a gate asks for them too."""
        key = (self.name, tuple((r.key, r.completion, r.answer) for r in rows))
        return await self.ctx.once(key, lambda: self._score_selected(rows, completion_ids))

    async def _score_selected(self, rows: Sequence[Row], completion_ids=None) -> list[float | None]:
        if self.only is None:
            return await self.score(rows, completion_ids)
        keep = [i for i, r in enumerate(rows) if r.label in self.only]  # the others are not even answered
        out: list[float | None] = [None] * len(rows)
        if keep:
            ids = None if completion_ids is None else [completion_ids[i] for i in keep]
            for i, score in zip(keep, await self.score([rows[i] for i in keep], ids)):
                out[i] = score
        return out

    async def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids=None,
                       **columns: Any) -> list[float | None]:
        self.ctx.start_step(columns.get("trainer_state"))
        rows = rows_from_trl(prompts, completions, columns)
        scores = list(await self.compute(rows, completion_ids))
        if self.gate:
            gate = self.peers.get(self.gate)
            if gate is None:
                raise ValueError(f"reward {self.name!r} is gated on {self.gate!r}, which is not in the config")
            passed = await gate.compute(rows, completion_ids)
            # closed gate → 0; unknown gate (a failed judgement) → unknown (None)
            scores = [None if g is None else (s if g >= self.gate_min else 0.0) for s, g in zip(scores, passed)]
        failed = sum(s is None and self.applies(r) for s, r in zip(scores, rows))
        self.ctx.counters[self.name]["scored"] += sum(s is not None for s in scores)
        self.ctx.counters[self.name]["failed"] += failed
        log_metric = columns.get("log_metric")
        if log_metric is not None:
            log_metric(f"{self.name}/failed", float(failed))
            await self._monitor(rows, log_metric)
        if failed:
            log.warning("reward %s: %d of %d rows could not be scored (None)", self.name, failed, len(scores))
        return [None if s is None or (isinstance(s, float) and math.isnan(s)) else float(s) for s in scores]
