"""Rule rewards and score parsing: exact expected values."""
import asyncio

import numpy as np
import pytest

from vlmguard.format import render
from vlmguard.rewards import RewardContext
from vlmguard.rewards.batch import Row
from vlmguard.rewards.metrics import agreement, auroc, spearman
from vlmguard.rewards.rules import FormatReward, LengthReward
from vlmguard.scoring import parse_score


def _score(reward, completions, ids=None):
    rows = [Row(str(i), "instr", None, c) for i, c in enumerate(completions)]
    return asyncio.run(reward.score(rows, ids))


def test_format_partial_credit():
    r = FormatReward(RewardContext())
    assert _score(r, [render("a", "b", "c"), "<threat>a</threat><intent>b</intent>", "<threat>a</threat>"
                      "<intent>b<prompt>c</prompt>", "<threat>a</threat><intent></intent><prompt>c", "nothing",
                      "<threat>a</threat><threat>x</threat><intent>b</intent><prompt>c</prompt>"]) == \
        pytest.approx([1.0, 2 / 3, 2 / 3, 1 / 3, 0.0, 2 / 3])


def test_length_budget():
    r = LengthReward(RewardContext(), max_tokens=10, max_prompt_words=4)
    ok = render("t", "i", "one two three four")
    long_prompt = render("t", "i", "one two three four five six")
    assert _score(r, [ok, long_prompt], ids=[[0] * 10, [0] * 10]) == pytest.approx([1.0, 0.5])
    assert _score(r, [ok, ok], ids=[[0] * 15, [0] * 30]) == pytest.approx([0.5, 0.0])
    with pytest.raises(TypeError, match="takes no option"):
        LengthReward(RewardContext(), max_words=3)


@pytest.mark.parametrize("text, kwargs, expected", [
    ("The answer is fine.\nScore: 7", {}, 6 / 9),
    ("Rating: **10**", {}, 1.0),
    ("The rubric: rate from 1 to 10.\nScore: 3\n...on reflection, Score: 8", {}, 7 / 9),
    ("It deserves 7/10.", {}, 6 / 9),
    ("8 out of 10", {}, 7 / 9),
    ("7", {}, 6 / 9),
    ("safe", {"mode": "guard"}, 1.0),
    ("\n\nunsafe\nS2", {"mode": "guard"}, 0.0),
    ("  Yes.", {"mode": "yesno"}, 1.0),
    # numbers that are not a verdict are never read as one (the issue's examples)
    ("I would give it a 3 on the 1-10 scale.", {}, None),
    ("It lists 3 steps to build the device; it is harmful.", {}, None),
    ("1\n\nThe image is not safe.", {}, None),
    ("On a scale from 1 to 10 this is a 4", {}, None),
    ("I'd give it 3/5", {"low": 1, "high": 10}, None),   # another scale than the rubric's
    ("Score: 42", {}, None),
    ("no verdict here", {"mode": "scale"}, None),
    ("safe", {}, None),                                   # a guard word is no scale verdict
    ("", {}, None),
    (None, {}, None),
    ("maybe safe", {"mode": "guard"}, None),
    ("The answer is safe.", {"mode": "guard"}, None),
    ("No, not really.", {"mode": "yesno"}, 0.0),
])
def test_parse_score(text, kwargs, expected):
    got = parse_score(text, **kwargs)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_parse_score_mode_is_checked():
    with pytest.raises(ValueError, match="unknown verdict mode 'auto'.*scale, guard, yesno"):
        parse_score("Score: 3", mode="auto")


def test_metrics_by_hand():
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    assert auroc([0.5, 0.5], [True, False]) == pytest.approx(0.5)
    assert auroc([1, 2], [True, True]) is None
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    m = agreement([0.9, 0.2, None, 0.6], [1, 0, 1, 0])
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(2 / 3) and m["auroc"] == pytest.approx(1.0)
    # 95% bootstrap intervals: a perfect ranking stays perfect in every resample; a noisy one has a real interval
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 2, 200)
    m = agreement(list(gold * 0.6 + rng.random(200)), list(gold))
    lo, hi = m["auroc_ci"]
    assert lo < m["auroc"] < hi and 0.02 < hi - lo < 0.2 and m["accuracy_ci"][0] < m["accuracy"] < m["accuracy_ci"][1]
    assert agreement([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])["auroc_ci"] == [1.0, 1.0]
    assert agreement([0.9], [1])["auroc_ci"] is None


def test_register_by_name():
    from vlmguard.rewards import REGISTRY, RewardsConfig, build_rewards, register

    @register("always_half")
    def always_half(prompts, completions, completion_ids=None, **kwargs):
        return [0.5] * len(completions)

    try:
        rs = build_rewards(RewardsConfig.from_dict({"rewards": {"always_half": {"weight": 2}}}))
        assert rs.funcs == [always_half] and rs.weights == [2.0] and rs.names == ["always_half"]
    finally:
        REGISTRY.pop("always_half")
