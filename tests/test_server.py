"""The project's OpenAI-compatible server, spoken to over real HTTP on 127.0.0.1."""
import concurrent.futures as cf

import httpx

from vlmguard.chat import to_openai, user_chat
from vlmguard.examples import EXAMPLES


def _body(**kw):
    return {"model": "tiny-target", "messages": to_openai(user_chat("What is this?", EXAMPLES[0].image())),
            "max_tokens": 6, "temperature": 0, **kw}


def test_models_and_completion(target_server):
    assert httpx.get(f"{target_server}/models").json()["data"][0]["id"] == "tiny-target"
    r = httpx.post(f"{target_server}/chat/completions", json=_body(n=2), timeout=60).json()
    assert r["object"] == "chat.completion" and len(r["choices"]) == 2
    assert r["choices"][0]["message"]["content"] == r["choices"][1]["message"]["content"]  # greedy


def test_bad_requests_get_openai_errors(target_server):
    post = lambda body: httpx.post(f"{target_server}/chat/completions", json=body, timeout=60)  # noqa: E731
    r = post(_body(model="other"))
    assert r.status_code == 404 and "serves 'tiny-target'" in r.json()["error"]["message"]
    r = post(_body(stream=True, n=2))
    assert r.status_code == 400 and "stream=true supports n=1" in r.json()["error"]["message"]
    r = post(_body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]))
    assert r.status_code == 400 and "messages[0].content[0]" in r.json()["error"]["message"]
    r = post(_body(messages=[]))
    assert r.status_code == 400
    r = httpx.post(f"{target_server}/chat/completions", content=b"{not json", timeout=60)
    assert r.status_code == 400


def test_continue_final_message_needs_what_vllm_needs(target_server):
    post = lambda body: httpx.post(f"{target_server}/chat/completions", json=body, timeout=60)  # noqa: E731
    started = {"messages": _body()["messages"] + [{"role": "assistant", "content": "Sure"}]}
    r = post(_body(**started, continue_final_message=True))
    assert r.status_code == 400 and "add_generation_prompt: false" in r.json()["error"]["message"]
    r = post(_body(continue_final_message=True, add_generation_prompt=False))
    assert r.status_code == 400 and "last message to be an assistant message" in r.json()["error"]["message"]
    assert post(_body(**started, continue_final_message=True, add_generation_prompt=False)).status_code == 200


def test_stream_wire_format(target_server):
    """Server-Sent Events as ``vllm serve`` sends them: role chunk, content chunks, a stop chunk, ``[DONE]``; the
    stream bypasses the batcher."""
    import json

    health = target_server.removesuffix("/v1") + "/health"
    before = httpx.get(health).json()
    with httpx.stream("POST", f"{target_server}/chat/completions", json=_body(stream=True), timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == httpx.post(f"{target_server}/chat/completions", json=_body(), timeout=60).json()[
        "choices"][0]["message"]["content"]
    after = httpx.get(health).json()
    assert after["streams"] - before["streams"] == 1 and after["generations"] - before["generations"] == 1


def test_concurrent_requests_are_batched(target_server):
    health = target_server.removesuffix("/v1") + "/health"
    before = httpx.get(health).json()
    with cf.ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda i: httpx.post(f"{target_server}/chat/completions",
                                                  json=_body(max_tokens=4 + i % 2), timeout=60), range(8)))
    assert all(o.status_code == 200 for o in outs)
    after = httpx.get(health).json()
    generations, batches = after["generations"] - before["generations"], after["batches"] - before["batches"]
    assert generations == 8 and batches < 8  # two sampling settings, so at least two batches


def test_greedy_requests_with_different_seeds_share_a_batch(target_server):
    """A seed means nothing to greedy decoding, so it must not split the micro-batch (the openai backend sends
    seed + i per request when it samples; the eval's throughput depends on this)."""
    from vlmguard.backends import SamplingParams, load_backend

    health = target_server.removesuffix("/v1") + "/health"
    before = httpx.get(health).json()
    with cf.ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda i: httpx.post(f"{target_server}/chat/completions", json=_body(seed=i),
                                                  timeout=60), range(8)))
    assert len({o.json()["choices"][0]["message"]["content"] for o in outs}) == 1
    after = httpx.get(health).json()
    assert after["generations"] - before["generations"] == 8 and after["batches"] - before["batches"] <= 3
    backend = load_backend(f"openai:{target_server}?model=tiny-target")
    chat = user_chat("What is this?")
    assert "seed" not in backend._payload(chat, SamplingParams(seed=3), 1)
    assert backend._payload(chat, SamplingParams(seed=3, temperature=0.7), 1)["seed"] == 4
