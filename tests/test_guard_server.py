"""``vlmguard serve``: the guard as an OpenAI-compatible service, run as a real process on 127.0.0.1 in front of
the project's model server (the tiny target), called with the official ``openai`` client."""
import asyncio
import base64
import io
import json
import socket
import time

import httpx
import pytest
import yaml
from conftest import start_server, stop_server
from openai import APIStatusError, AsyncOpenAI, OpenAI
from PIL import Image

from vlmguard.backends import Backend, SamplingParams, load_backend
from vlmguard.chat import user_chat
from vlmguard.format import render

KEY = "sk-test-123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data_url(color=(200, 30, 30), size=56, noise=False) -> str:
    buf = io.BytesIO()
    image = Image.effect_noise((size, size), 80).convert("RGB") if noise else Image.new("RGB", (size, size), color)
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_message(text: str, url: str | None = None) -> dict:
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url or data_url()}},
                                        {"type": "text", "text": text}]}


@pytest.fixture(scope="module")
def stack(tiny_models, tmp_path_factory):
    """A tiny target behind the model server on a fixed port (so it can be killed and restarted), and the guard
    service in front of it with an API key and small limits."""
    tmp = tmp_path_factory.mktemp("serve")
    port = _free_port()
    target_args = ["--model", f"hf:{tiny_models['target']}?batch_size=16", "--name", "tiny-target",
                   "--batch-wait-ms", "10"]
    target, target_url = start_server(target_args, port=port)
    (tmp / "keys.txt").write_text(f"# keys\n{KEY}\n")
    (tmp / "serve.yaml").write_text(yaml.safe_dump({
        "rewrite_max_new_tokens": 8, "api_key_file": str(tmp / "keys.txt"), "max_images": 2,
        "max_image_bytes": 60_000, "max_turns": 6, "max_tokens": 64, "max_concurrency": 16,
        "request_timeout": 30, "max_batch": 16, "batch_wait_ms": 10}))
    guard, guard_url = start_server(["--config", str(tmp / "serve.yaml"), "--rewriter",
                                     f"hf:{tiny_models['rewriter']}?batch_size=16", "--target",
                                     f"openai:{target_url}?model=tiny-target&retries=1&backoff=0.05&timeout=10"],
                                    command="serve")
    state = {"target": target, "target_args": target_args, "port": port, "target_url": target_url,
             "url": guard_url}
    yield state
    stop_server(guard)
    stop_server(state["target"])


def client(stack, key=KEY, **kw) -> OpenAI:
    return OpenAI(base_url=stack["url"], api_key=key, max_retries=0, timeout=60, **kw)


