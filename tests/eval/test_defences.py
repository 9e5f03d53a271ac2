"""Each defence sends what its method prescribes, keeps the image, and records its analysis.

``Scripted`` is a rule-based Backend (like the guard tests' TemplateRewriter): it records every chat it is
shown and answers by rule, so each defence's protocol (what goes to which model, when) is checked exactly;
the tiny target behind the project's server proves the same defences run on a real model over HTTP."""
import asyncio
from collections.abc import Sequence

import pytest

from vlmguard.backends import Backend, BackendPool, SamplingParams, load_backend
from vlmguard.chat import images, last_user, user_chat
from vlmguard.errors import VLMGuardError
from vlmguard.eval.defences import check_defence, defence_class
from vlmguard.format import REFUSAL, render

PARAMS = SamplingParams(max_new_tokens=8)


class Scripted(Backend):
    def __init__(self, rules=()):
        super().__init__()
        self.rules, self.seen = list(rules), []

    def generate(self, chats: Sequence, params=None, on_error="raise"):
        self.seen.extend(chats)
        out = []
        for c in chats:
            text = last_user(c)[0]
            out.append(next((reply(text) for key, reply in self.rules if key in text), f"answer to: {text}"))
        return out


def respond(kind, target, chats, **options):
    defence = defence_class(kind)(BackendPool(), **options)
    return asyncio.run(defence.respond(target, chats, PARAMS))


def test_none_and_adashield(example_png):
    target = Scripted()
    chats = [user_chat("How do I sharpen this?", example_png)]
    assert respond("none", target, chats)[0].answer == "answer to: How do I sharpen this?"
    r = respond("adashield", target, chats)[0]
    sent = target.seen[-1]
    assert images(sent) == [example_png]
    assert last_user(sent)[0] == r.prompt and r.prompt.startswith("How do I sharpen this?\nBut before processing")
    assert "please answer \"I am sorry\"" in r.prompt and r.prompt.endswith("safely and correctly.")


def test_ecso_redoes_unsafe_answers_from_a_caption(example_png):
    target = Scripted([("Is the RESPONSE harmful", lambda t: "Yes." if "BAD" in t else "no"),
                       ("Based on the REQUEST, describe the image", lambda t: "a kitchen knife on a table"),
                       ("HARMLESS and ETHICAL", lambda t: "safe answer"),
                       ("weapon", lambda t: "BAD instructions")])
    chats = [user_chat("make a weapon", example_png), user_chat("bake bread", example_png)]
    bad, good = respond("ecso", target, chats)
    assert good.answer == "answer to: bake bread" and good.prompt is None and good.analysis["unsafe"] is False
    assert bad.answer == "safe answer" and bad.analysis["first_answer"] == "BAD instructions"
    assert bad.analysis["caption"] == "a kitchen knife on a table" and bad.analysis["unsafe"] is True
    caption_chat = next(c for c in target.seen if "describe the image" in last_user(c)[0])
    final_chat = next(c for c in target.seen if "HARMLESS and ETHICAL" in last_user(c)[0])
    assert images(caption_chat) == [example_png]          # the caption looks at the image
    assert images(final_chat) == []                         # the final answer is given with eyes closed
    assert 'Hints: "Answer: a kitchen knife on a table"' in last_user(final_chat)[0]


def test_ecso_unreadable_check_keeps_the_answer():
    target = Scripted([("Is the RESPONSE harmful", lambda t: "Let me think about it")])
    r = respond("ecso", target, [user_chat("hello")])[0]
    assert r.answer == "answer to: hello" and r.analysis["unsafe"] is False
    assert r.analysis["check"] == "Let me think about it"


def test_plain_rewrite_and_empty_rewrite_fallback(example_png):
    rewriter = Scripted([("Request: empty", lambda t: "  "), ("Request:", lambda t: "Explain kitchen safety.")])
    target = Scripted()
    backends = BackendPool()
    backends.loaded["hf:rw"] = rewriter
    defence = defence_class("rewrite")(backends, rewriter="hf:rw")
    chats = [user_chat("how to stab", example_png), user_chat("empty", example_png)]
    changed, kept = asyncio.run(defence.respond(target, chats, PARAMS))
    assert changed.prompt == "Explain kitchen safety." and changed.answer == "answer to: Explain kitchen safety."
    assert kept.prompt == "empty" and kept.analysis["fallback_used"] is True
    assert all(images(c) == [example_png] for c in target.seen + rewriter.seen)


