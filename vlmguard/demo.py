"""``vlmguard demo``: build the tiny models if needed and guard the built-in example images."""
from __future__ import annotations

import time
from pathlib import Path

from .tiny import ROLES, build_tiny


def run_demo(models: Path, seed: int = 0) -> None:
    from .backends import SamplingParams
    from .chat import user_chat
    from .examples import write_examples
    from .guard import Guard, GuardConfig

    if not all((models / r / "config.json").is_file() for r in ROLES):
        print(f"building tiny models in {models}/ ...")
        build_tiny(models, seed)
    examples = write_examples(models / "examples")
    config = GuardConfig(rewrite=SamplingParams(max_new_tokens=48), answer=SamplingParams(max_new_tokens=32))
    guard = Guard(f"hf:{models / 'rewriter'}", f"hf:{models / 'target'}", config)
    print("The tiny models are randomly initialised: their text is noise, so the rewriter's output does not parse\n"
          "and the fallback policy (send the original instruction) applies. Train a rewriter (vlmguard sft/grpo)\n"
          "or pass real models with `vlmguard chat --rewriter SPEC --target SPEC`.\n")
    start = time.perf_counter()
    results = guard.run([user_chat(ex.instruction, path) for ex, path in examples])
    took = time.perf_counter() - start
    for (ex, path), r in zip(examples, results):
        print(f"== {ex.name} ({ex.label})  image: {path}")
        print(f"   instruction : {ex.instruction}")
        print(f"   threat      : {r.parsed.threat!r}")
        print(f"   intent      : {r.parsed.intent!r}")
        print(f"   rewriter raw: {r.completion!r}")
        print(f"   prompt      : {r.prompt!r}" + (f"  [fallback: {'; '.join(r.parsed.problems[:3])}]"
                                                     if r.fallback_used else ""))
        print(f"   answer      : {r.answer!r}\n")
    s = guard.stats
    print(f"{len(results)} examples in {took:.2f} s (batched): {s['unparsed']} rewrites unparsed, "
          f"{s['fallbacks']} fallbacks, {s['refused']} refused")
