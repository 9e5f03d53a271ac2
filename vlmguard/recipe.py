"""``vlmguard recipe --config FILE``: a multi-stage recipe (eval set → synthesis → SFT → merge → GRPO → eval) as
one resumable command, with a per-stage timing table.

The YAML lists stages, each a command line and the file that exists once the stage is complete::

    out: outputs/offline_real
    stages:
      - {name: sft, run: "vlmguard sft --config configs/sft/offline_real.yaml",
         done: outputs/offline_real/sft/adapter_config.json}

Stages run in order as subprocesses (each shows its own progress bar and resumes its own work: synthesis and
eval skip stored records, training resumes from its last checkpoint); a stage whose ``done`` file exists is
skipped, so after a crash the same command continues where it stopped. ``--only NAME`` runs one stage (done or
not), ``--from NAME`` reruns from that stage on. Wall times go to ``OUT/timing.json`` and ``OUT/timing.md``.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import VLMGuardError


@dataclass
class Stage:
    name: str
    run: str
    done: str


def load_recipe(path: str) -> tuple[Path, list[Stage]]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise VLMGuardError(f"cannot read recipe {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list) or not data.get("out"):
        raise VLMGuardError(f"{path}: a recipe has `out: DIR` and `stages:` (a list of {{name, run, done}})")
    stages = []
    for i, s in enumerate(data["stages"]):
        missing = [k for k in ("name", "run", "done") if not isinstance(s, dict) or not isinstance(s.get(k), str)]
        if missing:
            raise VLMGuardError(f"{path}: stages[{i}] needs {', '.join(missing)} (strings)")
        stages.append(Stage(s["name"], s["run"], s["done"]))
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise VLMGuardError(f"{path}: stage names must be unique ({', '.join(names)})")
    return Path(data["out"]), stages


def _argv(command: str) -> list[str]:
    """``vlmguard ...`` and ``python ...`` run with this interpreter (the recipe's own environment)."""
    argv = shlex.split(command)
    if argv and argv[0] == "vlmguard":
        return [sys.executable, "-m", "vlmguard", *argv[1:]]
    if argv and argv[0] in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    return argv


def write_timing(out: Path, timing: dict[str, dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    lines = ["| stage | wall time | finished |", "|---|---:|---|"]
    total = 0.0
    for name, t in timing.items():
        total += t["seconds"]
        lines.append(f"| {name} | {t['seconds'] / 60:.1f} min | {t['finished']} |")
    lines.append(f"| **total** | **{total / 60:.1f} min** | |")
    (out / "timing.md").write_text("\n".join(lines) + "\n")


def run_recipe(path: str, only: str | None = None, start: str | None = None) -> dict[str, dict]:
    out, stages = load_recipe(path)
    names = [s.name for s in stages]
    for flag, value in (("--only", only), ("--from", start)):
        if value is not None and value not in names:
            raise VLMGuardError(f"{flag} {value!r}: no such stage (stages: {', '.join(names)})")
    timing_file = out / "timing.json"
    timing: dict[str, dict] = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    forced = {only} if only else set(names[names.index(start):]) if start else set()
    for i, stage in enumerate(stages, 1):
        if only and stage.name != only:
            continue
        head = f"[recipe {i}/{len(stages)}] {stage.name}"
        if stage.name not in forced and Path(stage.done).exists():
            print(f"{head}: done ({stage.done} exists), skipped", flush=True)
            continue
        print(f"{head}: {stage.run}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call(_argv(stage.run), env={**os.environ, "HF_HUB_OFFLINE": os.environ.get(
            "HF_HUB_OFFLINE", "1")})
        seconds = time.perf_counter() - t0
        if code != 0:
            raise VLMGuardError(f"stage {stage.name!r} failed (exit {code}) after {seconds:.0f} s; fix it and rerun "
                                f"the same command: finished stages are skipped and this one resumes")
        if not Path(stage.done).exists():
            raise VLMGuardError(f"stage {stage.name!r} finished but did not write {stage.done}: check its `done`")
        timing[stage.name] = {"seconds": round(seconds, 1), "finished": time.strftime("%Y-%m-%d %H:%M")}
        write_timing(out, timing)
        print(f"{head}: finished in {seconds / 60:.1f} min", flush=True)
    write_timing(out, timing)
    print(f"per-stage timing: {out / 'timing.md'}")
    return timing
