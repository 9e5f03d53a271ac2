"""Guard latency on the tiny models, side by side in one run.

Prints: the target alone vs the guard (rewrite + answer), both batched; and the guard batched vs one
sample at a time (the way a first script would call it). Usage: python bench/guard.py [--n 32] [--tokens 48]
"""
from __future__ import annotations

import argparse
import tempfile
import time

from vlmguard.backends import SamplingParams, load_backend
from vlmguard.chat import user_chat
from vlmguard.examples import EXAMPLES
from vlmguard.guard import Guard, GuardConfig
from vlmguard.tiny import build_tiny


def timed(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32, help="samples")
    ap.add_argument("--tokens", type=int, default=48, help="new tokens for rewrite and answer")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_tiny(tmp)
        rewriter = load_backend(f"hf:{paths['rewriter']}?batch_size={args.batch_size}")
        target = load_backend(f"hf:{paths['target']}?batch_size={args.batch_size}")
        params = SamplingParams(max_new_tokens=args.tokens)
        guard = Guard(rewriter, target, GuardConfig(rewrite=params, answer=params))
        chats = [user_chat(EXAMPLES[i % len(EXAMPLES)].instruction, EXAMPLES[i % len(EXAMPLES)].image())
                 for i in range(args.n)]
        guard.run(chats[:2])  # warm-up
        t_target = timed(lambda: target.generate(chats, params))
        t_guard = timed(lambda: guard.run(chats))
        t_naive = timed(lambda: [guard.run([c]) for c in chats], repeats=1)
    print(f"{args.n} samples, {args.tokens} new tokens per call, batch size {args.batch_size}, tiny models, CPU")
    print(f"target alone (batched)     {t_target:7.3f} s  {args.n / t_target:7.1f} samples/s")
    print(f"guard (batched)            {t_guard:7.3f} s  {args.n / t_guard:7.1f} samples/s")
    print(f"guard (one at a time)      {t_naive:7.3f} s  {args.n / t_naive:7.1f} samples/s")
    print(f"guard overhead vs target alone: {t_guard / t_target:.2f}x   batched speed-up vs one at a time: "
          f"{t_naive / t_guard:.2f}x")


if __name__ == "__main__":
    main()
