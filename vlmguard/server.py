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
    from fastapi.responses import JSONResponse, StreamingResponse
except ImportError as e:  # pragma: no cover - depends on the install
    from .errors import VLMGuardError as _E
    raise _E("serving needs FastAPI and uvicorn: pip install 'vlmguard-r1[serve]'") from e

from .backends import Backend, SamplingParams
from .chat import Chat, images, parts
from .errors import VLMGuardError
from .images import load_image

log = logging.getLogger(__name__)


@dataclass
class _Job:
    chat: Chat
    params: SamplingParams | int
    """Sampling parameters, or for a ``logprobs`` job the number of alternatives (top_logprobs)."""
    future: asyncio.Future
    kind: str = "generate"
    """``generate`` (text) or ``logprobs`` (the first token's alternatives, ``Backend.next_token_logprobs``)."""


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
                call = self.backend.generate if kind == "generate" else self.backend.next_token_logprobs
                try:
                    outs = await asyncio.to_thread(call, [j.chat for j in group], params, "none")
                except Exception as e:  # a broken backend must not kill the server
                    log.exception("batch failed")
                    outs = [e] * len(group)
                for job, out in zip(group, outs):
                    if not job.future.done():
                        job.future.set_result(out)


def _wire_to_chat(messages: Any) -> Chat:
    """Validate OpenAI wire messages and decode their images (errors name the message and part)."""
    if not isinstance(messages, list) or not messages:
        raise VLMGuardError("'messages' must be a non-empty list")
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
                try:
                    content.append({"type": "image", "image": load_image(str(url))})
                except VLMGuardError as e:
                    raise VLMGuardError(f"messages[{i}].content[{j}]: {e}") from None
            else:
                raise VLMGuardError(f"messages[{i}].content[{j}] has unsupported type {kind!r} (text, image_url)")
        chat.append({"role": m["role"], "content": content})
    return chat


def _params(body: dict[str, Any]) -> SamplingParams:
    stop = body.get("stop") or ()
    try:
        temperature = float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0)
        return SamplingParams(
            max_new_tokens=int(body.get("max_completion_tokens") or body.get("max_tokens") or 256),
            temperature=temperature, top_p=float(body.get("top_p") if body.get("top_p") is not None else 1.0),
            # a seed means nothing to greedy decoding: dropping it lets such requests share a batch
            seed=int(body["seed"]) if body.get("seed") is not None and temperature > 0 else None,
            stop=(stop,) if isinstance(stop, str) else tuple(stop))
    except (TypeError, ValueError) as e:
        raise VLMGuardError(f"invalid sampling parameter: {e}") from None


async def _sse(first: str | None, pieces: Any, head: dict[str, Any]):
    """A completion as OpenAI ``chat.completion.chunk`` events: the assistant role, each text piece (``first``,
    then the rest of ``pieces``), an empty delta with ``finish_reason: "stop"``, ``data: [DONE]``. A failure
    mid-stream sends ``data: {"error": {...}}`` and then ``[DONE]``, as ``vllm serve`` does."""
    def event(data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data)}\n\n"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return event({**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    try:
        yield chunk({"role": "assistant", "content": ""})
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


def create_app(backend: Backend, model_name: str | Sequence[str], max_batch: int = 8, batch_wait_ms: float = 5.0):
    """A FastAPI app serving ``backend`` under ``model_name`` (several names: aliases of one model, as
    ``vllm serve --served-model-name A B`` does; responses carry the name the client asked for)."""
    names = [model_name] if isinstance(model_name, str) else list(model_name)
    model_name = names[0]
    batcher = Batcher(backend, max_batch, batch_wait_ms)

    @asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app = FastAPI(title="vlmguard model server", lifespan=lifespan)
    app.state.batcher = batcher
    streams = 0

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness plus counters: generations served, the batches they ran in, streamed completions (outside the
        batches), the backend's own stats."""
        return {"status": "ok", "generations": batcher.requests, "batches": batcher.batches, "streams": streams,
                "backend": dict(backend.stats)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "vlmguard"} for n in names]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            body = await request.json()
        except ValueError:
            return error(400, "request body is not JSON")
        if not isinstance(body, dict):
            return error(400, "request body must be a JSON object")
        if body.get("model") not in (None, *names):
            return error(404, f"model {body.get('model')!r} is not served here; this server serves "
                              f"{', '.join(map(repr, names))}",
                         "not_found_error")
        try:
            chat, params = _wire_to_chat(body.get("messages")), _params(body)
            n = int(body.get("n") or 1)
        except (VLMGuardError, ValueError) as e:
            return error(400, str(e))
        if backend.accepts_images is False and images(chat):
            return error(400, f"{model_name} is a text-only model and does not accept images "
                              f"(send text only, e.g. a judge with `image: false`)")
        created = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                   "model": body.get("model") or model_name}
        if body.get("stream"):
            if body.get("logprobs") or n != 1:
                return error(400, "stream=true supports n=1 without logprobs here; send stream=false")
            nonlocal streams
            streams += 1
            pieces = backend.astream(chat, params)
            try:  # the first piece before the status line: a failure to start is still an HTTP error
                first = await anext(pieces, None)
            except Exception as e:
                await pieces.aclose()
                return error(500, f"generation failed: {e}", "server_error")
            return StreamingResponse(_sse(first, pieces, {**created, "object": "chat.completion.chunk"}),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        if body.get("logprobs"):
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
        outs = await asyncio.gather(*[batcher.submit(chat, params) for _ in range(max(1, n))])
        if any(not isinstance(o, str) for o in outs):
            return error(500, f"generation failed: {next(o for o in outs if not isinstance(o, str))}", "server_error")
        return {**created,
                "choices": [{"index": k, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                            for k, text in enumerate(outs)]}

    return app


def serve(backend: Backend, model_name: str | Sequence[str], host: str = "127.0.0.1", port: int = 8000, max_batch: int = 8,
          batch_wait_ms: float = 5.0, log_level: str = "warning") -> None:
    """Serve until interrupted. Port 0 picks a free port; the first stdout line says where it listens."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        raise VLMGuardError(f"cannot listen on {host}:{port} ({e.strerror}): choose another --port") from e
    bound = sock.getsockname()[1]
    app = create_app(backend, model_name, max_batch, batch_wait_ms)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level))
    names = [model_name] if isinstance(model_name, str) else list(model_name)
    print(f"serving {', '.join(map(repr, names))} at http://{host}:{bound}/v1", flush=True)
    server.run(sockets=[sock])
