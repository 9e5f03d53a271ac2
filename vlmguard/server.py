"""An OpenAI-compatible chat server over any backend (``vlmguard serve-model``).

Concurrent requests are gathered into batches (up to ``max_batch``, waiting at most ``batch_wait_ms`` for
company) so an ``hf`` backend answers many clients with batched generation. It speaks the subset of the
OpenAI API that ``vllm serve`` clients use: ``GET /v1/models``, ``POST /v1/chat/completions`` (images as
``image_url`` data URLs; ``stream: true`` answers with Server-Sent Events as the official ``openai`` client reads
them), and ``GET /health``. Streamed requests bypass the batcher: each runs ``backend.astream`` on its own (an
``hf`` backend serves them one at a time, between batches).
"""
from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
except ImportError as e:  # pragma: no cover - depends on the install
    from .errors import VLMGuardError as _E
    raise _E("serving needs FastAPI and uvicorn: pip install 'vlmguard-r1[serve]'") from e

from .backends import Backend, SamplingParams
from .chat import Chat, images, parts, text_of, with_prefill
from .errors import VLMGuardError
from .format import REFUSAL
from .images import load_image
from .service import HTTPError, Metrics, ServeConfig, log_access

log = logging.getLogger(__name__)


@dataclass
class _Job:
    chat: Chat
    params: SamplingParams | int
    """Sampling parameters, or for a ``logprobs`` job the number of alternatives (top_logprobs)."""
    future: asyncio.Future
    kind: str = "generate"
    """``generate`` (text), ``logprobs`` (the first token's alternatives, ``Backend.next_token_logprobs``), or for
    a :class:`~vlmguard.guard.Guard`: ``guard`` (rewrite + answer, ``GuardResult``s) and ``rewrite`` (no answer)."""


class Batcher:
    """Collects concurrent requests and runs them through ``backend.generate`` in batches."""

    def __init__(self, backend: Backend, max_batch: int = 8, batch_wait_ms: float = 5.0) -> None:
        self.backend, self.max_batch, self.wait = backend, max_batch, batch_wait_ms / 1000
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.batches = 0
        self.requests = 0

    async def submit(self, chat: Chat, params: SamplingParams | int, kind: str = "generate") -> Any:
        job = _Job(chat, params, asyncio.get_running_loop().create_future(), kind)
        await self.queue.put(job)
        return await job.future

    def _call(self, kind: str):
        if kind == "rewrite":
            return lambda chats, _params, on_error: self.backend.rewrite(chats, on_error)
        return {"generate": self.backend.generate, "logprobs": self.backend.next_token_logprobs,
                "guard": getattr(self.backend, "run", None)}[kind]

    async def run(self) -> None:
        while True:
            jobs = [await self.queue.get()]
            deadline = time.monotonic() + self.wait
            while len(jobs) < self.max_batch:
                try:
                    jobs.append(await asyncio.wait_for(self.queue.get(), max(0.0, deadline - time.monotonic())))
                except asyncio.TimeoutError:
                    break
            groups: dict[tuple[str, Any], list[_Job]] = {}
            for job in jobs:
                groups.setdefault((job.kind, job.params), []).append(job)
            for (kind, params), group in groups.items():
                self.batches += 1
                self.requests += len(group)
                call = self._call(kind)
                try:
                    outs = await asyncio.to_thread(call, [j.chat for j in group], params, "none")
                except Exception as e:  # a broken backend must not kill the server
                    log.exception("batch failed")
                    outs = [e] * len(group)
                for job, out in zip(group, outs):
                    if not job.future.done():
                        job.future.set_result(out)


def _wire_to_chat(messages: Any, config: ServeConfig | None = None) -> Chat:
    """Validate OpenAI wire messages and decode their images (errors name the message and part), within the
    config's limits on turns, images and image bytes."""
    if not isinstance(messages, list) or not messages:
        raise VLMGuardError("'messages' must be a non-empty list")
    limits = config or ServeConfig.unlimited()
    if limits.max_turns is not None and len(messages) > limits.max_turns:
        raise HTTPError(400, f"{len(messages)} messages: this server accepts at most {limits.max_turns}")
    count = sum(1 for m in messages if isinstance(m, dict) and isinstance(m.get("content"), list)
                for p in m["content"] if isinstance(p, dict) and p.get("type") == "image_url")
    if limits.max_images is not None and count > limits.max_images:
        raise HTTPError(400, f"{count} images: this server accepts at most {limits.max_images} per request")
    chat: Chat = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise VLMGuardError(f"messages[{i}] needs a role of system, user or assistant")
        content = []
        for j, p in enumerate(parts(m)):
            kind = p.get("type")
            if kind == "text":
                content.append({"type": "text", "text": str(p.get("text", ""))})
            elif kind == "image_url":
                url = p.get("image_url", {})
                url = url.get("url") if isinstance(url, dict) else url
                size = len(str(url)) * 3 // 4  # a base64 data URL's decoded size, near enough
                if limits.max_image_bytes is not None and size > limits.max_image_bytes:
                    raise HTTPError(413, f"messages[{i}].content[{j}]: image of ~{size} bytes; this server accepts "
                                         f"at most {limits.max_image_bytes}")
                try:
                    content.append({"type": "image", "image": load_image(str(url))})
                except VLMGuardError as e:
                    raise VLMGuardError(f"messages[{i}].content[{j}]: {e}") from None
            else:
                raise VLMGuardError(f"messages[{i}].content[{j}] has unsupported type {kind!r} (text, image_url)")
        chat.append({"role": m["role"], "content": content})
    return chat


