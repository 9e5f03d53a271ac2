"""State shared by the reward functions of one run: the downstream target, its answers and the judges' verdicts,
each computed once per step for a (sample, refined prompt) and awaited by every reward that needs it."""
from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from typing import Any, Awaitable, Callable, Hashable, Sequence

from vlmguard.backends import Backend, SamplingParams
from vlmguard.chat import user_chat
from vlmguard.format import REFUSAL, Resolved, resolve

from .batch import Row

log = logging.getLogger(__name__)


class RewardContext:
    def __init__(self, target: Backend | None = None, fallback: str = "original",
                 answer_params: SamplingParams | None = None) -> None:
        self.target = target
        self.fallback = fallback
        self.answer_params = answer_params or SamplingParams(max_new_tokens=256)
        self.counters: dict[str, Counter] = defaultdict(Counter)
        self._memo: dict[Hashable, asyncio.Future] = {}
        self._step: Any = None

    # -- step boundaries -------------------------------------------------------------------------------
    def start_step(self, trainer_state: Any) -> None:
        """Forget last step's answers when TRL's global step moves on (the policy changed)."""
        step = getattr(trainer_state, "global_step", None)
        if step is not None and step != self._step:
            self._step = step
            self._memo.clear()

    async def once(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        """``compute()`` the first time ``key`` is asked for in this step; every other caller awaits that result."""
        fut = self._memo.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._memo[key] = fut
            try:
                fut.set_result(await compute())
            except BaseException as e:
                self._memo.pop(key, None)
                fut.set_exception(e)
                raise
        return await fut

    # -- downstream answers ----------------------------------------------------------------------------
    def resolve(self, row: Row) -> Resolved:
        return resolve(row.completion, row.instruction, self.fallback)

    async def answers(self, rows: Sequence[Row]) -> list[str | None]:
        """The target's answer to each row's refined prompt (the fallback policy applies to unparseable rewrites),
        generated in one batch for the rows no other reward has asked for yet."""
        resolved = [self.resolve(r) for r in rows]
        keys = [("answer", r.key, res.prompt) for r, res in zip(rows, resolved)]
        todo: dict[Hashable, tuple[Row, str]] = {}
        for row, res, key in zip(rows, resolved, keys):
            if row.answer is None and res.prompt is not None and key not in self._memo and key not in todo:
                todo[key] = (row, res.prompt)
        if todo:
            if self.target is None:
                raise ValueError("these rewards need downstream answers: set `target` in the rewards config")
            loop = asyncio.get_running_loop()
            futures = {k: loop.create_future() for k in todo}
            self._memo.update(futures)
            try:
                outs = await self.target.agenerate([user_chat(p, r.image) for r, p in todo.values()],
                                                   self.answer_params, on_error="none")
            except BaseException as e:
                for k, f in futures.items():
                    self._memo.pop(k, None)
                    f.set_exception(e)
                raise
            for (k, f), out in zip(futures.items(), outs):
                f.set_result(out)
                self.counters["target"]["answers"] += 1
                self.counters["target"]["failed"] += out is None
        out: list[str | None] = []
        for row, res, key in zip(rows, resolved, keys):
            if row.answer is not None:
                out.append(row.answer)
            elif res.prompt is None:  # the `refuse` fallback: the guard answers, the target is not asked
                out.append(REFUSAL)
            else:
                out.append(await self._memo[key])
        return out

    async def judge(self, name: str, judge: Backend, chats: Sequence[Any], keys: Sequence[Hashable],
                    params: SamplingParams) -> list[str | None]:
        """A judge's raw verdicts, batched for the keys not judged yet this step."""
        todo = {}
        for key, chat in zip(keys, chats):
            k = (name, key)
            if k not in self._memo and k not in todo:
                todo[k] = chat
        if todo:
            loop = asyncio.get_running_loop()
            futures = {k: loop.create_future() for k in todo}
            self._memo.update(futures)
            try:
                outs = await judge.agenerate(list(todo.values()), params, on_error="none")
            except BaseException as e:
                for k, f in futures.items():
                    self._memo.pop(k, None)
                    f.set_exception(e)
                raise
            for f, out in zip(futures.values(), outs):
                f.set_result(out)
        return [await self._memo[(name, k)] for k in keys]
