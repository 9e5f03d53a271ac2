"""The one interface every model call goes through."""
from __future__ import annotations

import asyncio
import math
import threading
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Any, AsyncIterator, Coroutine, Literal, Sequence, TypeVar

from ..chat import Chat

T = TypeVar("T")
OnError = Literal["raise", "none"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample a completion. ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


class Backend(ABC):
    """``generate(chats, params) -> one completion per chat``.

    ``on_error="raise"`` (default) raises :class:`~vlmguard.errors.VLMGuardError` when a request fails for
    good; ``on_error="none"`` puts ``None`` in that slot instead and counts it in ``stats["failed"]``,
    for callers (rewards, eval) that must go on.
    """

    spec: str = ""

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()

    @classmethod
    def precheck(cls, location: str, options: Any) -> None:
        """Cheap static checks of a spec (paths, URL shape) before anything loads; raise VLMGuardError."""

    def check(self) -> None:
        """Fail fast when the model cannot answer (remote backends ask their server); in-process ones loaded."""

    @abstractmethod
    def generate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                 on_error: OnError = "raise") -> list[str | None]:
        ...

    async def agenerate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                        on_error: OnError = "raise") -> list[str | None]:
        """Async form; in-process backends run ``generate`` in a worker thread."""
        return await asyncio.to_thread(self.generate, chats, params, on_error)

    async def astream(self, chat: Chat, params: SamplingParams | None = None) -> AsyncIterator[str]:
        """The completion of ONE chat as text deltas, yielded as the model produces them (their concatenation is
        what ``generate([chat], params)[0]`` returns). Raises :class:`~vlmguard.errors.VLMGuardError` on failure,
        possibly after some deltas were yielded. This default is not incremental: it awaits ``agenerate`` and
        yields the whole text once; backends that can stream (``openai``, ``hf``) override it."""
        from ..errors import VLMGuardError

        text = (await self.agenerate([chat], params))[0]  # on_error="raise": its own message
        if text is None:
            raise VLMGuardError(f"generation failed in {self.spec or type(self).__name__}")
        if text:
            yield text

    accepts_images: bool | None = None
    """False for a text-only model (a server rejects images sent to it, as ``vllm serve`` does); None: unknown."""

    def next_token_logprobs(self, chats: Sequence[Chat], top_k: int = 20,
                            on_error: OnError = "raise") -> list[dict[str, float] | None]:
        """For each chat, the ``top_k`` most likely first tokens of the reply, as token text → log-probability
        (one forward pass, nothing sampled): how judges read a verdict from probabilities."""
        from ..errors import VLMGuardError

        raise VLMGuardError(f"{type(self).__name__} ({self.spec}) cannot return next-token probabilities; "
                            f"judge with `decision: text`")

    async def anext_token_logprobs(self, chats: Sequence[Chat], top_k: int = 20,
                                   on_error: OnError = "raise") -> list[dict[str, float] | None]:
        return await asyncio.to_thread(self.next_token_logprobs, chats, top_k, on_error)

    def close(self) -> None:
        """Release resources (connections, engines)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


def add_logprob(table: dict[str, float], key: str, logprob: float) -> None:
    """Add a probability, given as its log, to ``table[key]`` (log-sum-exp): alternatives that decode to the same
    text, or that stand for the same label, are one event."""
    prev = table.get(key)
    table[key] = logprob if prev is None else max(prev, logprob) + math.log1p(math.exp(-abs(prev - logprob)))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, also when the caller is already inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
