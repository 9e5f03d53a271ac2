"""A constrained reward: maximise an objective subject to an expected cost ≤ a threshold (Safe RLHF's
Lagrangian, the reward form of PPO-Lagrangian), for GRPO.

::

    rewards:
      safety: {judge: ..., weight: 0}           # components: scored and logged, not summed
      helpfulness: {judge: ..., weight: 0}
      constrained:
        type: lagrangian
        objective: helpfulness                  # maximised
        cost: safety                            # cost = 1 − safety (``cost_is: value`` when the entry is a cost)
        threshold: 0.1                          # the batch's expected cost must stay ≤ 0.1
        lr: 0.5                                 # multiplier step size
        init: 1.0                               # starting multiplier
        max: 10.0                               # upper clip

Per row the reward is ``(objective − λ·cost) / (1 + λ)`` (Safe RLHF's normalised form: the scale stays in the
objective's range whatever λ is); a term that does not apply to a row (e.g. ``only: benign`` helpfulness on a
harmful row, ``only: harmful`` safety on a benign one) counts 0 there, and a row where neither applies gets None.
The multiplier follows projected dual ascent, once per optimisation step, from the cost measured over that
step's rows on every process:

    λ ← clip(λ + lr · (mean cost − threshold), 0, max)

so a violated constraint drives λ up (safety weighs more) and a met one drives it down to 0 (the objective
alone). λ and the measured cost are logged (``<name>/multiplier``, ``<name>/cost``), saved in every checkpoint
(``lagrangian_state.json``) and restored on resume, so an interrupted run continues the multiplier exactly.
Objective and cost may be any entries of the config: built-in rewards, your ``Reward`` subclasses or plain
``module:function`` rewards; TRL's ``multi_objective_aggregation`` applies to this reward like any other.
"""
from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any, Sequence

from .base import Reward
from .batch import Row

STATE_FILE = "lagrangian_state.json"


def dual_step(multiplier: float, cost: float, threshold: float, lr: float, upper: float) -> float:
    """One projected dual-ascent step of the multiplier."""
    return min(max(multiplier + lr * (cost - threshold), 0.0), upper)


