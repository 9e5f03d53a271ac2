"""Backend for any OpenAI-compatible chat server (``vllm serve``, SGLang, ``vlmguard serve-model``, hosted APIs)."""
from __future__ import annotations

import asyncio
import logging
import math
import os
import random
from dataclasses import dataclass
from typing import Any, Sequence

import httpx

from ..chat import Chat, to_openai
from ..errors import VLMGuardError
from .base import Backend, OnError, SamplingParams, run_sync

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


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
                    token, value = str(alt["token"]), float(alt["logprob"])
                    prev = out.get(token)  # tokens that decode alike are summed, as the hf backend does
                    out[token] = value if prev is None else max(prev, value) + math.log1p(math.exp(-abs(prev - value)))
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
        self.stats["errors"] += 1
        hint = ("start it (`vllm serve MODEL` or `vlmguard serve-model --model SPEC`) or fix the URL"
                if problem.startswith("cannot connect") else "check the server's log")
        raise VLMGuardError(f"{method} {url} failed after {attempts} attempt(s): {problem}; {hint}")