def test_guarded_answers_with_the_official_client(stack):
    """Sync and async, streamed and not, an image as a data URL: the answer is the target's answer to what the
    guard sent it (the untrained tiny rewriter falls back to the original request, counted)."""
    messages = [image_message("What is in this picture?")]
    sync = client(stack).chat.completions.create(model="tiny-target", messages=messages, max_tokens=8,
                                                 temperature=0)
    answer = sync.choices[0].message.content
    assert sync.model == "tiny-target" and sync.choices[0].finish_reason == "stop"
    # what the target alone says to the guard's fallback prompt (the original, with the image): the same
    from vlmguard.server import _wire_to_chat
    direct = load_backend(f"openai:{stack['target_url']}?model=tiny-target").generate(
        [user_chat("What is in this picture?", _wire_to_chat(messages)[0]["content"][0]["image"])],
        SamplingParams(max_new_tokens=8))
    assert answer == direct[0]

    async def run_async():
        c = AsyncOpenAI(base_url=stack["url"], api_key=KEY, max_retries=0, timeout=60)
        full = await c.chat.completions.create(model="tiny-target", messages=messages, max_tokens=8, temperature=0)
        stream = await c.chat.completions.create(model="tiny-target", messages=messages, max_tokens=8,
                                                 temperature=0, stream=True)
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        return full.choices[0].message.content, pieces
    full, pieces = asyncio.run(run_async())
    assert full == answer and "".join(pieces) == answer
    stream = client(stack).chat.completions.create(model="tiny-target", messages=messages, max_tokens=8,
                                                   temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == answer


def test_analysis_only_when_asked(stack):
    c = client(stack)
    plain = c.chat.completions.create(model="tiny-target", messages=[image_message("hi")], max_tokens=4)
    assert "vlmguard" not in plain.model_dump()
    asked = c.chat.completions.create(model="tiny-target", messages=[image_message("hi")], max_tokens=4,
                                      extra_body={"vlmguard": {"analysis": True}})
    extra = asked.model_dump()["vlmguard"]
    assert set(extra) == {"threat", "intent", "prompt", "fallback_used", "problems"} and extra["fallback_used"]
    assert extra["prompt"] == "hi"  # the fallback policy (original)


def test_health_and_prometheus_metrics(stack):
    client(stack).chat.completions.create(model="tiny-target", messages=[image_message("count")], max_tokens=4)
    health = httpx.get(stack["url"].removesuffix("/v1") + "/health").json()
    assert health["status"] == "ok" and health["counters"]["rewrites"] >= 1
    assert health["counters"]["fallbacks"] >= 1 and health["latency_s"]["0.5"] > 0
    text = httpx.get(stack["url"].removesuffix("/v1") + "/metrics").text
    for name in ("vlmguard_rewrites_total", "vlmguard_fallbacks_total", "vlmguard_requests_200_total",
                 'vlmguard_request_latency_seconds{quantile="0.5"}', "vlmguard_request_latency_seconds_count"):
        assert name in text


@pytest.mark.parametrize("body, headers, status, message", [
    (b"{not json", {}, 400, "not JSON"),
    ({"model": "tiny-target", "messages": [{"role": "robot", "content": "hi"}]}, {}, 400, "role of system, user"),
    ({"model": "tiny-target", "messages": [{"role": "assistant", "content": "hi"}]}, {}, 400, "no user message"),
    ({"model": "tiny-target", "messages": [image_message("x", "data:image/png;base64,AAAA")]}, {}, 400,
     "messages[0].content[0]"),
    ({"model": "tiny-target", "messages": [image_message("x", data_url(size=400, noise=True))]}, {}, 413, "at most 60000"),
    ({"model": "tiny-target", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url()}}] * 3 + [{"type": "text", "text": "x"}]}]}, {}, 400,
     "at most 2 per request"),
    ({"model": "tiny-target", "messages": [{"role": "user", "content": "x"}] * 7}, {}, 400, "at most 6"),
    ({"model": "tiny-target", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5000}, {}, 400,
     "limit of 64"),
    ({"model": "other", "messages": [{"role": "user", "content": "x"}]}, {}, 404, "not served here"),
    ({"model": "tiny-target", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "S"}],
      "continue_final_message": True, "add_generation_prompt": False}, {}, 400, "not available through the guard"),
    ({"model": "tiny-target", "messages": [{"role": "user", "content": "x"}]}, {"Authorization": "Bearer wrong"}, 401,
     "API key"),
    ({"model": "tiny-target", "messages": [{"role": "user", "content": "x"}]}, {"Authorization": ""}, 401, "API key"),
])
def test_bad_requests_are_4xx_with_a_message(stack, body, headers, status, message):
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **headers}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(stack["url"] + "/chat/completions", content=content, headers=h, timeout=60)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error["message"] and error["type"] and "Traceback" not in r.text


def test_load_then_target_killed_then_recovers(stack):
    """200 requests, 16 at a time: every one answered and well formed. Then the target is killed mid-run:
    clean 502s, no request hangs; it comes back on the same port and the guard recovers."""
    async def fire(n: int, concurrency: int, kill_after: int | None = None):
        c = AsyncOpenAI(base_url=stack["url"], api_key=KEY, max_retries=0, timeout=60)
        sem, statuses, done = asyncio.Semaphore(concurrency), [], 0

        async def one(i):
            nonlocal done
            async with sem:
                try:
                    r = await c.chat.completions.create(
                        model="tiny-target", messages=[image_message(f"Question {i}: what colour?",
                                                                     data_url((i % 255, 90, 160)))], max_tokens=6)
                    assert r.choices[0].message.role == "assistant" and isinstance(r.choices[0].message.content, str)
                    statuses.append(200)
                except APIStatusError as e:
                    assert "error" in e.response.json()
                    statuses.append(e.status_code)
                done += 1
                if kill_after is not None and done == kill_after:
                    stack["target"].kill()
                    stack["target"].wait()
        start = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*[one(i) for i in range(n)]), 300)
        return statuses, time.monotonic() - start

    statuses, took = asyncio.run(fire(200, 16))
    assert statuses == [200] * 200, statuses
    statuses, took = asyncio.run(fire(48, 16, kill_after=8))
    assert set(statuses) <= {200, 502, 503} and statuses.count(502) + statuses.count(503) >= 16, statuses
    # the target returns on the same port: the guard answers again
    stack["target"], _ = start_server(stack["target_args"], port=stack["port"])
    r = client(stack).chat.completions.create(model="tiny-target", messages=[image_message("back?")], max_tokens=4)
    assert isinstance(r.choices[0].message.content, str)
    health = httpx.get(stack["url"].removesuffix("/v1") + "/health").json()
    assert health["counters"]["target_errors"] >= 16 and health["in_flight"] == 0


