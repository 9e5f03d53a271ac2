"""The guard service's overhead over HTTP: the same requests to the target alone vs through `vlmguard serve`.

One run, same machine, same requests. Starts the tiny target behind ``vlmguard serve-model`` and the guard
(``vlmguard serve``: the tiny rewriter in-process, ``hf:``, the target through its ``openai:`` backend) in
front of it, both as real processes on 127.0.0.1. Sends the same ``--requests`` chat requests (a small image
as a base64 data URL + a short question, ``max_tokens`` 16, greedy) ``--concurrency`` at a time, first to the
target directly, then to the guard; then the same one at a time (per-query overhead without batching).
Repeated ``--repeats`` times, target and guard alternating; each figure is the median over the repeats.
Prints per-request latency (p50, p95), throughput, the ratios guarded/alone and the guard's /health counters.
Reference anchor: MLLM-Protector's guard adds ~1.7x per query.
Usage: python bench/serve.py [--requests 64] [--concurrency 8] [--repeats 3]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from PIL import Image

from vlmguard.tiny import build_tiny

MODEL = "tiny-target"
QUESTIONS = ("What is in this picture?", "What colour is the image?", "Describe the image briefly.",
             "Is there any text here?", "What shape do you see?", "Where could this be?")


def start(args: list[str], log: Path, timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """``python -m vlmguard ARGS --port 0`` with its output in ``log``; waits for the "serving ... at URL" line
    and for /health to answer; returns the process and its /v1 URL."""
    out = log.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "vlmguard", *args, "--host", "127.0.0.1", "--port", "0"],
                            stdout=out, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
                                 "TOKENIZERS_PARALLELISM": "false"})
    out.close()
    deadline, url = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{args[0]} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if url is None:
            line = next((x for x in log.read_text().splitlines() if x.startswith("serving ")), None)
            url = line.split(" at ")[-1].strip() if line else None
        if url is not None:
            try:
                if httpx.get(url.removesuffix("/v1") + "/health", timeout=2).status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{args[0]} did not come up in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def data_url(i: int, size: int = 32) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), ((37 * i) % 256, (91 * i) % 256, (53 * i + 120) % 256)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def bodies(n: int) -> list[dict]:
    return [{"model": MODEL, "max_tokens": 16, "temperature": 0,
             "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(i)}},
                                                       {"type": "text", "text": QUESTIONS[i % len(QUESTIONS)]}]}]}
            for i in range(n)]


async def fire(url: str, requests: list[dict], concurrency: int) -> tuple[list[float], float]:
    """Every request, at most ``concurrency`` in flight; returns the per-request latencies and the wall time.
    A request that fails (non-200 or no text answer) fails the run."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(body: dict) -> None:
            async with sem:
                t = time.perf_counter()
                r = await client.post(url + "/chat/completions", json=body)
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200 or not isinstance(r.json()["choices"][0]["message"]["content"], str):
                    raise RuntimeError(f"{url}: HTTP {r.status_code}: {r.text[:300]}")
        start_t = time.perf_counter()
        await asyncio.gather(*[one(b) for b in requests])
        return latencies, time.perf_counter() - start_t


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=64, help="requests per pass (the same set every pass)")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight in the concurrent pass")
    ap.add_argument("--repeats", type=int, default=3, help="passes per setting; the median is reported")
    ap.add_argument("--sequential-requests", type=int, default=None,
                    help="requests in the one-at-a-time pass (default: --requests)")
    ap.add_argument("--rewrite-tokens", type=int, default=16, help="the guard's rewrite_max_new_tokens")
    args = ap.parse_args()
    c = args.concurrency
    reqs = bodies(args.requests)
    seq_reqs = reqs[:args.sequential_requests or args.requests]
    procs: list[subprocess.Popen] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            paths = build_tiny(tmp / "tiny", roles=("rewriter", "target"))
            batch = max(8, c)
            target, target_url = start(["serve-model", "--model", f"hf:{paths['target']}?batch_size={batch}",
                                        "--name", MODEL, "--max-batch", str(batch), "--batch-wait-ms", "10"],
                                       tmp / "target.log")
            procs.append(target)
            (tmp / "serve.yaml").write_text(yaml.safe_dump({
                "rewrite_max_new_tokens": args.rewrite_tokens, "max_batch": batch, "batch_wait_ms": 10,
                "fallback": "original", "request_timeout": 120}))
            guard, guard_url = start(["serve", "--config", str(tmp / "serve.yaml"), "--rewriter",
                                      f"hf:{paths['rewriter']}?batch_size={batch}", "--target",
                                      f"openai:{target_url}?model={MODEL}&concurrency={batch}&timeout=60"],
                                     tmp / "guard.log")
            procs.append(guard)
            urls = {"alone": target_url, "guarded": guard_url}
            setup_s = time.perf_counter() - t0
            for url in urls.values():  # warm-up: first requests pay for lazy initialisation
                asyncio.run(fire(url, reqs[:c], c))
            sent_to_guard = c
            runs: dict[tuple[str, int], list[tuple[list[float], float]]] = {}
            for _ in range(args.repeats):
                for conc, batch_reqs in ((c, reqs), (1, seq_reqs)):
                    for name, url in urls.items():  # target then guard, back to back, each repeat
                        runs.setdefault((name, conc), []).append(asyncio.run(fire(url, batch_reqs, conc)))
                        sent_to_guard += len(batch_reqs) if name == "guarded" else 0
            health = {name: httpx.get(url.removesuffix("/v1") + "/health", timeout=10).json()
                      for name, url in urls.items()}
        finally:
            for proc in reversed(procs):
                stop(proc)

    def summary(name: str, conc: int) -> dict[str, float]:
        passes = runs[(name, conc)]
        return {"p50": statistics.median(pct(lat, 0.5) for lat, _ in passes),
                "p95": statistics.median(pct(lat, 0.95) for lat, _ in passes),
                "rps": statistics.median(len(lat) / wall for lat, wall in passes)}

    print(f"`vlmguard serve` (tiny rewriter hf:, rewrite_max_new_tokens {args.rewrite_tokens}) in front of "
          f"`vlmguard serve-model` (tiny target, micro-batch {batch}), 127.0.0.1, CPU ({os.cpu_count()} cores)")
    print(f"same requests to both: 32x32 PNG data URL + short question, max_tokens 16, greedy; "
          f"median of {args.repeats} repeats (target and guard alternating); setup {setup_s:.1f} s")
    print(f"{'':26s}{'p50 ms':>9s}{'p95 ms':>9s}{'req/s':>8s}   guarded/alone: p50   p95   throughput")
    for conc, n in ((c, len(reqs)), (1, len(seq_reqs))):
        a, g = summary("alone", conc), summary("guarded", conc)
        for name, s in (("alone", a), ("guarded", g)):
            label = f"{name} c={conc} n={n}"
            ratio = (f"{g['p50'] / a['p50']:17.2f}x {g['p95'] / a['p95']:5.2f}x {g['rps'] / a['rps']:6.2f}x"
                     if name == "guarded" else "")
            print(f"{label:26s}{1000 * s['p50']:9.1f}{1000 * s['p95']:9.1f}{s['rps']:8.2f}  {ratio}")
    print("reference anchor: MLLM-Protector's guard adds ~1.7x per query (latency)")
    g, t = health["guarded"], health["alone"]
    counters = g["counters"]
    print(f"guard /health: rewrites {counters.get('rewrites', 0)} of {sent_to_guard} requests sent (incl. warm-up), "
          f"fallbacks {counters.get('fallbacks', 0)}, rewriter_errors {counters.get('rewriter_errors', 0)}, "
          f"refusals {counters.get('refusals', 0)}, target_errors {counters.get('target_errors', 0)}; "
          f"{g['generations']} guard jobs in {g['batches']} batches")
    print(f"target /health: {t['generations']} generations in {t['batches']} batches "
          f"(direct + forwarded by the guard); total run {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