def _started(chat: Chat, body: dict[str, Any], guarded: bool) -> Chat:
    """``continue_final_message: true`` (with ``add_generation_prompt: false``, as vLLM asks): the final assistant
    message is the start of the reply, which the model continues (:func:`~vlmguard.chat.with_prefill`)."""
    if guarded:
        raise VLMGuardError("continue_final_message is not available through the guard: the target answers the "
                            "rewriter's prompt, not the client's conversation")
    if body.get("add_generation_prompt", True):
        raise VLMGuardError("continue_final_message needs add_generation_prompt: false (as in vLLM)")
    if chat[-1]["role"] != "assistant":
        raise VLMGuardError("continue_final_message needs the last message to be an assistant message to continue")
    return with_prefill(chat[:-1], text_of(chat[-1]))


def _params(body: dict[str, Any], config: ServeConfig | None = None) -> SamplingParams:
    stop = body.get("stop") or ()
    config = config or ServeConfig.unlimited()
    default = min(config.default_max_tokens, config.max_tokens or config.default_max_tokens)
    try:
        temperature = float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0)
        tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or default)
    except (TypeError, ValueError) as e:
        raise VLMGuardError(f"invalid sampling parameter: {e}") from None
    if config.max_tokens is not None and tokens > config.max_tokens:
        raise HTTPError(400, f"max_tokens {tokens} is above this server's limit of {config.max_tokens}")
    try:
        return SamplingParams(
            max_new_tokens=tokens,
            temperature=temperature, top_p=float(body.get("top_p") if body.get("top_p") is not None else 1.0),
            # a seed means nothing to greedy decoding: dropping it lets such requests share a batch
            seed=int(body["seed"]) if body.get("seed") is not None and temperature > 0 else None,
            stop=(stop,) if isinstance(stop, str) else tuple(stop))
    except (TypeError, ValueError) as e:
        raise VLMGuardError(f"invalid sampling parameter: {e}") from None


async def _sse(first: str | None, pieces: Any, head: dict[str, Any], extra: dict[str, Any] | None = None):
    """A completion as OpenAI ``chat.completion.chunk`` events: the assistant role, each text piece (``first``,
    then the rest of ``pieces``), an empty delta with ``finish_reason: "stop"``, ``data: [DONE]``. A failure
    mid-stream sends ``data: {"error": {...}}`` and then ``[DONE]``, as ``vllm serve`` does."""
    def event(data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data)}\n\n"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return event({**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    try:
        yield event({**head, **(extra or {}), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                            "logprobs": None, "finish_reason": None}]})
        if first:
            yield chunk({"content": first})
        async for piece in pieces:
            if piece:
                yield chunk({"content": piece})
        yield chunk({}, "stop")
    except Exception as e:  # the status line is sent: report it in the stream
        log.warning("stream %s failed: %s", head["id"], e)
        yield event({"error": {"message": f"generation failed: {e}", "type": "server_error", "code": 500}})
    finally:
        await pieces.aclose()  # also when the client went away: stops the generation
    yield "data: [DONE]\n\n"


