"""Backend for any OpenAI-compatible chat server (``vllm serve``, SGLang, ``vlmguard serve-model``, hosted APIs)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, AsyncIterator, Sequence

import httpx

from ..chat import Chat, prefill, to_openai
from ..errors import VLMGuardError
from .base import Backend, OnError, SamplingParams, add_logprob, run_sync

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _StreamError(Exception):
    """An ``{"error": ...}`` event inside a Server-Sent Events stream."""


class OpenAIBackend(Backend):
    """``openai:BASE_URL?model=NAME`` — async requests to ``BASE_URL/chat/completions`` with bounded concurrency,
    retries with exponential backoff and jitter on connection errors, timeouts, 429 and 5xx; images are sent
    as base64 data URLs. Without ``model``, the server's first model from ``/models`` is used."""

    @dataclass
    class Options:
        model: str | None = None
        """Model name as the server knows it (``vllm serve`` uses the path or ``--served-model-name``)."""
        concurrency: int = 8
        """Requests in flight at once (per backend instance)."""
        timeout: float = 120.0
        """Seconds for one request."""
        retries: int = 3
        """Extra attempts after a failed request (connection error, timeout, 408/429/5xx)."""
        backoff: float = 0.5
        """First retry delay in seconds; doubles each attempt (plus jitter)."""
        api_key_env: str = "OPENAI_API_KEY"
        """Environment variable that holds the API key (sent as a Bearer token when set)."""

    def __init__(self, location: str, options: "OpenAIBackend.Options | None" = None) -> None:
        super().__init__()
        self.precheck(location, options)
        self.options = options or self.Options()
        self.base_url = location.rstrip("/")
        self.spec = f"openai:{location}"
        self._model = self.options.model
        key = os.environ.get(self.options.api_key_env)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

    @classmethod
    def precheck(cls, location: str, options: "OpenAIBackend.Options | None") -> None:
        if not location.startswith(("http://", "https://")):
            raise VLMGuardError(f"openai backend needs a base URL such as http://127.0.0.1:8000/v1, got {location!r}")

    # -- public ---------------------------------------------------------------------------------------
    @property
    def model(self) -> str:
        if self._model is None:
            self._model = run_sync(self._list_models())[0]
        return self._model

    def check(self) -> None:
        """Fail fast, with a clear message, when the server cannot be reached or does not serve the model."""
        served = run_sync(self._list_models())
        if self._model is not None and self._model not in served:
            raise VLMGuardError(f"{self.base_url} serves {', '.join(served)}, not {self._model!r}: fix ?model=")
        self._model = self._model or served[0]

    def generate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                 on_error: OnError = "raise") -> list[str | None]:
        return run_sync(self.agenerate(chats, params, on_error))

    async def agenerate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                        on_error: OnError = "raise") -> list[str | None]:
        params = params or SamplingParams()
        return await self._each(chats, lambda client, chat, i: self._complete(client, chat, params, i), on_error)

    async def astream(self, chat: Chat, params: SamplingParams | None = None) -> AsyncIterator[str]:
        """``POST /chat/completions`` with ``stream: true``: the Server-Sent Events' ``choices[0].delta.content``
        pieces, yielded as they arrive. Connection errors, timeouts and retryable statuses before the first piece
        are retried like any request; once a piece was yielded nothing is retried (the caller already has it):
        a stream that breaks then raises ``VLMGuardError("stream from URL broke after N chunks: ...")``."""
        params = params or SamplingParams()
        if self._model is None:
            self._model = (await self._list_models())[0]
        url = self.base_url + "/chat/completions"
        body = {**self._payload(chat, params, 0), "stream": True}
        attempts = self.options.retries + 1
        async with httpx.AsyncClient(timeout=self.options.timeout, headers=self._headers) as client:
            for attempt in range(attempts):
                chunks = 0
                try:
                    async with client.stream("POST", url, json=body) as r:
                        if r.status_code < 400:
                            self.stats["requests"] += 1
                            try:
                                async with aclosing(self._sse_deltas(r, url)) as deltas:
                                    async for piece in deltas:
                                        chunks += 1
                                        yield piece
                            except _StreamError as e:  # the server said so: not retried
                                self.stats["errors"] += 1
                                raise VLMGuardError(f"stream from {url} broke after {chunks} chunks: {e}") from None
                            return
                        problem = f"HTTP {r.status_code}: {(await r.aread()).decode(errors='replace')[:300]}"
                        if r.status_code not in RETRY_STATUS:
                            self.stats["errors"] += 1
                            raise VLMGuardError(f"POST {url} failed with {problem}")
                except httpx.TimeoutException:
                    problem = f"timed out after {self.options.timeout:g} s (raise ?timeout=SECONDS)"
                except httpx.TransportError as e:
                    problem = f"cannot connect ({type(e).__name__}: {e or 'no answer'})"
                if chunks:
                    self.stats["errors"] += 1
                    raise VLMGuardError(f"stream from {url} broke after {chunks} chunks: {problem}")
                self.stats["retries"] += attempt < attempts - 1
                if attempt < attempts - 1:
                    await asyncio.sleep(self.options.backoff * 2 ** attempt * (0.5 + random.random()))
        raise self._failure("POST", url, attempts, problem)

    async def _sse_deltas(self, r: httpx.Response, url: str) -> AsyncIterator[str]:
        """The non-empty ``choices[0].delta.content`` of each ``data:`` event up to ``data: [DONE]``; an
        ``{"error": ...}`` event (what vLLM sends when generation fails mid-stream) raises ``_StreamError``."""
        data: list[str] = []
        lines = r.aiter_lines()
        while (line := await anext(lines, None)) is not None or data:
            if line is not None and line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
                continue
            if line or not data:  # comments, event:/id: fields; blank lines with no event pending
                continue
            payload, data = "\n".join(data), []  # a blank line, or the end of the body, ends an event
            if payload.strip() == "[DONE]":
                return
            try:
                event = json.loads(payload)
            except ValueError as e:
                raise VLMGuardError(f"stream from {url} sent an event that is not JSON ({payload[:200]!r})") from e
            if isinstance(event, dict) and event.get("error"):
                err = event["error"]
                raise _StreamError(err.get("message", err) if isinstance(err, dict) else err)
            try:
                choices = event.get("choices") or []  # a usage-only chunk has none
                piece = choices[0].get("delta", {}).get("content") if choices else None
            except AttributeError as e:
                raise VLMGuardError(f"stream from {url} sent an event without choices[0].delta "
                                    f"({payload[:200]}): is it an OpenAI-compatible chat endpoint?") from e
            if piece:
                yield piece

    def next_token_logprobs(self, chats: Sequence[Chat], top_k: int = 20,
                            on_error: OnError = "raise") -> list[dict[str, float] | None]:
        return run_sync(self.anext_token_logprobs(chats, top_k, on_error))

    async def anext_token_logprobs(self, chats: Sequence[Chat], top_k: int = 20,
                                   on_error: OnError = "raise") -> list[dict[str, float] | None]:
        """One-token greedy completions with ``logprobs: true, top_logprobs: top_k`` (OpenAI caps it at 20,
        ``vllm serve`` at its ``--max-logprobs``); the first token's alternatives, text → log-probability."""
        params = SamplingParams(max_new_tokens=1)

        async def one(client: httpx.AsyncClient, chat: Chat, i: int) -> dict[str, float]:
            body = {**self._payload(chat, params, i), "logprobs": True, "top_logprobs": top_k}
            data = await self._request(client, "POST", "/chat/completions", json=body)
            try:
                first = data["choices"][0]["logprobs"]["content"][0]
                alternatives = first.get("top_logprobs") or [first]
                out: dict[str, float] = {}
                for alt in alternatives:
                    add_logprob(out, str(alt["token"]), float(alt["logprob"]))  # alike decodings summed
                return out
            except (KeyError, IndexError, TypeError, ValueError) as e:
                raise VLMGuardError(f"{self.base_url}/chat/completions returned no choices[0].logprobs.content[0]"
                                    f".top_logprobs ({str(data)[:200]}): does the server support logprobs?") from e
        return await self._each(chats, one, on_error)

    async def _each(self, chats: Sequence[Chat], call, on_error: OnError) -> list[Any]:
        """``call(client, chat, i)`` for every chat, at most ``concurrency`` at a time; failures → None or raise."""
        if self._model is None:
            self._model = (await self._list_models())[0]
        sem = asyncio.Semaphore(max(1, self.options.concurrency))
        limits = httpx.Limits(max_connections=max(1, self.options.concurrency))
        async with httpx.AsyncClient(timeout=self.options.timeout, limits=limits, headers=self._headers) as client:
            async def one(i: int, chat: Chat) -> Any:
                async with sem:
                    try:
                        return await call(client, chat, i)
                    except VLMGuardError:
                        if on_error == "raise":
                            raise
                        self.stats["failed"] += 1
                        return None
            tasks = [asyncio.ensure_future(one(i, c)) for i, c in enumerate(chats)]
            try:
                return list(await asyncio.gather(*tasks))
            finally:
                for t in tasks:
                    t.cancel()

    # -- internals ------------------------------------------------------------------------------------
    def _payload(self, chat: Chat, params: SamplingParams, i: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self._model, "messages": to_openai(chat),
                                "max_tokens": params.max_new_tokens, "temperature": max(params.temperature, 0.0),
                                "top_p": params.top_p}
        if params.seed is not None and not params.greedy:  # per request, so samples differ; greedy needs none
            body["seed"] = params.seed + i
        if params.stop:
            body["stop"] = list(params.stop)
        if prefill(chat) is not None:  # vLLM's and SGLang's extension: continue the final assistant message
            body.update(add_generation_prompt=False, continue_final_message=True)
        return body

    async def _complete(self, client: httpx.AsyncClient, chat: Chat, params: SamplingParams, i: int) -> str:
        body = self._payload(chat, params, i)
        data = await self._request(client, "POST", "/chat/completions", json=body)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as e:
            raise VLMGuardError(f"{self.base_url}/chat/completions returned no choices[0].message.content "
                                f"({str(data)[:200]}): is it an OpenAI-compatible chat endpoint?") from e
        return content or ""

    async def _list_models(self) -> list[str]:
        async with httpx.AsyncClient(timeout=self.options.timeout, headers=self._headers) as client:
            data = await self._request(client, "GET", "/models")
        models = [m.get("id") for m in data.get("data", []) if isinstance(m, dict)] if isinstance(data, dict) else []
        if not models:
            raise VLMGuardError(f"{self.base_url}/models lists no model: name one with ?model=NAME")
        return models

    async def _request(self, client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
        url = self.base_url + path
        attempts = self.options.retries + 1
        for attempt in range(attempts):
            try:
                r = await client.request(method, url, **kw)
                if r.status_code < 400:
                    self.stats["requests"] += 1
                    return r.json()
                problem = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in RETRY_STATUS:
                    raise VLMGuardError(f"{method} {url} failed with {problem}")
            except httpx.TimeoutException:
                problem = f"timed out after {self.options.timeout:g} s (raise ?timeout=SECONDS)"
            except httpx.TransportError as e:
                problem = f"cannot connect ({type(e).__name__}: {e or 'no answer'})"
            except ValueError as e:  # invalid JSON body
                raise VLMGuardError(f"{method} {url} returned a body that is not JSON: {e}") from e
            self.stats["retries"] += attempt < attempts - 1
            if attempt < attempts - 1:
                delay = self.options.backoff * 2 ** attempt
                await asyncio.sleep(delay * (0.5 + random.random()))
        raise self._failure(method, url, attempts, problem)

    def _failure(self, method: str, url: str, attempts: int, problem: str) -> VLMGuardError:
        """The error for a request that failed for good (counted in ``stats["errors"]``)."""
        self.stats["errors"] += 1
        hint = ("start it (`vllm serve MODEL` or `vlmguard serve-model --model SPEC`) or fix the URL"
                if problem.startswith("cannot connect") else "check the server's log")
        return VLMGuardError(f"{method} {url} failed after {attempts} attempt(s): {problem}; {hint}")
