import json
import math

import pytest
from conftest import LocalHub

from vlmguard.backends import Backend, SamplingParams
from vlmguard.chat import last_user, user_chat
from vlmguard.cli import main
from vlmguard.errors import VLMGuardError
from vlmguard.guard import Guard, GuardConfig
from vlmguard.schema import Sample, load_samples
from vlmguard.threshold import choose_threshold, youden


def test_youden_picks_the_best_separating_threshold():
    scores = [0.9, 0.8, 0.6, 0.7, 0.2, 0.1]
    harmful = [True, True, True, False, False, False]
    # t=0.6 flags all harmful and one benign (J=2/3); t=0.8 two harmful, no benign (J=2/3); t=0.9: J=1/3
    assert youden(scores, harmful) == 0.6  # ties: the lowest
    assert youden([0.9, 0.8, 0.3, 0.2], [True, True, False, False]) == 0.8
    with pytest.raises(VLMGuardError, match="no scores"):
        youden([], [])


class ScoredRewriter(Backend):
    """P(the threat opens "none") per instruction; None (a failed call) for instructions it does not know."""

    def __init__(self, p_none: dict[str, float]):
        super().__init__()
        self.p_none = p_none

    def next_token_logprobs(self, chats, top_k=20, on_error="raise"):
        out = []
        for c in chats:
            p = self.p_none.get(last_user(c)[0])
            out.append(None if p is None else {"None": math.log(p), "Fraud": math.log(1 - p)})
        return out

    def generate(self, chats, params=None, on_error="raise"):
        return ["x"] * len(chats)


def _samples(rows):
    return [Sample(id=f"r{i}", image=None, instruction=text, label=label) for i, (text, label) in enumerate(rows)]


def test_choose_threshold_scores_like_the_guard_and_counts_failures(caplog):
    rows = [("bomb", "harmful"), ("poison", "harmful"), ("steal", "harmful"), ("cake", "benign"),
            ("kill process", "benign"), ("unknown", "benign")]
    rewriter = ScoredRewriter({"bomb": 0.1, "poison": 0.3, "steal": 0.8, "cake": 0.9, "kill process": 0.6})
    choice, scores = choose_threshold(rewriter, _samples(rows))
    assert scores[:5] == pytest.approx([0.9, 0.7, 0.2, 0.1, 0.4]) and scores[5] is None
    assert choice.threshold == pytest.approx(0.7)  # flags bomb and poison, no benign: J = 2/3
    assert (choice.harmful, choice.benign, choice.unscored) == (3, 2, 1)
    assert (choice.flagged_harmful, choice.flagged_benign) == (2, 0)
    assert choice.auroc == pytest.approx(5 / 6)
    assert "could not be scored" in caplog.text


@pytest.mark.parametrize("rows, match", [([("a", "harmful"), ("b", None)], "sample 'r1' .*label None"),
                                         ([("a", "harmful"), ("b", "harmful")], "both harmful and benign")])
def test_labels_are_required(rows, match):
    with pytest.raises(VLMGuardError, match=match):
        choose_threshold(ScoredRewriter({}), _samples(rows))


def test_cli_threshold_means_in_the_guard_what_it_meant_here(tiny_models, tmp_path, capsys):
    """`vlmguard threshold` on the tiny HF rewriter: the guard run at the printed threshold flags exactly the
    samples the choice counted (same scoring path, same images)."""
    data = tiny_models["samples"]
    assert main(["threshold", f"hf:{tiny_models['rewriter']}?batch_size=8", "--data", str(data), "--limit", "12",
                 "--out", str(tmp_path / "t")]) in (0, None)
    out = capsys.readouterr().out
    choice = json.loads((tmp_path / "t" / "choice.json").read_text())
    assert f"--threat-threshold {choice['threshold']:.4f}" in out
    scored = [json.loads(line) for line in (tmp_path / "t" / "scores.jsonl").read_text().splitlines()]
    samples = load_samples(data, 12)
    assert [s["id"] for s in scored] == [s.id for s in samples] and all(0 <= s["score"] <= 1 for s in scored)
    assert choice["flagged_harmful"] + choice["flagged_benign"] == sum(s["score"] >= choice["threshold"]
                                                                      for s in scored)
    guard = Guard(f"hf:{tiny_models['rewriter']}?batch_size=8", None,
                  GuardConfig(threat_threshold=choice["threshold"], rewrite=SamplingParams(max_new_tokens=4)))
    results = guard.rewrite([user_chat(s.instruction, s.image_path()) for s in samples])
    assert [r.threat_score for r in results] == pytest.approx([s["score"] for s in scored], abs=1e-4)
    assert guard.stats["threats_flagged"] == choice["flagged_harmful"] + choice["flagged_benign"]