def _known(value: Any) -> float | None:
    """A component's score as a float; None for a row it does not apply to (None or NaN)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


class LagrangianReward(Reward):
    name = "lagrangian"

    def __init__(self, ctx, objective: str | None = None, cost: str | None = None, threshold: float | None = None,
                 lr: float = 0.1, init: float = 1.0, max: float = 100.0, cost_is: str = "one_minus", **kw) -> None:
        super().__init__(ctx, **kw)
        if not isinstance(objective, str) or not isinstance(cost, str):
            raise ValueError("needs `objective: <entry>` and `cost: <entry>` (names of other rewards in the config)")
        if objective == cost:
            raise ValueError("objective and cost must be different entries")
        for key, value in (("threshold", threshold), ("lr", lr), ("init", init), ("max", max)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number, got {value!r}")
        if lr <= 0 or max <= 0 or not 0 <= init <= max:
            raise ValueError("need lr > 0, max > 0 and 0 ≤ init ≤ max")
        if cost_is not in ("one_minus", "value"):
            raise ValueError(f"cost_is must be one_minus (cost = 1 − reward) or value, got {cost_is!r}")
        self.objective, self.cost, self.cost_is = objective, cost, cost_is
        self.threshold, self.lr, self.upper = float(threshold), float(lr), float(max)
        self.multiplier = float(init)
        self.step: int | None = None
        self.pending = [0.0, 0]  # this step's cost sum and count (this process)
        self.history: list[dict[str, float]] = []

    def requires(self) -> tuple[str, str]:
        return self.objective, self.cost

    # -- the multiplier --------------------------------------------------------------------------------
    def _advance(self, step: int | None) -> None:
        """At a new optimisation step: fold the last step's measured cost (all processes) into λ."""
        if step is None or step == self.step:
            return
        if self.step is not None:
            total, count = _all_reduce(self.pending)
            if count:
                cost = total / count
                self.multiplier = dual_step(self.multiplier, cost, self.threshold, self.lr, self.upper)
                self.history.append({"step": self.step, "cost": cost, "multiplier": self.multiplier})
        self.step, self.pending = step, [0.0, 0]

    def state(self) -> dict[str, Any]:
        return {"multiplier": self.multiplier, "step": self.step, "pending": list(self.pending),
                "history": self.history}

    def load_state(self, state: dict[str, Any]) -> None:
        self.multiplier, self.step = float(state["multiplier"]), state["step"]
        self.pending, self.history = [float(state["pending"][0]), int(state["pending"][1])], list(state["history"])

    # -- scoring ---------------------------------------------------------------------------------------
    async def _component(self, name: str, rows: Sequence[Row], call: dict[str, Any]) -> list[float | None]:
        peer = self.peers.get(name)
        if peer is not None:
            return list(await peer.compute(rows, call.get("completion_ids")))
        out = self.functions[name](**call)
        if inspect.isawaitable(out):
            out = await out
        return list(out)

    async def score(self, rows: Sequence[Row], completion_ids=None) -> list[float | None]:
        call = self._call
        objective, cost_reward = await self._component(self.objective, rows, call), \
            await self._component(self.cost, rows, call)
        costs = [None if c is None else 1.0 - c if self.cost_is == "one_minus" else c for c in map(_known, cost_reward)]
        known = [c for c in costs if c is not None]
        self.pending[0] += sum(known)
        self.pending[1] += len(known)
        lam = self.multiplier
        objective = [_known(o) for o in objective]
        # a term that does not apply to a row (``only: benign`` helpfulness on a harmful row) counts 0 there
        return [None if o is None and c is None else ((o or 0.0) - lam * (c or 0.0)) / (1.0 + lam)
                for o, c in zip(objective, costs)]

    async def __call__(self, prompts, completions, completion_ids=None, **columns: Any) -> list[float | None]:
        state = columns.get("trainer_state")
        self._advance(getattr(state, "global_step", None))
        self._call = {"prompts": prompts, "completions": completions, "completion_ids": completion_ids, **columns}
        scores = await super().__call__(prompts, completions, completion_ids, **columns)
        log_metric = columns.get("log_metric")
        if log_metric is not None:
            log_metric(f"{self.name}/multiplier", self.multiplier)
            if self.pending[1]:
                log_metric(f"{self.name}/cost", self.pending[0] / self.pending[1])
        return scores


def _all_reduce(pending: Sequence[float]) -> tuple[float, int]:
    """The step's (cost sum, count) over every process (a no-op without torch.distributed)."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return float(pending[0]), int(pending[1])
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return float(pending[0]), int(pending[1])
    t = torch.tensor([float(pending[0]), float(pending[1])], dtype=torch.float64,
                     device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return float(t[0]), int(t[1])


def save_states(rewards: Sequence[Any], folder: str | Path) -> None:
    states = {r.name: r.state() for r in rewards if isinstance(r, LagrangianReward)}
    if states:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / STATE_FILE).write_text(json.dumps(states, indent=1))


def load_states(rewards: Sequence[Any], folder: str | Path) -> bool:
    """Restore the multipliers saved in a checkpoint folder; False when it holds none."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return False
    states = json.loads(path.read_text())
    for r in rewards:
        if isinstance(r, LagrangianReward) and r.name in states:
            r.load_state(states[r.name])
    return True


def checkpoint_callback(rewards: Sequence[Any]):
    """A ``TrainerCallback`` that writes the multipliers into every checkpoint folder (main process)."""
    from transformers import TrainerCallback

    class LagrangianCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                save_states(rewards, Path(args.output_dir) / f"checkpoint-{state.global_step}")

    return LagrangianCheckpoint()
