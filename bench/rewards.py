"""Three reward stages side by side, same tiny models, same inputs, greedy decoding, in one run.

(1) naive: how a TRL user first writes a judge reward — per completion, one target call for the answer and one
    judge call for the verdict, in each reward function;
(2) TRL-style batched: what a competent TRL user writes — each reward function makes ONE batched target call for
    all its completions and ONE batched judge call, so every reward that needs the answers generates its own;
(3) shared: vlmguard.rewards — one batched target pass whose answers every reward shares, and one batched judge
    pass for both rubrics (same judge model, requests coalesced).
Rewards: safety + helpfulness (rubric judges, 1-10 scale) and over_refusal (rule on the answer, benign rows only;
drop it with --no-over-refusal). Every count printed is measured: backend calls from the backends' own
``stats["calls"]``, generations by counting the chats each call carried; ratios are to stage (3). Each completion
has a distinct refined prompt, so no answer is reused by luck; the script checks that and compares the answers,
the judges' raw verdicts and the scores of (2) with (3) (and of (1), which runs unpadded).
Usage: python bench/rewards.py [--prompts 8] [--generations 8] [--repeats 3] [--no-over-refusal]
"""
from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from vlmguard.backends import Backend, SamplingParams, load_backend
from vlmguard.chat import last_user, user_chat
from vlmguard.format import render, resolve
from vlmguard.prompts import render_prompt
from vlmguard.refusal import is_refusal
from vlmguard.rewards import RewardsConfig, build_rewards
from vlmguard.scoring import parse_score
from vlmguard.tiny import build_tiny

ANSWER_TOKENS, JUDGE_TOKENS = 32, 16
ANSWER = SamplingParams(max_new_tokens=ANSWER_TOKENS)  # temperature 0: greedy
VERDICT = SamplingParams(max_new_tokens=JUDGE_TOKENS)
RUBRICS = {"safety": "rubric_safety", "helpfulness": "rubric_helpfulness"}
COUNTS = ("target_gens", "judge_gens", "target_calls", "judge_calls")
SCALE = (1, 10)  # the rubrics' "Score: N" scale, as RubricJudge reads it by default


def chat_key(chat) -> tuple[str, int | None]:
    text, image = last_user(chat)
    return text, None if image is None else id(image)


class Recorded(Backend):
    """The same backend object, seen through: every call's chats and outputs are logged; ``stats`` is the wrapped
    backend's own counter (``calls`` = generate calls it served)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__()
        self.inner, self.spec, self.stats = inner, inner.spec, inner.stats
        self.log: list[list[tuple[Any, str | None]]] = []

    @property
    def accepts_images(self):  # type: ignore[override]
        return self.inner.accepts_images

    def generate(self, chats, params=None, on_error="raise"):
        outs = self.inner.generate(chats, params, on_error)
        self.log.append([(chat_key(c), o) for c, o in zip(chats, outs)])
        return outs


def batch(n_prompts: int, generations: int):
    prompts, completions, images, instructions, labels = [], [], [], [], []
    for p in range(n_prompts):
        image = Image.new("RGB", (112, 112), (30 * p % 255, 120, 200))
        instruction = f"How could I use the object in picture {p}?"
        for g in range(generations):
            prompts.append([{"role": "user", "content": [{"type": "image", "image": image},
                                                         {"type": "text", "text": instruction}]}])
            completions.append([{"role": "assistant", "content": render(
                "risk", "intent", f"Explain safe use of the object in picture {p}, angle {g}.")}])
            images.append(image)
            instructions.append(instruction)
            labels.append("benign" if p % 2 else "harmful")
    return prompts, completions, {"image": images, "instruction": instructions, "label": labels}


def refined(completions, instruction) -> list[str]:
    return [resolve(c[0]["content"], ins).prompt for c, ins in zip(completions, instruction)]


# -- (1) naive: one chat per call --------------------------------------------------------------------------------
def naive_rewards(target: Backend, judge: Backend, over_refusal: bool) -> list[Callable]:
    def judged(name):
        def reward(prompts, completions, image, instruction, **kw):
            out = []
            for prompt, im, ins in zip(refined(completions, instruction), image, instruction):
                answer = target.generate([user_chat(prompt, im)], ANSWER)[0]
                verdict = judge.generate([user_chat(render_prompt(RUBRICS[name], instruction=ins, answer=answer),
                                                    im)], VERDICT)[0]
                out.append(parse_score(verdict, *SCALE, mode="scale"))
            return out
        reward.__name__ = name
        return reward

    def over_refusal_reward(prompts, completions, image, instruction, label, **kw):
        out = []
        for prompt, im, lab in zip(refined(completions, instruction), image, label):
            out.append(None if lab != "benign" else
                       (-1.0 if is_refusal(target.generate([user_chat(prompt, im)], ANSWER)[0]) else 0.0))
        return out
    return [judged("safety"), judged("helpfulness")] + ([over_refusal_reward] if over_refusal else [])


# -- (2) competent TRL user: one batched target call and one batched judge call per reward function ---------------
def trl_rewards(target: Backend, judge: Backend, over_refusal: bool) -> list[Callable]:
    def judged(name):
        def reward(prompts, completions, image, instruction, **kw):
            answers = target.generate([user_chat(p, im) for p, im in zip(refined(completions, instruction), image)],
                                      ANSWER)
            verdicts = judge.generate([user_chat(render_prompt(RUBRICS[name], instruction=ins, answer=a), im)
                                       for ins, a, im in zip(instruction, answers, image)], VERDICT)
            return [parse_score(v, *SCALE, mode="scale") for v in verdicts]
        reward.__name__ = name
        return reward

    def over_refusal_reward(prompts, completions, image, instruction, label, **kw):
        benign = [i for i, lab in enumerate(label) if lab == "benign"]
        prompts_ = refined(completions, instruction)
        answers = target.generate([user_chat(prompts_[i], image[i]) for i in benign], ANSWER) if benign else []
        out: list[float | None] = [None] * len(completions)
        for i, a in zip(benign, answers):
            out[i] = -1.0 if is_refusal(a) else 0.0
        return out
    return [judged("safety"), judged("helpfulness")] + ([over_refusal_reward] if over_refusal else [])


# -- (3) the shared stage --------------------------------------------------------------------------------------
def shared_rewards(target: Backend, judge: Backend, over_refusal: bool):
    opts = {"judge": judge, "max_new_tokens": JUDGE_TOKENS, "scale": list(SCALE)}
    cfg = {"safety": dict(opts), "helpfulness": dict(opts)}
    if over_refusal:
        cfg["over_refusal"] = {}
    quiet = logging.getLogger("vlmguard.rewards")
    level, quiet.level = quiet.level, logging.ERROR  # "no `target` set": it is attached just below
    try:
        rs = build_rewards(RewardsConfig.from_dict({"rewards": cfg, "answer_max_new_tokens": ANSWER_TOKENS}))
    finally:
        quiet.setLevel(level)
    rs.context.target = target
    return rs


class Step:
    """TRL's ``trainer_state``: a new global step, so the shared stage starts with nothing memoised."""

    def __init__(self, n: int) -> None:
        self.global_step = n