def test_save_records_the_choice_where_auto_finds_it(tiny_models, tmp_path, capsys):
    """`--save` writes the choice into the rewriter's folder; `threat_threshold: auto` (Guard, eval defence, CLI)
    decides at exactly that threshold; a folder without one, a malformed record and a remote rewriter are clear
    errors (the remote one before any scoring)."""
    import shutil

    from vlmguard.backends import BackendPool
    from vlmguard.eval.defences import VLMGuard
    from vlmguard.threshold import THRESHOLD_FILE

    folder = tmp_path / "rewriter"
    shutil.copytree(tiny_models["rewriter"], folder)
    spec = f"hf:{folder}?batch_size=8"
    with pytest.raises(VLMGuardError, match="no recorded threshold.*vlmguard threshold .* --data TRAIN.jsonl --save"):
        Guard(spec, None, GuardConfig(threat_threshold="auto"))
    assert main(["threshold", spec, "--data", str(tiny_models["samples"]), "--limit", "12", "--save"]) in (0, None)
    record = json.loads((folder / THRESHOLD_FILE).read_text())
    assert f"--threat-threshold {record['threshold']:.4f}" in capsys.readouterr().out
    assert record["data"] == str(tiny_models["samples"]) and record["harmful"] + record["benign"] == 12
    guard = Guard(spec, None, GuardConfig(threat_threshold="auto", rewrite=SamplingParams(max_new_tokens=4)))
    assert guard.config.threat_threshold == record["threshold"]
    samples = load_samples(tiny_models["samples"], 12)
    guard.rewrite([user_chat(s.instruction, s.image_path()) for s in samples])
    assert guard.stats["threats_flagged"] == record["flagged_harmful"] + record["flagged_benign"]
    defence = VLMGuard(BackendPool(), rewriter=spec, threat_threshold="auto")
    assert defence.guard.config.threat_threshold == record["threshold"]
    assert main(["rewrite", "--rewriter", str(spec), "--threat-threshold", "auto", "--text", "hello",
                 "--max-new-tokens", "4", "--json"]) in (0, None)
    assert 0 <= json.loads(capsys.readouterr().out.splitlines()[-1])["threat_score"] <= 1

    (folder / THRESHOLD_FILE).write_text('{"threshold": 1.5}')
    VLMGuard.check_options({"rewriter": spec, "threat_threshold": "auto"})  # the value only: configs check offline
    with pytest.raises(VLMGuardError, match=f"{THRESHOLD_FILE} is malformed .*not a probability"):
        VLMGuard(BackendPool(), rewriter=spec, threat_threshold="auto")
    assert main(["threshold", "openai:http://127.0.0.1:9/v1?model=x", "--data", "/nonexistent.jsonl", "--save"]) == 1
    assert "is not a local model folder" in capsys.readouterr().err
    with pytest.raises(VLMGuardError, match="give a probability between 0 and 1, auto"):
        GuardConfig(threat_threshold="high")


def test_auto_reads_the_threshold_an_export_pushed_to_the_hub(tmp_path, monkeypatch):
    """A Hub rewriter (``hf:me/rewriter``): ``auto`` fetches the recorded file its export pushed (real
    huggingface_hub against the loopback stand-in of the Hub, conftest.LocalHub), and offline reads the cached copy; a
    repo without one and an uncached file offline are one-line errors."""
    import huggingface_hub.constants as hub_constants

    from vlmguard.threshold import THRESHOLD_FILE, recorded_threshold

    hub = LocalHub(files={"me/rewriter": {THRESHOLD_FILE: json.dumps({"threshold": 0.42, "data": "train.jsonl"})
                                          .encode()}, "me/plain": {"config.json": b"{}"}})
    monkeypatch.setattr(hub_constants, "ENDPOINT", hub.url)  # what HF_ENDPOINT sets at import
    monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    try:
        assert GuardConfig(threat_threshold="auto").resolved("hf:me/rewriter").threat_threshold == 0.42
        assert ("GET", f"/me/rewriter/resolve/main/{THRESHOLD_FILE}") in [r[:2] for r in hub.requests]
        with pytest.raises(VLMGuardError, match="'hf:me/plain' has no recorded threshold"):
            recorded_threshold("hf:me/plain")
    finally:
        hub.server.shutdown()
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    assert recorded_threshold("hf:me/rewriter") == 0.42  # the cached copy, no Hub
    with pytest.raises(VLMGuardError, match="of the Hub rewriter 'me/other' is not in the Hugging Face cache"):
        recorded_threshold("hf:me/other")
    with pytest.raises(VLMGuardError, match="is neither a local model folder nor a Hub model id"):
        recorded_threshold("hf:/no/such/folder")
    with pytest.raises(VLMGuardError, match="is neither a local model folder nor a Hub model id"):
        recorded_threshold("openai:http://127.0.0.1:9/v1?model=x")