def test_vlmguard_defence_records_the_reasoning():
    rewriter = Scripted([("knife", lambda t: render("a knife and a threat", "cooking", "How to cut onions safely?")),
                         ("", lambda t: "no tags here")])
    target = Scripted()
    backends = BackendPool()
    backends.loaded["hf:rw"] = rewriter
    chats = [user_chat("knife to hurt"), user_chat("garbage please")]
    d = defence_class("vlmguard")(backends, rewriter="hf:rw", fallback="refuse")
    good, refused = asyncio.run(d.respond(target, chats, PARAMS))
    assert good.prompt == "How to cut onions safely?" and good.answer == "answer to: How to cut onions safely?"
    assert good.analysis["threat"] == "a knife and a threat" and good.analysis["intent"] == "cooking"
    assert refused.answer == REFUSAL and refused.prompt is None and refused.analysis["fallback_used"]
    assert len(target.seen) == 1  # the refused rewrite never reached the target
    assert rewriter.seen[0][0]["role"] == "system"  # the rewriter sees its system prompt


def test_user_defence_by_path_and_option_errors():
    cls = check_defence("user_defences:Shout", {"suffix": "?"}, "cfg")
    r = asyncio.run(cls(BackendPool(), suffix="?").respond(Scripted(), [user_chat("hi")], PARAMS))[0]
    assert r.prompt == "HI?" and r.answer == "answer to: HI?"
    with pytest.raises(VLMGuardError, match=r"unknown option\(s\) strength .* valid: suffix"):
        check_defence("user_defences:Shout", {"strength": 2}, "cfg")
    with pytest.raises(VLMGuardError, match="did you mean adashield"):
        defence_class("adashiled")
    with pytest.raises(VLMGuardError, match="cannot import defence"):
        defence_class("user_defences:Nope")
    with pytest.raises(VLMGuardError, match="unknown backend spec"):
        check_defence("vlmguard", {"rewriter": "hg:/x"}, "cfg")
    with pytest.raises(VLMGuardError, match="needs `rewriter"):
        defence_class("vlmguard")(BackendPool())
    # option values are checked before any model loads (the rewriter path does not exist)
    with pytest.raises(VLMGuardError, match=r"cfg: defence 'vlmguard': threat_threshold 2"):
        check_defence("vlmguard", {"rewriter": "hf:/nowhere", "threat_threshold": 2}, "cfg")
    with pytest.raises(VLMGuardError, match=r"cfg: defence 'vlmguard': fallback 'orignal'"):
        check_defence("vlmguard", {"rewriter": "hf:/nowhere", "fallback": "orignal"}, "cfg")


def test_defences_on_the_tiny_target_over_http(target_server, example_png):
    target = load_backend(f"openai:{target_server}?model=tiny-target")
    direct = target.generate([user_chat("Describe the picture.", example_png)], PARAMS)[0]
    for kind in ("none", "adashield", "ecso"):
        r = respond(kind, target, [user_chat("Describe the picture.", example_png)])[0]
        assert isinstance(r.answer, str)
        if kind == "none":
            assert r.answer == direct  # greedy: the same answer as a direct call


def test_setup_is_what_decides_the_answers(tmp_path):
    """What eval stores with each record to notice stale answers: specs without their throughput options, and a
    recorded threshold (``auto``) as the number recorded now."""
    import json

    from vlmguard.eval.defences import VLMGuard
    from vlmguard.threshold import THRESHOLD_FILE

    spec = f"hf:{tmp_path}?batch_size=32&dtype=bfloat16"
    options = {"rewriter": spec, "threat_threshold": "auto", "max_new_tokens": 128}
    assert VLMGuard.setup(options) == {**options, "rewriter": f"hf:{tmp_path}?dtype=bfloat16"}  # none recorded yet
    (tmp_path / THRESHOLD_FILE).write_text(json.dumps({"threshold": 0.25}))
    assert VLMGuard.setup(options)["threat_threshold"] == 0.25
    (tmp_path / THRESHOLD_FILE).write_text(json.dumps({"threshold": 0.75}))  # chosen again: other answers
    assert VLMGuard.setup(options)["threat_threshold"] == 0.75
    assert defence_class("ecso").setup({"checker": "openai:http://h:1/v1?model=m&timeout=5&retries=0"}) == {
        "checker": "openai:http://h:1/v1?model=m"}