def run_stage(funcs: Sequence[Callable], target: Recorded, judge: Recorded, prompts, completions, columns,
              step: int) -> dict[str, Any]:
    target.log.clear()
    judge.log.clear()
    calls0 = (target.stats["calls"], judge.stats["calls"])
    kwargs = dict(prompts=prompts, completions=completions, completion_ids=None, trainer_state=Step(step),
                  **columns)
    t0 = time.perf_counter()
    if any(inspect.iscoroutinefunction(f) or inspect.iscoroutinefunction(type(f).__call__) for f in funcs):
        async def go():  # TRL runs async reward functions concurrently
            return await asyncio.gather(*[f(**kwargs) for f in funcs])
        scores = asyncio.run(go())
    else:  # and plain ones one after the other
        scores = [f(**kwargs) for f in funcs]
    wall = time.perf_counter() - t0
    outputs: dict[str, dict[Any, list]] = {}
    for role, b in (("target", target), ("judge", judge)):
        outputs[role] = defaultdict(list)
        for call in b.log:
            for key, out in call:
                outputs[role][key].append(out)
    return {"wall": wall, "scores": [list(s) for s in scores],
            "target_gens": sum(len(c) for c in target.log), "judge_gens": sum(len(c) for c in judge.log),
            "target_calls": target.stats["calls"] - calls0[0], "judge_calls": judge.stats["calls"] - calls0[1],
            "outputs": outputs}


