"""State shared by the reward functions of one run: the downstream target, its answers and the judges' verdicts,
each computed once per step for a (sample, refined prompt) and awaited by every reward that needs it."""
from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from typing import Any, Awaitable, Callable, Hashable, Sequence

from vlmguard.backends import Backend, BackendPool, SamplingParams
from vlmguard.judges import Judge, JudgeItem, Verdict, direct_call
from vlmguard.chat import user_chat
from vlmguard.format import REFUSAL, Resolved
from vlmguard.guard import resolve_rewrite, target_chat

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
        self._pending: dict[Hashable, list] = {}
        self._pool = BackendPool()
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
        async def one(_indices: list[int]) -> list[Any]:
            return [await compute()]
        return (await self._memoized([key], one))[0]

    # -- downstream answers ----------------------------------------------------------------------------
    def resolve(self, row: Row) -> Resolved:
        """The guard's own parse + fallback (``vlmguard.guard``), so GRPO scores what users will run."""
        return resolve_rewrite(self.chat(row), row.completion, self.fallback)

    @staticmethod
    def chat(row: Row):
        return user_chat(row.instruction, row.image)

    def backend(self, spec: str | Backend) -> Backend:
        """One backend per spec for the whole reward set (two rewards judging with the same model share it)."""
        return self._pool.get(spec)

    async def call(self, backend: Backend, chats: list, method: str, params: Any) -> list:
        """``judges.direct_call`` with coalescing: calls to the same backend, method and parameters that arrive in
        the same turn of the event loop (safety and helpfulness judging the same answers, say) run as one
        batched request; each caller gets its own slice back."""
        key = (id(backend), method, params)
        fut = asyncio.get_running_loop().create_future()
        queue = self._pending.setdefault(key, [])
        queue.append((chats, fut))
        if len(queue) == 1:  # the first asker flushes, after its peers of this turn have queued
            for _ in range(3):
                await asyncio.sleep(0)
            entries = self._pending.pop(key)
            try:
                outs = await direct_call(backend, [c for chats_, _ in entries for c in chats_], method, params)
            except BaseException as e:
                for _, f in entries:
                    if not f.done():
                        f.set_exception(e)
            else:
                start = 0
                for chats_, f in entries:
                    f.set_result(outs[start:start + len(chats_)])
                    start += len(chats_)
        return await fut

    async def _memoized(self, keys: Sequence[Hashable], compute: Callable[[list[int]], Awaitable[list]]) -> list:
        """The value of each key: computed once per step (``compute(indices)`` for the keys nobody has asked
        for yet, one entry per index), awaited by every other asker."""
        loop = asyncio.get_running_loop()
        missing: dict[Hashable, int] = {}
        for i, k in enumerate(keys):
            if k not in self._memo and k not in missing:
                missing[k] = i
        futures = {k: loop.create_future() for k in missing}
        self._memo.update(futures)
        if missing:
            try:
                outs = await compute(list(missing.values()))
            except BaseException as e:
                for k, f in futures.items():
                    self._memo.pop(k, None)
                    f.set_exception(e)
                    f.exception()  # retrieved: the caller re-raises it
                raise
            for (k, f), out in zip(futures.items(), outs):
                f.set_result(out)
        return [await self._memo[k] for k in keys]

    async def answers(self, rows: Sequence[Row]) -> list[str | None]:
        """The target's answer to each row's refined prompt (the fallback policy applies to unparseable rewrites),
        generated in one batch for the rows no other reward has asked for yet."""
        resolved = [self.resolve(r) for r in rows]
        todo = [i for i, (r, res) in enumerate(zip(rows, resolved)) if r.answer is None and res.prompt is not None]
        if todo and self.target is None:
            raise ValueError("these rewards need downstream answers: set `target` in the rewards config")

        async def generate(indices: list[int]) -> list[str | None]:
            chats = [target_chat(self.chat(rows[todo[i]]), resolved[todo[i]].prompt) for i in indices]
            outs = await self.call(self.target, chats, "generate", self.answer_params)
            self.counters["target"]["answers"] += len(outs)
            self.counters["target"]["failed"] += sum(o is None for o in outs)
            return outs
        keys = [("answer", rows[i].key, resolved[i].prompt) for i in todo]
        generated = dict(zip(todo, await self._memoized(keys, generate))) if todo else {}
        out: list[str | None] = []
        for i, (row, res) in enumerate(zip(rows, resolved)):
            if row.answer is not None:
                out.append(row.answer)
            elif res.prompt is None:  # the `refuse` fallback: the guard answers, the target is not asked
                out.append(REFUSAL)
            else:
                out.append(generated[i])
        return out

    def answered(self, rows: Sequence[Row]) -> list[str]:
        """The answers already generated this step for these rows (never triggers generation)."""
        out = []
        for r in rows:
            fut = self._memo.get(("answer", r.key, self.resolve(r).prompt))
            if fut is not None and fut.done() and not fut.exception() and fut.result() is not None:
                out.append(fut.result())
        return out

    async def verdicts(self, name: str, judge: Judge, rows: Sequence[Row], answers: Sequence[str | None],
                       rubric: str | None = None) -> list[Verdict | None]:
        """``judge``'s verdict on each (row, answer), once per step per ``name``; None where there is no answer."""
        todo = [i for i, a in enumerate(answers) if a is not None]

        async def run(indices: list[int]) -> list[Verdict]:
            items = [JudgeItem(rows[todo[i]].instruction, answers[todo[i]], rows[todo[i]].image, rubric=rubric)
                     for i in indices]
            verdicts = await judge.run(items, self.call)
            counter = self.counters[f"judge:{name}"]
            counter["verdicts"] += len(verdicts)
            for v in verdicts:
                counter[v.error or "ok"] += 1
            return verdicts
        keys = [(name, "verdict", rows[i].key, answers[i]) for i in todo]
        got = dict(zip(todo, await self._memoized(keys, run))) if todo else {}
        return [got.get(i) for i in range(len(rows))]
