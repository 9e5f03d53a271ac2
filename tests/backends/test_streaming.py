"""Streaming (``Backend.astream``, ``stream: true``) over real HTTP on 127.0.0.1: the official ``openai`` client and
the openai backend against ``vlmguard serve-model``, the hf backend in process, and the failure paths."""
import asyncio
import socket
import time

import pytest
from conftest import FaultProxy
from openai import AsyncOpenAI, OpenAI

from vlmguard.backends import Backend, SamplingParams, load_backend
from vlmguard.chat import to_openai, user_chat
from vlmguard.errors import VLMGuardError
from vlmguard.examples import EXAMPLES

CHAT = user_chat("What is this?", EXAMPLES[0].image())
PARAMS = SamplingParams(max_new_tokens=16)


def _collect(backend, chat=CHAT, params=PARAMS):
    async def main():
        return [piece async for piece in backend.astream(chat, params)]
    return asyncio.run(main())


@pytest.fixture(scope="module")
def hf_target(tiny_models):
    return load_backend(f"hf:{tiny_models['target']}")


@pytest.fixture(scope="module")
def answer(hf_target):
    """The greedy, non-streamed answer."""
    return hf_target.generate([CHAT], PARAMS)[0]


def _kw(**kw):
    return {"model": "tiny-target", "messages": to_openai(CHAT), "max_tokens": PARAMS.max_new_tokens,
            "temperature": 0, **kw}


def _check_chunks(chunks, answer):
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert "".join(pieces) == answer and len(pieces) > 1
    assert chunks[-1].choices[0].finish_reason == "stop" and not chunks[-1].choices[0].delta.content
    assert {(c.id, c.created, c.model, c.object) for c in chunks} == {
        (chunks[0].id, chunks[0].created, "tiny-target", "chat.completion.chunk")}


def test_official_client_streams(target_server, answer):
    client = OpenAI(base_url=target_server, api_key="x", max_retries=0)
    assert client.chat.completions.create(**_kw()).choices[0].message.content == answer
    _check_chunks(list(client.chat.completions.create(**_kw(stream=True))), answer)


def test_official_async_client_streams_concurrently(target_server, answer):
    async def one(client):
        return [c async for c in await client.chat.completions.create(**_kw(stream=True))]

    async def main():
        async with AsyncOpenAI(base_url=target_server, api_key="x", max_retries=0) as client:
            return await asyncio.gather(one(client), one(client))

    for chunks in asyncio.run(main()):
        _check_chunks(chunks, answer)


def test_openai_backend_streams(target_server, answer):
    remote = load_backend(f"openai:{target_server}?model=tiny-target")
    pieces = _collect(remote)
    assert "".join(pieces) == answer and len(pieces) > 1 and remote.stats["requests"] == 1
    stop = answer[5:8]
    cut = SamplingParams(max_new_tokens=PARAMS.max_new_tokens, stop=(stop,))
    assert "".join(_collect(remote, params=cut)) == remote.generate([CHAT], cut)[0] == answer[:answer.find(stop)]

    async def leave_early():  # a client that goes away must not wedge the server
        stream = remote.astream(CHAT, PARAMS)
        first = await anext(stream)
        await stream.aclose()
        return first
    assert answer.startswith(asyncio.run(leave_early()))
    assert remote.generate([CHAT], PARAMS)[0] == answer


def test_hf_astream_equals_generate(hf_target, answer):
    pieces = _collect(hf_target)
    assert "".join(pieces) == answer and len(pieces) > 1
    text_only = user_chat("Tell me a story")
    for params in (SamplingParams(max_new_tokens=24), SamplingParams(max_new_tokens=24, temperature=0.9, seed=7)):
        assert "".join(_collect(hf_target, text_only, params)) == hf_target.generate([text_only], params)[0]
    for stop in (answer[4:7], answer[:2], "never in it"):
        params = SamplingParams(max_new_tokens=PARAMS.max_new_tokens, stop=(stop, "z" + stop))
        assert "".join(_collect(hf_target, params=params)) == hf_target.generate([CHAT], params)[0]

    async def leave_early():
        stream = hf_target.astream(CHAT, SamplingParams(max_new_tokens=200))
        await anext(stream)
        await stream.aclose()
    start = time.monotonic()
    asyncio.run(leave_early())
    assert hf_target.generate([CHAT], PARAMS)[0] == answer  # the lock was released, generation halted
    assert time.monotonic() - start < 10


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dead_port_is_a_clear_error():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    remote = load_backend(f"openai:{url}?model=m&retries=1&backoff=0.01")
    start = time.monotonic()
    with pytest.raises(VLMGuardError, match="cannot connect.*vlmguard serve-model"):
        _collect(remote)
    assert time.monotonic() - start < 5 and remote.stats["retries"] == 1


def test_retry_before_the_stream_starts(target_server, answer):
    proxy = FaultProxy(target_server, fail=1)  # it buffers the answer: the events arrive at once
    try:
        remote = load_backend(f"openai:{proxy.url}?model=tiny-target&backoff=0.01")
        assert "".join(_collect(remote)) == answer
        assert remote.stats["retries"] == 1 and proxy.seen == 2
    finally:
        proxy.close()


class _Breaks(Backend):
    """Yields two pieces, then fails (or fails at once with ``early``)."""

    spec = "breaks"

    def __init__(self, early=False):
        super().__init__()
        self.early = early

    def generate(self, chats, params=None, on_error="raise"):
        raise VLMGuardError("boom")

    async def astream(self, chat, params=None):
        if not self.early:
            yield "a"
            yield "b"
        raise VLMGuardError("boom")


@pytest.fixture
def serve_backend(serve_app):
    from vlmguard.server import create_app

    return lambda backend: serve_app(create_app(backend, "m"))


def test_failure_mid_stream(serve_backend):
    url = serve_backend(_Breaks())
    remote = load_backend(f"openai:{url}?model=m&backoff=0.01")
    got = []

    async def main():
        async for piece in remote.astream(CHAT):
            got.append(piece)
    with pytest.raises(VLMGuardError, match=r"stream from .*/chat/completions broke after 2 chunks: .*boom"):
        asyncio.run(main())
    assert got == ["a", "b"] and remote.stats["retries"] == 0
    client = OpenAI(base_url=url, api_key="x", max_retries=0)
    with pytest.raises(Exception, match="boom"):  # the official client raises on the error event
        list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True))


def test_failure_before_the_stream_is_an_http_error(serve_backend):
    url = serve_backend(_Breaks(early=True))
    remote = load_backend(f"openai:{url}?model=m&retries=1&backoff=0.01")
    with pytest.raises(VLMGuardError, match="failed after 2 attempt.*HTTP 500.*boom"):
        _collect(remote)
    assert remote.stats["retries"] == 1


def test_default_astream_yields_the_whole_answer(hf_target, answer):
    class Plain(Backend):
        def generate(self, chats, params=None, on_error="raise"):
            return hf_target.generate(chats, params, on_error)

    class Fails(Plain):
        def generate(self, chats, params=None, on_error="raise"):
            raise VLMGuardError("boom")
    assert _collect(Plain()) == [answer]
    with pytest.raises(VLMGuardError, match="boom"):
        _collect(Fails())
