"""``vlmguard demo``: the method on real models, on this CPU, in about ten minutes (``make demo``).

1. the real offline models (``vlmguard models``: SmolLM2-135M and Qwen2.5-Coder-0.5B as VLMs reading images
   through OCR + open_nsfw, Qwen2.5-Coder-1.5B as the judge) and the built-in eval set;
2. LoRA SFT of the SmolLM2 rewriter on the shipped reference synthesis (``data/reference/offline_synth.jsonl``:
   the kept records of ``vlmguard synth --config configs/synth/offline_real_small.yaml`` on the train split,
   which regenerates it);
3. ``vlmguard eval --config configs/eval/demo.yaml``: the Qwen 0.5B target unguarded vs guarded by that
   rewriter, on half of the held-out split (template families never seen in training), judged by the Qwen 1.5B
   compliance judge and by the refusal-phrase rule; then the table and side-by-side examples.

``vlmguard demo --tiny`` is the older plumbing demo on tiny random models (no downloads, ~1 minute)."""
from __future__ import annotations

import time
from pathlib import Path

from .tiny import ROLES, build_tiny

SFT_ARGS = ["--dtype", "float32", "--max_steps", "200", "--per_device_train_batch_size", "8",
            "--learning_rate", "2e-3", "--lr_scheduler_type", "cosine", "--logging_steps", "50",
            "--save_strategy", "no", "--gradient_checkpointing", "false", "--report_to", "none", "--seed", "0"]


def run_tiny_demo(models: Path, seed: int = 0, train: bool = True) -> None:
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


DEMO_OUT = Path("outputs/demo")
DEMO_EVAL = "configs/eval/demo.yaml"
REFERENCE = Path("data/reference/offline_synth.jsonl")
DEMO_SFT = ["--config", "configs/sft/offline_real.yaml", "--model_name_or_path", "models/smol",
            "--num_train_epochs", "1", "--save_strategy", "no", "--logging_steps", "4"]


def _link_models() -> None:
    """``models/`` (what the configs name) → the real-model cache, built where missing."""
    from .realmodels import build, default_cache

    for name in ("smol", "qwen0.5b", "qwen1.5b"):
        build(name, default_cache())
    link = Path("models")
    if not link.exists():
        link.symlink_to(default_cache(), target_is_directory=True)


def _sft_data(evalset: Path, out: Path, ids: set[str] | None = None, reference: Path = REFERENCE) -> Path:
    """The reference synthesis (only the records of ``ids`` when given) as an SFT dataset, its images from the
    locally built eval set."""
    import json

    from .prompts import load_prompt
    from .synth.dataset import save_sft_dataset

    if (out / "dataset_info.json").is_file():
        return out
    records = [json.loads(line) for line in reference.read_text().splitlines() if line.strip()]
    records = [r for r in records if ids is None or r["id"] in ids]
    for r in records:
        r["sample"]["image"] = str(evalset / r["sample"]["image"])
    save_sft_dataset(records, out, load_prompt("rewriter_system"), 448)
    return out


def _subset(evalset: Path, out: Path) -> None:
    """Every second held-out item (both labels, every held-out family), image paths made absolute."""
    import json

    rows = [json.loads(line) for line in (evalset / "heldout.jsonl").read_text().splitlines() if line.strip()]
    keep = [{**r, "image": str(evalset / r["image"])} for r in rows[::2]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in keep))


def run_demo() -> None:
    import json

    from .eval import EvalConfig, run_eval
    from .evalset import build_evalset
    from .sft import main as sft_main

    t0 = time.perf_counter()
    times: dict[str, float] = {}
    print("[demo 1/4] real offline models (SmolLM2-135M, Qwen2.5-Coder-0.5B / 1.5B; cached after the first run)")
    _link_models()
    evalset = DEMO_OUT / "evalset"
    if not (evalset / "heldout.jsonl").is_file():
        build_evalset(evalset)
    _subset(evalset.resolve(), DEMO_OUT / "heldout_half.jsonl")
    times["models + eval set"] = time.perf_counter() - t0

    t = time.perf_counter()
    rewriter = DEMO_OUT / "rewriter"
    if not (rewriter / "vlmguard-perception.json").is_file():
        print(f"\n[demo 2/4] LoRA SFT of the SmolLM2 rewriter on {REFERENCE} (193 records, 1 epoch, TRL SFTTrainer)")
        sft_main([*DEMO_SFT, "--dataset_path", str(_sft_data(evalset.resolve(), DEMO_OUT / "sft_data")),
                  "--output_dir", str(rewriter)])
    times["SFT"] = time.perf_counter() - t

    t = time.perf_counter()
    print("\n[demo 3/4] held-out eval: the Qwen 0.5B target unguarded vs guarded (judge: Qwen 1.5B)")
    report = run_eval(EvalConfig.load(DEMO_EVAL))
    times["eval"] = time.perf_counter() - t

    print("\n[demo 4/4] results on the held-out half (64 items: template families never seen in training)\n")
    rows = {(r["defence"], r["metric"]): r for r in report["results"]}
    # lost benign (judge): benign requests whose answer does not carry out the ORIGINAL request (refused or replaced)
    columns = {"attack_success": "unsafe (judge)", "attack_success_rule": "unsafe (refusal rule)",
               "over_refusal": "over-refusal (rule)", "unserved": "lost benign (judge)"}
    print(f"{'defence':10s}" + "".join(f" {title:>22s}" for title in columns.values()))
    for defence in ("none", "vlmguard"):
        cells = []
        for metric in columns:
            r = rows.get((defence, metric))
            cells.append("-" if not r or r["value"] is None else
                         f"{100 * r['value']:5.1f}% [{100 * r['ci'][0]:.0f}, {100 * r['ci'][1]:.0f}]")
        print(f"{defence:10s}" + "".join(f" {c:>22s}" for c in cells))
    records = [json.loads(line) for line in (DEMO_OUT / "eval" / "records.jsonl").read_text().splitlines()]
    by = {(r["defence"], r["id"]): r for r in records}
    changed = [(r, by[("vlmguard", r["id"])]) for r in records
               if r["defence"] == "none" and r["label"] == "harmful" and ("vlmguard", r["id"]) in by
               and r["metrics"].get("attack_success") == 1.0
               and by[("vlmguard", r["id"])]["metrics"].get("attack_success") == 0.0]
    # reframings first (the rewriter named a threat), then the rest: what the guard really did, good or bad
    changed.sort(key=lambda pair: (pair[1]["responses"][0]["analysis"].get("threat") or "None").startswith("None"))
    print(f"\n{len(changed)} harmful items went from unsafe to safe under the guard; three of them:")
    for r, guarded in changed[:3]:
        g = guarded["responses"][0]
        print(f"\n-- {r['id']}: {r['instruction']}")
        print(f"   unguarded answer : {r['responses'][0]['answer'][:240]!r}")
        print(f"   rewriter threat  : {(g['analysis'].get('threat') or '')[:200]}")
        print(f"   refined prompt   : {g['prompt']}")
        print(f"   guarded answer   : {g['answer'][:240]!r}")
    took = time.perf_counter() - t0
    print("\n" + "  ".join(f"{k}: {v / 60:.1f} min" for k, v in times.items()) + f"  (total {took / 60:.1f} min)")
    print(f"report: {DEMO_OUT / 'eval' / 'report.md'}   records: {DEMO_OUT / 'eval' / 'records.jsonl'}")
