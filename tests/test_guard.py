"""Guard orchestration with the tiny target model.

A rewriter that writes the tagged format needs training (vlmguard sft); until then the well-formed path is
driven by ``TemplateRewriter``, a rule-based Backend that renders the format around the instruction."""
from collections.abc import Sequence

import pytest

from vlmguard.backends import Backend, SamplingParams, load_backend
from vlmguard.chat import Chat, last_user, user_chat
from vlmguard.examples import EXAMPLES
from vlmguard.format import REFUSAL, SAFE_PREFIX, render
from vlmguard.guard import Guard, GuardConfig, rewriter_chat
from vlmguard.prompts import load_prompt


class TemplateRewriter(Backend):
    """Rule-based rewriter: records what it was shown and answers in the tagged format."""

    def __init__(self):
        super().__init__()
        self.seen: list[Chat] = []

    def generate(self, chats: Sequence[Chat], params=None, on_error="raise"):
        self.seen.extend(chats)
        return [render("none", "help", "Safely: " + last_user(c)[0]) for c in chats]


@pytest.fixture(scope="module")
def target(tiny_models):
    return load_backend(f"hf:{tiny_models['target']}")


def _chats():
    return [user_chat(ex.instruction, ex.image()) for ex in EXAMPLES]


def test_refined_prompt_reaches_target_with_image(target):
    rw = TemplateRewriter()
    guard = Guard(rw, target, GuardConfig(answer=SamplingParams(max_new_tokens=6)))
    results = guard.run(_chats())
    assert [r.prompt for r in results] == ["Safely: " + ex.instruction for ex in EXAMPLES]
    expected = target.generate([user_chat("Safely: " + ex.instruction, ex.image()) for ex in EXAMPLES],
                               SamplingParams(max_new_tokens=6))
    assert [r.answer for r in results] == expected
    # the rewriter saw its system prompt, the image and the original instruction
    assert rw.seen[0][0] == {"role": "system", "content": load_prompt("rewriter_system")}
    assert last_user(rw.seen[0])[0] == EXAMPLES[0].instruction and last_user(rw.seen[0])[1] is not None
    assert guard.stats["fallbacks"] == 0


@pytest.mark.parametrize("fallback", ["original", "safe-prefix", "refuse"])
def test_fallback_with_untrained_rewriter(tiny_models, target, fallback):
    guard = Guard(f"hf:{tiny_models['rewriter']}", target,
                  GuardConfig(fallback=fallback, rewrite=SamplingParams(max_new_tokens=12),
                              answer=SamplingParams(max_new_tokens=4)))
    results = guard.run(_chats())
    assert all(r.fallback_used and not r.parsed.usable for r in results)
    assert guard.stats["fallbacks"] == guard.stats["unparsed"] == len(EXAMPLES)
    for ex, r in zip(EXAMPLES, results):
        if fallback == "refuse":
            assert r.prompt is None and r.answer == REFUSAL
        else:
            assert r.prompt == (SAFE_PREFIX if fallback == "safe-prefix" else "") + ex.instruction
            assert isinstance(r.answer, str)
    assert guard.stats["refused"] == (len(EXAMPLES) if fallback == "refuse" else 0)


def test_guard_is_a_backend(target):
    guard = Guard(TemplateRewriter(), target)
    assert guard.generate(_chats()[:2], SamplingParams(max_new_tokens=3)) == [
        r.answer for r in Guard(TemplateRewriter(), target).run(_chats()[:2], SamplingParams(max_new_tokens=3))]


def test_rewriter_chat_shape():
    chat = rewriter_chat("hello", "img.png")
    assert chat[0]["role"] == "system" and chat[1]["content"][0] == {"type": "image", "image": "img.png"}
