"""``vlmguard demo``: build the tiny models, SFT the tiny rewriter, and guard the built-in example images
with the untrained and the trained rewriter side by side."""
from __future__ import annotations

import time
from pathlib import Path

from .tiny import ROLES, build_tiny

SFT_ARGS = ["--dtype", "float32", "--max_steps", "200", "--per_device_train_batch_size", "8",
            "--learning_rate", "2e-3", "--lr_scheduler_type", "cosine", "--logging_steps", "50",
            "--save_strategy", "no", "--gradient_checkpointing", "false", "--report_to", "none", "--seed", "0"]


def run_demo(models: Path, seed: int = 0, train: bool = True) -> None:
    from .backends import SamplingParams, load_backend
    from .chat import user_chat
    from .examples import write_examples
    from .guard import Guard, GuardConfig

    if not all((models / r / "config.json").is_file() for r in ROLES):
        print(f"building tiny models in {models}/ ...")
        build_tiny(models, seed)
    trained = models / "rewriter-sft"
    if train and not (trained / "model.safetensors").is_file():
        print(f"\nfine-tuning the tiny rewriter on {models / 'data' / 'sft'} (TRL SFTTrainer, 200 steps, CPU) ...")
        from .sft import main as sft_main

        sft_main(["--model_name_or_path", str(models / "rewriter"), "--dataset_path", str(models / "data" / "sft"),
                  "--output_dir", str(trained), *SFT_ARGS])
    examples = write_examples(models / "examples")
    chats = [user_chat(ex.instruction, path) for ex, path in examples]
    target = load_backend(f"hf:{models / 'target'}")
    rewriters = [("untrained rewriter", models / "rewriter")] + ([("SFT rewriter", trained)] if train else [])
    print("\nThe target is a random tiny model, so its answers are noise; what to watch is the rewriter: untrained,\n"
          "its output does not parse and the fallback (send the original instruction) applies; after SFT it writes\n"
          "the <threat>/<intent>/<prompt> format, and only the refined <prompt> reaches the target.\n")
    for title, path in rewriters:
        config = GuardConfig(rewrite=SamplingParams(max_new_tokens=160), answer=SamplingParams(max_new_tokens=24))
        guard = Guard(f"hf:{path}", target, config)
        start = time.perf_counter()
        results = guard.run(chats)
        took = time.perf_counter() - start
        print(f"==================== {title} ({path}) ====================")
        for (ex, image), r in zip(examples, results):
            print(f"-- {ex.name} ({ex.label})  image: {image}")
            print(f"   instruction : {ex.instruction}")
            if r.parsed.usable:
                print(f"   threat      : {r.parsed.threat}")
                print(f"   intent      : {r.parsed.intent}")
                print(f"   prompt      : {r.prompt}")
            else:
                print(f"   rewriter    : {r.completion[:100]!r}...")
                print(f"   prompt      : {r.prompt}   [fallback: {'; '.join(r.parsed.problems[:2])}]")
            print(f"   answer      : {r.answer!r}")
        s = guard.stats
        print(f"{len(results)} examples in {took:.2f} s: {len(results) - s['unparsed']} rewrites parsed, "
              f"{s['fallbacks']} fallbacks\n")