def create_app(backend: Backend, model_name: str | Sequence[str], max_batch: int = 8, batch_wait_ms: float = 5.0,
               config: ServeConfig | None = None):
    """A FastAPI app serving ``backend`` under ``model_name`` (several names: aliases of one model, as
    ``vllm serve --served-model-name A B`` does; responses carry the name the client asked for).

    With a :class:`~vlmguard.guard.Guard` as the backend it is the guard service (``vlmguard serve``): every
    request is rewritten and the target answers the refined prompt; ``"vlmguard": {"analysis": true}`` in the
    request body (``extra_body`` in the ``openai`` client) returns the rewriter's analysis in a ``vlmguard``
    field. ``config`` sets API keys, limits, the per-request timeout and the concurrency bound; without it
    nothing is limited (the model server's default)."""
    from .guard import Guard

    names = [model_name] if isinstance(model_name, str) else list(model_name)
    model_name = names[0]
    limits = config or ServeConfig.unlimited()
    keys = limits.api_keys()
    guard = backend if isinstance(backend, Guard) else None
    batcher = Batcher(backend, max_batch, batch_wait_ms)
    metrics = Metrics()
    in_flight = 0

    @asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app = FastAPI(title="vlmguard guard server" if guard else "vlmguard model server", lifespan=lifespan)
    app.state.batcher, app.state.metrics = batcher, metrics

    def error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
              headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(HTTPError(status, message, kind, code).body(), status_code=status, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # never a traceback to the client
        log.exception("unexpected error on %s", request.url.path)
        metrics.count("errors_internal")
        return error(500, f"internal error ({type(exc).__name__}); see the server log", "server_error")

    @app.middleware("http")
    async def gate(request: Request, call_next):
        """API key, body size and the concurrency bound, before any work; an access log line per request."""
        nonlocal in_flight
        rid, start = uuid.uuid4().hex[:12], time.perf_counter()
        request.state.rid, request.state.log = rid, {}
        status = 500
        try:
            if request.url.path.startswith("/v1/"):
                if keys is not None:
                    auth = request.headers.get("authorization", "")
                    if not auth.startswith("Bearer ") or auth[7:].strip() not in keys:
                        status = 401
                        return error(401, "missing or wrong API key: send Authorization: Bearer KEY",
                                     "invalid_request_error", "invalid_api_key")
                size = int(request.headers.get("content-length") or 0)
                if limits.max_body_bytes is not None and size > limits.max_body_bytes:
                    status = 413
                    return error(413, f"request body of {size} bytes; this server accepts at most "
                                      f"{limits.max_body_bytes}")
            if request.url.path == "/v1/chat/completions":
                if limits.max_concurrency is not None and in_flight >= limits.max_concurrency:
                    status = 429
                    metrics.count("rejected_busy")
                    return error(429, f"the server is at its limit of {limits.max_concurrency} requests in flight; "
                                      f"retry shortly", "rate_limit_error", "server_busy", {"Retry-After": "1"})
                in_flight += 1
                try:
                    response = await call_next(request)
                finally:
                    in_flight -= 1
            else:
                response = await call_next(request)
            status = response.status_code
            return response
        finally:
            took = time.perf_counter() - start
            if request.url.path == "/v1/chat/completions":
                metrics.count(f"requests_{status}")
                if status < 400:
                    metrics.observe(took)
                log_access(rid, status, took, path=request.url.path, **request.state.log)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness plus counters: generations served, the batches they ran in, streamed completions (outside the
        batches), the backend's own stats, the service metrics (rewrites, fallbacks, refusals, target errors,
        latency quantiles)."""
        return {"status": "ok", "generations": batcher.requests, "batches": batcher.batches,
                "streams": metrics.counters["streams"], "in_flight": in_flight, "backend": dict(backend.stats),
                **metrics.snapshot()}

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.prometheus(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "vlmguard"} for n in names]}

    def count_guard(results: list) -> None:
        for r in results:
            metrics.count("rewrites")
            metrics.count("fallbacks", r.fallback_used)
            metrics.count("rewriter_errors", r.completion is None)
            metrics.count("refusals", r.prompt is None)

    def analysis(r) -> dict[str, Any]:
        out = {"threat": r.parsed.threat, "intent": r.parsed.intent, "prompt": r.prompt,
               "fallback_used": r.fallback_used, "problems": list(r.parsed.problems)}
        return out if r.threat_score is None else {**out, "threat_score": r.threat_score}

    async def complete(request: Request, body: dict[str, Any]):
        if body.get("model") not in (None, *names):
            return error(404, f"model {body.get('model')!r} is not served here; this server serves "
                              f"{', '.join(map(repr, names))}", "invalid_request_error", "model_not_found")
        try:
            chat, params = _wire_to_chat(body.get("messages"), config), _params(body, config)
            n = int(body.get("n") or 1)
            if body.get("continue_final_message"):  # vLLM's extension: an assistant prefill
                chat = _started(chat, body, guard is not None)
            if guard is not None:
                guard.check_chat(chat)
        except HTTPError as e:
            return error(e.status, e.message, e.kind, e.code)
        except (VLMGuardError, ValueError, TypeError) as e:
            return error(400, str(e))
        request.state.log.update(model=body.get("model"), stream=bool(body.get("stream")), messages=len(chat),
                                 images=len(images(chat)))
        if limits.log_content:
            request.state.log["messages_content"] = body.get("messages")
        if (guard.target if guard else backend).accepts_images is False and images(chat):
            return error(400, f"{model_name} is a text-only model and does not accept images "
                              f"(send text only, e.g. a judge with `image: false`)")
        want_analysis = guard is not None and isinstance(body.get("vlmguard"), dict) and \
            bool(body["vlmguard"].get("analysis"))
        created = {"id": f"chatcmpl-{request.state.rid}", "object": "chat.completion", "created": int(time.time()),
                   "model": body.get("model") or model_name}
        if body.get("stream"):
            if body.get("logprobs") or n != 1:
                return error(400, "stream=true supports n=1 without logprobs here; send stream=false")
            metrics.count("streams")
            extra: dict[str, Any] = {}
            if guard is not None:
                result = await batcher.submit(chat, None, "rewrite")
                if isinstance(result, Exception):
                    raise result
                count_guard([result])
                if want_analysis:
                    extra["vlmguard"] = analysis(result)
                if result.target_chat is None:  # refused: the guard answers
                    pieces = _once(result.answer or REFUSAL)
                else:
                    pieces = guard.target.astream(result.target_chat, params)
            else:
                pieces = backend.astream(chat, params)
            try:  # the first piece before the status line: a failure to start is still an HTTP error
                first = await anext(pieces, None)
            except Exception as e:
                await pieces.aclose()
                metrics.count("target_errors")
                return error(502 if guard else 500, f"{'the guarded target' if guard else 'generation'} failed: {e}",
                             "server_error")
            return StreamingResponse(_sse(first, pieces, {**created, "object": "chat.completion.chunk"}, extra),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        if body.get("logprobs"):
            if guard is not None:
                return error(400, "logprobs are not available through the guard")
            if params.max_new_tokens != 1:
                return error(400, "this server returns logprobs for one-token completions only: send max_tokens=1")
            top = int(body.get("top_logprobs") or 1)
            found = await batcher.submit(chat, max(1, top), "logprobs")
            if not isinstance(found, dict):
                return error(500, f"scoring failed: {found}", "server_error")
            ranked = sorted(found.items(), key=lambda kv: -kv[1])
            alts = [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in ranked]
            return {**created, "choices": [{"index": 0, "message": {"role": "assistant", "content": ranked[0][0]},
                                            "logprobs": {"content": [{**alts[0], "top_logprobs": alts}]},
                                            "finish_reason": "length"}]}
        if guard is not None:
            results = await asyncio.gather(*[batcher.submit(chat, params, "guard") for _ in range(max(1, n))])
            if any(isinstance(r, Exception) for r in results):
                raise next(r for r in results if isinstance(r, Exception))
            count_guard(results)
            failed = [r for r in results if r.answer is None]
            if failed:
                metrics.count("target_errors", len(failed))
                return error(502, f"the guarded target failed to answer ({guard.target.spec}); see the server log",
                             "server_error", "target_failed")
            outs = [r.answer for r in results]
        else:
            outs = await asyncio.gather(*[batcher.submit(chat, params) for _ in range(max(1, n))])
            if any(not isinstance(o, str) for o in outs):
                return error(500, f"generation failed: {next(o for o in outs if not isinstance(o, str))}",
                             "server_error")
        response = {**created,
                    "choices": [{"index": k, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                                for k, text in enumerate(outs)]}
        if want_analysis:
            response["vlmguard"] = analysis(results[0])
        return response

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            body = await request.json()
        except ValueError:
            return error(400, "request body is not JSON")
        if not isinstance(body, dict):
            return error(400, "request body must be a JSON object")
        try:
            return await asyncio.wait_for(complete(request, body), limits.request_timeout)
        except asyncio.TimeoutError:
            metrics.count("timeouts")
            return error(504, f"the request took longer than {limits.request_timeout:g} s", "server_error", "timeout")

    return app


async def _once(text: str):
    yield text


def serve(backend: Backend, model_name: str | Sequence[str], host: str = "127.0.0.1", port: int = 8000, max_batch: int = 8,
          batch_wait_ms: float = 5.0, log_level: str = "warning", config: ServeConfig | None = None) -> None:
    """Serve until interrupted. Port 0 picks a free port; the first stdout line says where it listens."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        raise VLMGuardError(f"cannot listen on {host}:{port} ({e.strerror}): choose another --port") from e
    bound = sock.getsockname()[1]
    app = create_app(backend, model_name, max_batch, batch_wait_ms, config)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False))
    names = [model_name] if isinstance(model_name, str) else list(model_name)
    print(f"serving {', '.join(map(repr, names))} at http://{host}:{bound}/v1", flush=True)
    server.run(sockets=[sock])
