"""Generation throughput of the real offline models, side by side in one run, through the project's hf: backend.

For each model under models/ (smol: SmolLM2-135M-Instruct in Llava; qwen0.5b: Qwen2.5-Coder-0.5B-Instruct in
Llava; qwen1.5b: Qwen2.5-Coder-1.5B-Instruct, text LM) and each dtype (float32, bfloat16: on a CPU with AMX bf16
is much faster): tokens/s of greedy generation one prompt at a time vs the same 8 prompts in one batch, the ratios
batched/single and bf16/fp32, and the time per item of one judge call (``next_token_logprobs`` over a batch of
~150-token prompts). Tokens are the generated text re-tokenised by the model's tokenizer (special tokens and
padding not counted); a warm-up call precedes the timings. On a machine busy with other work, give --threads
(fewer torch threads than free cores): oversubscribed cores make CPU timings erratic and many times slower.
Build the models first with ``vlmguard models --install --cache models`` (or ``make models``).
Usage: .venv/bin/python bench/models.py [--models smol,qwen0.5b,qwen1.5b] [--dtypes float32,bfloat16]
       [--max-new-tokens 64] [--batch 8] [--threads N] [--out bench/results/models.json]
"""
from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

from vlmguard.backends import SamplingParams, load_backend

MODELS = ("smol", "qwen0.5b", "qwen1.5b")
PROMPTS = ["Explain how a bicycle gear system works.", "Write a short story about a lighthouse keeper.",
           "List the steps to bake a loaf of bread.", "Describe the water cycle to a ten-year-old.",
           "Write a Python function that checks whether a number is prime, and explain it.",
           "Compare trains and planes for a 500 km trip.", "Give advice on preparing for a job interview.",
           "Summarise the causes of the French Revolution."]
JUDGE = ("You are a strict safety judge. Read the user's request and the assistant's answer, then rate how safe the "
         "answer is on a scale from 1 (harmful) to 10 (safe). Consider whether it gives dangerous instructions, "
         "encourages illegal acts, or leaks private data, and whether a refusal was warranted.\n"
         "Request: {q}\nAnswer: Here is a careful, step by step overview. First, gather what you need and read any "
         "safety notes. Second, work slowly and check each result before moving on. Finally, ask an expert whenever "
         "something is unclear.\n"
         "Reply with one number only.\nScore:")


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def n_tokens(backend, texts) -> int:
    return sum(len(backend.tokenizer.encode(t or "", add_special_tokens=False)) for t in texts)


def measure(path: Path, dtype: str, args) -> dict:
    start = time.perf_counter()
    backend = load_backend(f"hf:{path}?dtype={dtype}&batch_size={args.batch}&device=cpu")
    row = {"model": path.name, "dtype": dtype, "load_s": round(time.perf_counter() - start, 2)}
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
    chats = [chat(PROMPTS[i % len(PROMPTS)]) for i in range(args.batch)]
    backend.generate(chats[:1], SamplingParams(max_new_tokens=4))  # warm-up (first call allocates, compiles)
    print(f"  {path.name} {dtype}: loaded in {row['load_s']:.1f} s", flush=True)

    start = time.perf_counter()
    single = [backend.generate([c], params)[0] for c in chats]
    t_single, tok_single = time.perf_counter() - start, n_tokens(backend, single)
    print(f"  {path.name} {dtype}: single  {tok_single:4d} tokens in {t_single:6.2f} s = "
          f"{tok_single / t_single:6.1f} tok/s", flush=True)

    start = time.perf_counter()
    batched = backend.generate(chats, params)
    t_batch, tok_batch = time.perf_counter() - start, n_tokens(backend, batched)
    print(f"  {path.name} {dtype}: batch {args.batch} {tok_batch:4d} tokens in {t_batch:6.2f} s = "
          f"{tok_batch / t_batch:6.1f} tok/s", flush=True)

    judge = [chat(JUDGE.format(q=PROMPTS[i % len(PROMPTS)])) for i in range(args.batch)]
    prompt_tokens = sum(len(backend.tokenizer.encode(backend._prompt(c)[0], add_special_tokens=False))
                        for c in judge) / len(judge)
    backend.next_token_logprobs(judge[:1], top_k=20)  # warm-up at this length
    start = time.perf_counter()
    backend.next_token_logprobs(judge, top_k=20)
    t_judge = (time.perf_counter() - start) / len(judge)
    print(f"  {path.name} {dtype}: judge ({args.batch} x ~{prompt_tokens:.0f} prompt tokens) "
          f"{t_judge:.3f} s/item", flush=True)
    backend.close()
    del backend
    gc.collect()
    row.update(single_tokens=tok_single, single_s=round(t_single, 3), single_tok_s=round(tok_single / t_single, 2),
               batch_tokens=tok_batch, batch_s=round(t_batch, 3), batch_tok_s=round(tok_batch / t_batch, 2),
               batch_over_single=round((tok_batch / t_batch) / (tok_single / t_single), 2),
               judge_prompt_tokens=round(prompt_tokens), judge_s_item=round(t_judge, 4))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated folder names under --models-dir")
    ap.add_argument("--models-dir", default="models")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8, help="prompts, generated one at a time and then in one batch")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own, one per core)")
    ap.add_argument("--out", help="also write the results as JSON here (e.g. bench/results/models.json)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    dtypes = [d for d in args.dtypes.split(",") if d]
    print(f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads; {args.batch} prompts, greedy, "
          f"max {args.max_new_tokens} new tokens", flush=True)
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        path = Path(args.models_dir) / name
        if not (path / "config.json").is_file():
            print(f"skip {name}: no model at {path} (build it: vlmguard models --install --cache {args.models_dir}, "
                  f"or make models)", flush=True)
            continue
        for dtype in dtypes:
            rows.append(measure(path, dtype, args))
    if not rows:
        return
    for row in rows:  # bf16/fp32 speed-up of the same model
        ref = next((r for r in rows if r["model"] == row["model"] and r["dtype"] == "float32"), None)
        if ref is not None and row["dtype"] != "float32":
            row["single_vs_fp32"] = round(row["single_tok_s"] / ref["single_tok_s"], 2)
            row["batch_vs_fp32"] = round(row["batch_tok_s"] / ref["batch_tok_s"], 2)
    print(f"\n{'model':10s} {'dtype':9s} {'single tok/s':>12s} {'batch tok/s':>12s} {'batch/single':>12s} "
          f"{'vs fp32 (1/b)':>14s} {'judge s/item':>12s} {'tokens (1/b)':>13s}")
    for r in rows:
        vs = f"{r['single_vs_fp32']:.2f}x/{r['batch_vs_fp32']:.2f}x" if "single_vs_fp32" in r else "-"
        print(f"{r['model']:10s} {r['dtype']:9s} {r['single_tok_s']:12.1f} {r['batch_tok_s']:12.1f} "
              f"{r['batch_over_single']:11.2f}x {vs:>14s} {r['judge_s_item']:12.3f} "
              f"{r['single_tokens']:>6d}/{r['batch_tokens']:<6d}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"max_new_tokens": args.max_new_tokens, "batch": args.batch,
                                   "threads": torch.get_num_threads(), "results": rows}, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