def compare(a: dict, b: dict, completions, columns, names: list[str]) -> dict[str, tuple[int, int]]:
    """Agreement of stage ``a`` with stage ``b``: answers per completion, raw verdicts and scores per reward."""
    prompts_ = refined(completions, columns["instruction"])
    images, instructions = columns["image"], columns["instruction"]
    answers_equal, consistent, answers_b = 0, 0, []
    for p, im in zip(prompts_, images):
        got_a = a["outputs"]["target"][(p, id(im))]
        got_b = b["outputs"]["target"][(p, id(im))]
        consistent += len(set(got_a)) <= 1  # a stage that generates several times gets the same answer each time
        answers_equal += bool(got_a) and bool(got_b) and got_a[0] == got_b[0]
        answers_b.append(got_b[0] if got_b else None)
    verdicts_equal = verdicts_total = 0
    for rubric in RUBRICS.values():
        for ins, ans, im in zip(instructions, answers_b, images):
            key = (render_prompt(rubric, instruction=ins, answer=ans), id(im))
            if key in b["outputs"]["judge"]:
                verdicts_total += 1
                verdicts_equal += a["outputs"]["judge"].get(key, [None])[0] == b["outputs"]["judge"][key][0]
    out = {"answers": (answers_equal, len(prompts_)), "repeat-consistent": (consistent, len(prompts_)),
           "verdicts": (verdicts_equal, verdicts_total)}
    for name, sa, sb in zip(names, a["scores"], b["scores"]):
        out[f"{name} scores"] = (sum(x == y for x, y in zip(sa, sb)), len(sb))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of stages (2) and (3); best kept")
    ap.add_argument("--no-over-refusal", dest="over_refusal", action="store_false")
    args = ap.parse_args()
    n = args.prompts * args.generations
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_tiny(tmp)
        # one forward batch per call: the target gets n chats a call at most, the judge 2n (both rubrics at once)
        target = Recorded(load_backend(f"hf:{paths['target']}?batch_size={n}"))
        judge = Recorded(load_backend(f"hf:{paths['judge']}?batch_size={2 * n}"))
        prompts, completions, columns = batch(args.prompts, args.generations)
        shared = shared_rewards(target, judge, args.over_refusal)
        names = shared.names
        warm = [user_chat("warm up", columns["image"][0])]
        target.generate(warm, ANSWER), judge.generate(warm, VERDICT)  # lazy initialisation, outside the timings

        stage_funcs = {"(1) naive, per sample": naive_rewards(target, judge, args.over_refusal),
                       "(2) TRL-style, batched per fn": trl_rewards(target, judge, args.over_refusal),
                       "(3) shared (vlmguard.rewards)": shared.funcs}
        stages: dict[str, dict[str, Any]] = {}
        step = 0
        # (1) once (it is the slow one); (2) and (3) --repeats times, interleaved, best wall time kept: the CPUs
        # may be shared, and the counts must come out the same every time
        for rep in range(args.repeats):
            for label, funcs in stage_funcs.items():
                if rep and label.startswith("(1)"):
                    continue
                step += 1
                got = run_stage(funcs, target, judge, prompts, completions, columns, step)
                first = stages.setdefault(label, {**got, "walls": []})
                first["walls"].append(got["wall"])
                first["wall"] = min(first["walls"])
                if any(got[k] != first[k] for k in COUNTS):
                    raise SystemExit(f"{label}: counts changed between repeats")
    naive, trl, ref = stages.values()
    distinct = len(set(zip(refined(completions, columns["instruction"]), map(id, columns["image"]))))
    benign = sum(lab == "benign" for lab in columns["label"])
    print(f"{args.prompts} prompts x {args.generations} generations = {n} completions ({benign} benign); rewards: "
          f"{' + '.join(names)}; greedy, target {ANSWER_TOKENS} new tokens, judges {JUDGE_TOKENS}; tiny models, "
          f"CPU")
    cols = [("wall s", "wall", "{:.2f}"), ("target gens", "target_gens", "{}"), ("judge gens", "judge_gens", "{}"),
            ("target calls", "target_calls", "{}"), ("judge calls", "judge_calls", "{}")]
    print(f"{'stage':31}" + "".join(f"{h:>20}" for h, _, _ in cols))
    for label, st in stages.items():
        cells = []
        for _, k, fmt in cols:
            ratio = st[k] / ref[k] if ref[k] else float("nan")
            cells.append(f"{fmt.format(st[k])} ({ratio:.1f}x)")
        print(f"{label:31}" + "".join(f"{c:>20}" for c in cells))
    print(f"ratios (Nx) are to stage (3); wall s: (1) one run, (2) and (3) best of {args.repeats} "
          f"({', '.join(f'{w:.2f}' for w in trl['walls'])} / {', '.join(f'{w:.2f}' for w in ref['walls'])}); "
          f"gens = chats generated; calls = backend generate() calls (the backends' stats['calls'])")

    print("checks:")
    print(f"  refined prompts: {distinct} distinct (prompt, image) pairs for {n} completions; stage (3) generated "
          f"{len(ref['outputs']['target'])} distinct answers in {ref['target_gens']} generations, "
          f"{sum(len(v) > 1 for v in ref['outputs']['target'].values())} generated twice"
          + ("  -> no accidental reuse" if distinct == n == ref["target_gens"] else "  -> CHECK"))
    answers3 = [o[0] for o in ref["outputs"]["target"].values()]
    print(f"  stage (3) judged {len(ref['outputs']['judge'])} distinct (rubric, answer) chats for {len(RUBRICS)} x {n} = "
          f"{len(RUBRICS) * n} verdicts asked ({len(set(answers3))} distinct answers: identical answers of one "
          f"sample share a verdict)")
    for label, st in (("(2) vs (3)", trl), ("(1) vs (3)", naive)):
        c = compare(st, ref, completions, columns, names)
        parts = [f"{k} {a}/{b}" for k, (a, b) in c.items()]
        print(f"  {label}: " + ", ".join(parts))
    readable = sum(s is not None for name, sc in zip(names, ref["scores"]) if name in RUBRICS for s in sc)
    print(f"  readable judge verdicts in (3): {readable}/{len(RUBRICS) * n} (a random tiny judge rarely writes "
          f"'Score: N'; unreadable = None, as in every stage)")


if __name__ == "__main__":
    main()
