from hypothesis import given, settings
from hypothesis import strategies as st

from vlmguard.format import REFUSAL, SAFE_PREFIX, parse, render, resolve


def test_render_then_parse_is_ok():
    p = parse(render("a knife and a threat", "learn to cook", "How do I sharpen a kitchen knife safely?"))
    assert p.ok and p.usable
    assert (p.threat, p.intent, p.prompt) == ("a knife and a threat", "learn to cook",
                                              "How do I sharpen a kitchen knife safely?")


def test_tolerant_reading():
    p = parse("Sure!\n< THREAT >none</threat>\n<Intent>\n  say hi \n</intent><prompt>  Say hello.  ")
    assert (p.threat, p.intent, p.prompt) == ("none", "say hi", "Say hello.")
    assert p.problems == ("<prompt> not closed",)
    assert p.usable and not p.ok


def test_problems_are_named():
    assert parse("").problems == ("missing <threat>", "missing <intent>", "missing <prompt>")
    assert "no tags found" in parse("just some text").problems
    p = parse("<threat>x</threat><intent>y</intent><prompt></prompt>")
    assert p.problems == ("empty <prompt>",) and not p.usable
    p = parse("<threat>x<intent>y</intent><prompt>z</prompt>")
    assert p.threat == "x" and p.problems == ("<threat> not closed",)
    p = parse("<prompt>z</prompt><threat>x</threat><intent>y</intent>")
    assert p.problems == ("tags out of order",) and p.prompt == "z"
    p = parse("<threat>x</threat><intent>y</intent><prompt>first</prompt><prompt>second</prompt>")
    assert p.prompt == "first" and "duplicate <prompt> (first kept)" in p.problems
    assert "stray </intent>" in parse("</intent><threat>x</threat><intent>y</intent><prompt>z</prompt>").problems


def test_escaping_keeps_tags_in_text():
    text = "compare <prompt> and </threat> & AT&T &lt; x"
    p = parse(render(text, text, text))
    assert p.ok and p.threat == p.intent == p.prompt == text


def test_resolve_fallbacks():
    good = render("none", "greet", "Say hi.")
    assert resolve(good, "orig").prompt == "Say hi." and not resolve(good, "orig").fallback_used
    assert resolve("garbage", "orig", "original").prompt == "orig"
    assert resolve("garbage", "orig", "safe-prefix").prompt == SAFE_PREFIX + "orig"
    r = resolve("garbage", "orig", "refuse")
    assert r.prompt is None and r.fallback_used and REFUSAL
    try:
        resolve("x", "orig", "nope")
    except ValueError as e:
        assert "original" in str(e)
    else:
        raise AssertionError("unknown fallback accepted")


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(), st.text())
def test_round_trip_any_text(threat, intent, prompt):
    p = parse(render(threat, intent, prompt))
    assert (p.threat, p.intent, p.prompt) == (threat.strip(), intent.strip(), prompt.strip())


tag_soup = st.lists(st.one_of(st.text(max_size=20), st.sampled_from(
    ["<threat>", "</threat>", "<intent>", "</intent>", "<prompt>", "</prompt>", "< Prompt >", "&lt;", "&amp;",
     "<", ">", "</", "\n"])), max_size=30).map("".join)


@settings(max_examples=500, deadline=None)
@given(tag_soup)
def test_parse_never_raises(text):
    p = parse(text)
    assert isinstance(p.problems, tuple)
    assert p.usable == bool(p.prompt)
    r = resolve(text, "orig")
    assert r.prompt is not None


def test_parse_non_text():
    assert parse(None).problems == ("completion is NoneType, not text",)


def test_names_threat():
    from vlmguard.format import names_threat

    assert [names_threat(t) for t in ("None", "none.", "None: harmless", " NONE", "", None)] == [False] * 6
    assert names_threat("Weapons: instructions for a pipe bomb") and names_threat("Nonexistent safeguards")
