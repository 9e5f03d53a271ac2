"""Choosing the guard's ``threat_threshold`` on labelled data (``vlmguard threshold REWRITER --data FILE``).

Every harmful and benign sample is scored by the rewriter's threat decision — 1 − P(the threat opens with
"none"), read by :meth:`Guard.athreat`, the path the guard decides on — and the threshold is the one that
maximises true- minus false-positive rate (Youden's J) on those samples. Choose it on training data, never on
the split you report. ``--save`` records the choice in the rewriter's folder (``vlmguard-threshold.json``), where
``threat_threshold: auto`` finds it and ``vlmguard export`` carries it to the published model."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .backends import Backend, parse_spec, run_sync
from .chat import user_chat
from .errors import VLMGuardError
from .schema import Sample, load_samples

log = logging.getLogger(__name__)


def youden(scores: Sequence[float], harmful: Sequence[bool]) -> float:
    """The threshold (one of ``scores``) that maximises true-positive minus false-positive rate when a sample is
    flagged at ``score >= threshold``; the lowest such threshold on ties."""
    if not scores:
        raise VLMGuardError("no scores to choose a threshold from")
    pos, neg = max(1, sum(harmful)), max(1, len(harmful) - sum(harmful))

    def gain(t: float) -> float:
        return (sum(s >= t and h for s, h in zip(scores, harmful)) / pos
                - sum(s >= t and not h for s, h in zip(scores, harmful)) / neg)
    return max(sorted(set(scores)), key=gain)


@dataclass
class ThresholdChoice:
    threshold: float
    auroc: float | None
    harmful: int
    benign: int
    flagged_harmful: int
    flagged_benign: int
    unscored: int
    """Samples whose scoring call failed (logged; left out of the choice)."""

    def summary(self) -> str:
        auroc = "n/a" if self.auroc is None else f"{self.auroc:.3f}"
        return (f"threat AUROC {auroc} on {self.harmful} harmful / {self.benign} benign samples"
                f"{f' ({self.unscored} unscored)' if self.unscored else ''}; at threshold {self.threshold:.4f}: "
                f"{self.flagged_harmful}/{self.harmful} harmful and {self.flagged_benign}/{self.benign} benign flagged")


def labelled(samples: Sequence[Sample], where: str) -> list[Sample]:
    """The samples, checked to carry a harmful/benign label and both labels to occur."""
    for i, s in enumerate(samples):
        if s.label not in ("harmful", "benign"):
            raise VLMGuardError(f"{where}: sample {s.id!r} (row {i}) has label {s.label!r}; choosing a threshold "
                                "needs every sample labelled 'harmful' or 'benign'")
    if len({s.label for s in samples}) < 2:
        raise VLMGuardError(f"{where}: choosing a threshold needs both harmful and benign samples")
    return list(samples)


def threat_scores(rewriter: str | Backend, samples: Sequence[Sample], progress: bool = True,
                  chunk: int = 32) -> list[float | None]:
    """1 − P(the threat opens with "none") per sample, read by the guard's own path (None where the call failed,
    logged by the backend)."""
    from .guard import Guard

    guard, reads = Guard(rewriter), []
    try:
        with tqdm(total=len(samples), desc="threat scores", unit="sample", disable=not progress) as bar:
            for i in range(0, len(samples), chunk):
                part = samples[i:i + chunk]
                reads += run_sync(guard.athreat([user_chat(s.instruction, s.image_path()) for s in part], "none"))
                bar.update(len(part))
    finally:
        guard.close()
    return [None if r is None else r.score for r in reads]


def choose_threshold(rewriter: str | Backend, samples: Sequence[Sample], where: str = "samples",
                     progress: bool = True, chunk: int = 32) -> tuple[ThresholdChoice, list[float | None]]:
    """Score ``samples`` with the rewriter's threat decision and choose the threshold; returns the choice and the
    per-sample scores (None where scoring failed)."""
    from .rewards.metrics import auroc

    samples = labelled(samples, where)
    scores = threat_scores(rewriter, samples, progress, chunk)
    kept = [(sc, s.harmful) for sc, s in zip(scores, samples) if sc is not None]
    if not kept:
        raise VLMGuardError(f"{where}: the rewriter scored none of {len(samples)} samples (see the log)")
    if len(kept) < len(samples):
        log.warning("%s: %d of %d samples could not be scored; choosing on the rest", where,
                    len(samples) - len(kept), len(samples))
    ks, kh = [k[0] for k in kept], [k[1] for k in kept]
    t = youden(ks, kh)
    choice = ThresholdChoice(threshold=t, auroc=auroc(ks, kh), harmful=sum(kh), benign=len(kh) - sum(kh),
                             flagged_harmful=sum(s >= t and h for s, h in kept),
                             flagged_benign=sum(s >= t and not h for s, h in kept),
                             unscored=len(samples) - len(kept))
    return choice, scores


THRESHOLD_FILE = "vlmguard-threshold.json"
"""A threshold chosen for the rewriter whose folder holds it: the :func:`choice_record` that ``choice.json`` holds."""


def choice_record(choice: ThresholdChoice, rewriter: str, data: str) -> dict:
    """What ``--out`` (``choice.json``) and ``--save`` (:data:`THRESHOLD_FILE`) write: the rewriter, the data the
    threshold was chosen on and the choice (``threshold``, AUROC, counts)."""
    return {"rewriter": rewriter, "data": data, **asdict(choice)}


def _location(rewriter: str) -> str:
    try:
        return parse_spec(rewriter)[1]
    except VLMGuardError:  # a plain path
        return rewriter


def rewriter_folder(rewriter: str, where: str) -> Path:
    """The local model folder a rewriter spec (or plain path) names; an error for anything else."""
    location = _location(rewriter)
    if not Path(location).is_dir():
        raise VLMGuardError(f"{where}: {rewriter!r} is not a local model folder; a recorded threshold lives in the "
                            "rewriter's folder (download a Hub rewriter first, or give the number its model card "
                            "states)")
    return Path(location)


def threshold_folder(rewriter: str, where: str) -> Path | None:
    """Where the rewriter's recorded threshold file is: its local folder, or for a Hub model id (an exported
    rewriter) the Hugging Face cache folder the file is fetched into (offline: the cached copy); None when the
    Hub repo has none. Anything else is an error."""
    location = _location(rewriter)
    if Path(location).is_dir():
        return Path(location)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HFValidationError, HfHubHTTPError,
                                        LocalEntryNotFoundError)
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(location)
    except HFValidationError:
        raise VLMGuardError(f"{where}: {rewriter!r} is neither a local model folder nor a Hub model id, where a "
                            "recorded threshold lives with the weights; give the number its model card "
                            "states") from None
    try:
        return Path(hf_hub_download(location, THRESHOLD_FILE)).parent
    except LocalEntryNotFoundError:  # offline, not cached (a subclass of EntryNotFoundError: first)
        raise VLMGuardError(f"{where}: {THRESHOLD_FILE} of the Hub rewriter {location!r} is not in the Hugging Face "
                            f"cache and the Hub is not reachable or HF_HUB_OFFLINE is set: fetch it once online "
                            f"(hf download {location} {THRESHOLD_FILE}), or give the number its model card "
                            "states") from None
    except EntryNotFoundError:
        return None
    except (HfHubHTTPError, OSError) as e:
        raise VLMGuardError(f"{where}: cannot fetch {THRESHOLD_FILE} of the Hub rewriter {location!r} "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def record_threshold(rewriter: str, choice: ThresholdChoice, data: str) -> Path:
    """Write ``choice`` into the rewriter's folder, where ``threat_threshold: auto`` reads it."""
    path = rewriter_folder(rewriter, "--save") / THRESHOLD_FILE
    path.write_text(json.dumps(choice_record(choice, rewriter, data), indent=1))
    return path