class _Slow(Backend):
    """A backend that takes ``delay`` seconds per call: for the concurrency bound and the timeout."""

    def __init__(self, delay):
        super().__init__()
        self.delay = delay

    def generate(self, chats, params=None, on_error="raise"):
        time.sleep(self.delay)
        return [render("t", "i", "refined") for _ in chats]


@pytest.fixture
def guard_app(serve_app):
    from vlmguard.guard import Guard, GuardConfig
    from vlmguard.server import create_app
    from vlmguard.service import ServeConfig

    def start(rewriter, **limits):
        guard = Guard(rewriter, _Slow(0.0), GuardConfig(rewrite=SamplingParams(max_new_tokens=4)))
        return serve_app(create_app(guard, "g", max_batch=1, config=ServeConfig(**limits)))
    return start


def test_busy_server_answers_429_and_slow_requests_504(guard_app):
    url = guard_app(_Slow(0.4), max_concurrency=2, request_timeout=5)

    async def burst():
        async with httpx.AsyncClient(timeout=30) as c:
            rs = await asyncio.gather(*[c.post(url + "/chat/completions", json={
                "messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 4}) for i in range(8)])
        return rs
    rs = asyncio.run(burst())
    codes = sorted(r.status_code for r in rs)
    assert codes.count(200) >= 2 and codes.count(429) >= 1 and set(codes) <= {200, 429}
    busy = next(r for r in rs if r.status_code == 429)
    assert busy.headers["retry-after"] == "1" and busy.json()["error"]["type"] == "rate_limit_error"
    slow = guard_app(_Slow(2.0), request_timeout=0.5)
    r = httpx.post(slow + "/chat/completions", json={"messages": [{"role": "user", "content": "q"}]}, timeout=30)
    assert r.status_code == 504 and "longer than 0.5 s" in r.json()["error"]["message"]


def test_refined_prompt_reaches_the_target_and_analysis_is_parsed(guard_app):
    url = guard_app(_Slow(0.0))
    r = OpenAI(base_url=url, api_key="x", max_retries=0).chat.completions.create(
        model="g", messages=[{"role": "user", "content": "how?"}], extra_body={"vlmguard": {"analysis": True}})
    extra = r.model_dump()["vlmguard"]
    assert extra == {"threat": "t", "intent": "i", "prompt": "refined", "fallback_used": False, "problems": []}


def test_serve_errors_before_loading(tmp_path):
    from conftest import run_cli

    out = run_cli("serve", "--rewriter", "hf:/nope/rewriter", "--target", "openai:http://127.0.0.1:9/v1")
    assert out.returncode == 1 and "model directory not found" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "s.yaml").write_text("fallbak: original\n")
    out = run_cli("serve", "--config", str(tmp_path / "s.yaml"))
    assert out.returncode == 1 and "unknown key(s) fallbak" in out.stderr
    out = run_cli("serve", "--rewriter", "hf:/x", "--target", "hf:/y", "--api-key-file", str(tmp_path / "none"))
    assert out.returncode == 1 and "api key file" in out.stderr
    out = run_cli("serve", "--rewriter", "hf:/x", "--target", "hf:/y", "--threat-threshold", "1.2")
    assert out.returncode == 1 and "threat_threshold 1.2" in out.stderr and "Traceback" not in out.stderr


def test_access_log_has_no_content_by_default(guard_app):
    import logging

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())
    logger = logging.getLogger("vlmguard.access")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        url = guard_app(_Slow(0.0))
        httpx.post(url + "/chat/completions", json={"messages": [{"role": "user", "content": "my secret plan"}]})
        quiet = [json.loads(r) for r in records]
        loud_url = guard_app(_Slow(0.0), log_content=True)
        httpx.post(loud_url + "/chat/completions", json={"messages": [{"role": "user", "content": "my secret plan"}]})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert quiet and quiet[-1]["status"] == 200 and quiet[-1]["messages"] == 1 and "latency_s" in quiet[-1]
    assert not any("secret" in r for r in records[:len(quiet)]) and "secret" in records[-1]
