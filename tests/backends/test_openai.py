"""The openai backend against the project's real OpenAI-compatible server on 127.0.0.1 (no mocks).

Failure handling is exercised with a real fault-injecting HTTP proxy in front of that server."""
import asyncio
import socket

import pytest
from PIL import Image

from vlmguard.backends import SamplingParams, load_backend
from vlmguard.chat import user_chat, with_prefill
from conftest import FaultProxy
from vlmguard.errors import VLMGuardError


def _chats(n=6):
    return [user_chat(f"Tell me about picture {i}", Image.new("RGB", (56 + 8 * i, 70), (40 * i, 90, 200)))
            for i in range(n)]


@pytest.fixture(scope="module")
def hf_target(tiny_models):
    return load_backend(f"hf:{tiny_models['target']}")


def test_same_answers_as_in_process_model(target_server, hf_target):
    remote = load_backend(f"openai:{target_server}?concurrency=4")
    params = SamplingParams(max_new_tokens=8)
    chats = _chats()
    assert remote.generate(chats, params) == hf_target.generate(chats, params)
    assert remote.model == "tiny-target" and remote.stats["requests"] == len(chats) + 1  # + /models discovery


def test_a_started_reply_is_continued_over_the_wire(target_server, hf_target):
    """An assistant prefill travels as vLLM's ``continue_final_message`` and is continued, not answered anew."""
    remote = load_backend(f"openai:{target_server}")
    chats = [with_prefill(c, "<threat>Zebra crossing") for c in _chats(2)]
    params = SamplingParams(max_new_tokens=6)
    assert remote.generate(chats, params) == hf_target.generate(chats, params)
    wire, local, fresh = (b.next_token_logprobs(c, 3) for b, c in
                          ((remote, chats), (hf_target, chats), (hf_target, _chats(2))))
    for w, loc, f in zip(wire, local, fresh):
        assert w.keys() == loc.keys() and all(abs(w[t] - loc[t]) < 1e-4 for t in w)
        assert w != f  # the prefill changed what comes next


def test_agenerate_inside_running_loop(target_server):
    remote = load_backend(f"openai:{target_server}?model=tiny-target")

    async def main():
        a = await remote.agenerate(_chats(2), SamplingParams(max_new_tokens=4))
        b = remote.generate(_chats(2), SamplingParams(max_new_tokens=4))  # sync call from inside a loop
        return a, b

    a, b = asyncio.run(main())
    assert a == b and all(a)


def test_unknown_model_and_bad_check(target_server):
    with pytest.raises(VLMGuardError, match="not 'nope'"):
        load_backend(f"openai:{target_server}?model=nope").check()
    with pytest.raises(VLMGuardError, match="HTTP 404"):
        load_backend(f"openai:{target_server}?model=nope").generate(_chats(1))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_clear_error():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    b = load_backend(f"openai:{url}?model=m&retries=2&backoff=0.01")
    with pytest.raises(VLMGuardError) as e:
        b.generate(_chats(1))
    msg = str(e.value)
    assert "after 3 attempt(s)" in msg and "cannot connect" in msg and "vlmguard serve-model" in msg
    assert b.stats["retries"] == 2
    out = b.generate(_chats(2), on_error="none")
    assert out == [None, None] and b.stats["failed"] == 2


def test_retries_through_503s(target_server, hf_target):
    proxy = FaultProxy(target_server, fail=2)
    try:
        b = load_backend(f"openai:{proxy.url}?model=tiny-target&concurrency=1&retries=3&backoff=0.01")
        params = SamplingParams(max_new_tokens=6)
        assert b.generate(_chats(2), params) == hf_target.generate(_chats(2), params)
        assert b.stats["retries"] == 2
    finally:
        proxy.close()


def test_timeouts_retry_then_give_up(target_server):
    proxy = FaultProxy(target_server, fail=100, mode="hang")
    try:
        b = load_backend(f"openai:{proxy.url}?model=tiny-target&timeout=0.3&retries=1&backoff=0.01")
        with pytest.raises(VLMGuardError, match=r"timed out after 0.3 s \(raise \?timeout=SECONDS\)"):
            b.generate(_chats(1))
        assert b.generate(_chats(1), on_error="none") == [None]
    finally:
        proxy.close()


def test_bad_image_fails_before_sending(tmp_path, target_server):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    b = load_backend(f"openai:{target_server}?model=tiny-target")
    with pytest.raises(VLMGuardError, match="broken.jpg"):
        b.generate([user_chat("x", bad)])