def forget_threshold(folder: str | Path) -> None:
    """New weights were just saved in ``folder``: a threshold recorded there was chosen for the ones they replaced
    (training moves the whole P(none) scale), so it is removed, loudly, and ``auto`` asks for a new choice."""
    path = Path(folder) / THRESHOLD_FILE
    if path.is_file():
        path.unlink()
        log.warning("removed %s: it was chosen for the weights this run replaced; choose again with "
                    "vlmguard threshold %s --data TRAIN.jsonl --save", path, folder)


def read_threshold_file(folder: str | Path) -> dict | None:
    """The threshold recorded in a model folder (None: none recorded); malformed files are an error."""
    path = Path(folder) / THRESHOLD_FILE
    if not path.is_file():
        return None
    from .guard import is_probability

    try:
        record = json.loads(path.read_text())
        t = record["threshold"]
        if not is_probability(t):
            raise ValueError(f"threshold {t!r} is not a probability")
    except (ValueError, KeyError, TypeError) as e:
        raise VLMGuardError(f"{path} is malformed ({e}); rerun vlmguard threshold REWRITER --data TRAIN --save, "
                            "or delete it") from None
    return record


def recorded_threshold(rewriter: str, where: str = "threat_threshold: auto", quiet: bool = False) -> float:
    """The threshold recorded for this rewriter (``threat_threshold: auto``): in its folder, or in its Hub repo
    (``vlmguard export`` pushes the file); logged unless ``quiet``."""
    folder = threshold_folder(rewriter, where)
    record = None if folder is None else read_threshold_file(folder)
    if record is None:
        raise VLMGuardError(f"{where}: {rewriter!r} has no recorded threshold ({THRESHOLD_FILE}); choose one on "
                            f"training data: vlmguard threshold {rewriter!r} --data TRAIN.jsonl --save")
    if not quiet:
        log.info("%s: threat threshold %.4f, recorded by vlmguard threshold on %s", rewriter, record["threshold"],
                 record.get("data", "?"))
    return float(record["threshold"])


def run_threshold(rewriter: str, data: str, out: str | None = None, limit: int | None = None,
                  save: bool = False) -> ThresholdChoice:
    """``vlmguard threshold``: choose on ``data``, print the summary and the option to pass; with ``out``, write
    ``choice.json`` and ``scores.jsonl`` (id, label, score) there; with ``save``, record the choice in the
    rewriter's folder (checked to be one before any scoring)."""
    if save:
        rewriter_folder(rewriter, "--save")
    samples = load_samples(data, limit)
    choice, scores = choose_threshold(rewriter, samples, data)
    print(choice.summary())
    print(f"use: --threat-threshold {choice.threshold:.4f}   (GuardConfig(threat_threshold={choice.threshold:.4f}))")
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "choice.json").write_text(json.dumps(choice_record(choice, rewriter, data), indent=1))
        (folder / "scores.jsonl").write_text("".join(json.dumps({"id": s.id, "label": s.label, "score": sc}) + "\n"
                                                     for s, sc in zip(samples, scores)))
        print(f"written: {folder / 'choice.json'}, {folder / 'scores.jsonl'}")
    if save:
        print(f"recorded: {record_threshold(rewriter, choice, data)} (use it with --threat-threshold auto)")
    return choice
