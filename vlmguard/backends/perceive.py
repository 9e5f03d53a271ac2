"""``PerceivingBackend``: any backend behind a perception front end (the ``perception=`` spec option).

``hf:/path/to/smollm2?perception=ocr,nsfw`` loads the ``hf`` backend and wraps it: before each call, every image
part of every chat is replaced, in place, by a text part holding the image's description
(:meth:`vlmguard.perception.Perceiver.describe`: the text OCR reads in it and the image-safety classifier's score,
in one ``[Image description (automatic): ...]`` block), so a text-only language model answers about the image, and
the image channel of a real model can be attacked (typographic prompts) and defended. The option works with every
backend kind (``openai:...?model=M&perception=ocr``, ``vllm:...?perception=nsfw``); its value is checked, and the
extra's presence too, when the spec is resolved, before anything loads.

The wrapper shares its ``stats`` with the backend it wraps (failures stay counted where callers look) and adds
``perceived_images``, ``perception_cache_hits`` and ``perception_ms``. Other attributes (``model``,
``tokenizer``, ``options``...) are the wrapped backend's.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..chat import Chat, image_of, parts
from ..errors import VLMGuardError
from ..perception import Perceiver, shared_perceiver
from .base import Backend, OnError, SamplingParams


class PerceivingBackend(Backend):
    """``inner`` answering chats whose images were turned into text by ``perceiver`` (a Perceiver, or a component
    string such as ``"ocr,nsfw"`` for the process-wide shared one)."""

    accepts_images = True  # images are welcome: they never reach the wrapped model

    def __init__(self, inner: Backend, perceiver: Perceiver | str | Sequence[str], spec: str | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.perceiver = perceiver if isinstance(perceiver, Perceiver) else shared_perceiver(perceiver)
        self.stats = inner.stats
        self.spec = spec or inner.spec

    def __getattr__(self, name: str) -> Any:  # only for names the wrapper lacks (model, tokenizer, options...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"PerceivingBackend({self.inner!r}, {self.perceiver!r})"

    # -- the conversion ---------------------------------------------------------------------------------------
    def describe_chats(self, chats: Sequence[Chat], on_error: OnError = "raise") -> list[Chat | None]:
        """Each chat with its image parts replaced by their descriptions (all images perceived in one batch).
        A chat whose image cannot be read raises VLMGuardError, or with ``on_error="none"`` becomes None."""
        found: list[tuple[int, Any]] = [(i, src) for i, chat in enumerate(chats) for m in chat
                                        for p in parts(m) if (src := image_of(p)) is not None]
        if not found:
            return list(chats)
        t0 = time.perf_counter()
        hits0 = self.perceiver.stats["cache_hits"]
        descriptions: dict[int, list[str]] = {}
        bad: set[int] = set()
        try:
            texts = self.perceiver.describe_many([src for _, src in found])
            for (i, _), text in zip(found, texts):
                descriptions.setdefault(i, []).append(text)
        except VLMGuardError:  # one unreadable image: find it, keep the rest
            if on_error == "raise":
                raise
            for i, src in found:
                if i in bad:
                    continue
                try:
                    descriptions.setdefault(i, []).append(self.perceiver.describe(src))
                except VLMGuardError:
                    bad.add(i)
        self.stats["perceived_images"] += len(found)
        self.stats["perception_cache_hits"] += self.perceiver.stats["cache_hits"] - hits0
        self.stats["perception_ms"] += round(1000 * (time.perf_counter() - t0))
        out: list[Chat | None] = []
        for i, chat in enumerate(chats):
            if i in bad:
                self.stats["failed"] += 1
                out.append(None)
            elif i in descriptions:
                out.append(_replace_images(chat, iter(descriptions[i])))
            else:
                out.append(chat)
        return out

    # -- Backend ------------------------------------------------------------------------------------------------
    def generate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                 on_error: OnError = "raise") -> list[str | None]:
        described = self.describe_chats(chats, on_error)
        return _merge(described, self.inner.generate([c for c in described if c is not None], params, on_error))

    async def agenerate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                        on_error: OnError = "raise") -> list[str | None]:
        described = await asyncio.to_thread(self.describe_chats, chats, on_error)
        return _merge(described, await self.inner.agenerate([c for c in described if c is not None], params, on_error))

    async def astream(self, chat: Chat, params: SamplingParams | None = None) -> AsyncIterator[str]:
        described = (await asyncio.to_thread(self.describe_chats, [chat]))[0]
        async for delta in self.inner.astream(described, params):
            yield delta

    def next_token_logprobs(self, chats: Sequence[Chat], top_k: int = 20,
                            on_error: OnError = "raise") -> list[dict[str, float] | None]:
        described = self.describe_chats(chats, on_error)
        return _merge(described, self.inner.next_token_logprobs([c for c in described if c is not None], top_k,
                                                                on_error))

    async def anext_token_logprobs(self, chats: Sequence[Chat], top_k: int = 20,
                                   on_error: OnError = "raise") -> list[dict[str, float] | None]:
        described = await asyncio.to_thread(self.describe_chats, chats, on_error)
        return _merge(described, await self.inner.anext_token_logprobs([c for c in described if c is not None],
                                                                       top_k, on_error))

    def check(self) -> None:
        self.inner.check()

    def close(self) -> None:
        self.inner.close()


def _replace_images(chat: Chat, descriptions) -> Chat:
    out = []
    for m in chat:
        content = m.get("content")
        if isinstance(content, list):
            new = []
            for p in content:
                if image_of(p) is not None:
                    new.append({"type": "text", "text": next(descriptions) + "\n"})
                else:
                    new.append(p)
            m = {**m, "content": new}
        out.append(m)
    return out


def _merge(described: list[Chat | None], answers: list) -> list:
    """Answers for the chats that were sent, with None where a chat failed before it."""
    it = iter(answers)
    return [None if c is None else next(it) for c in described]
