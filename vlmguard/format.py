"""The rewriter's output format: ``<threat>…</threat> <intent>…</intent> <prompt>…</prompt>``.

``render`` writes it (synthesis builds SFT targets with it); ``parse`` reads model output tolerantly
(case, whitespace inside tags, a missing closing tag) and lists what was wrong; ``resolve`` turns a
completion into the prompt the downstream model receives, applying the fallback policy when the
completion has no usable ``<prompt>``. Field text is stored stripped; ``&`` and ``<`` inside a field
are escaped as ``&amp;`` / ``&lt;`` so that any text survives a render→parse round trip.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

TAGS: tuple[str, ...] = ("threat", "intent", "prompt")
Fallback = Literal["original", "refuse", "safe-prefix"]
FALLBACKS: tuple[str, ...] = ("original", "refuse", "safe-prefix")
SAFE_PREFIX = ("Answer the following request helpfully, but do not provide information that could cause harm; "
               "if part of it is unsafe, explain why and offer a safe alternative.\n\n")
REFUSAL = "I can't help with that request as it stands, but I'm happy to help with a safe version of it."

_TAG = re.compile(r"<\s*(/?)\s*(threat|intent|prompt)\s*>", re.IGNORECASE)
TAG_RE = _TAG
"""An opening or closing tag of the format, any case and spacing (group 1: "/" or "", group 2: the name)."""
_ENTITY = re.compile(r"&(amp|lt);")


def _escape(text: str) -> str:
    return text.strip().replace("&", "&amp;").replace("<", "&lt;")


def _unescape(text: str) -> str:
    return _ENTITY.sub(lambda m: {"amp": "&", "lt": "<"}[m.group(1)], text)


def render(threat: str, intent: str, prompt: str) -> str:
    """The canonical completion for the three fields."""
    return (f"<threat>{_escape(threat)}</threat>\n<intent>{_escape(intent)}</intent>\n"
            f"<prompt>{_escape(prompt)}</prompt>")


@dataclass(frozen=True)
class Parsed:
    """What ``parse`` found: each field's text (None when absent) and the problems it met."""

    threat: str | None = None
    intent: str | None = None
    prompt: str | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when the completion is exactly well formed: all three fields, non-empty, no problems."""
        return not self.problems

    @property
    def complete(self) -> bool:
        """True when all three fields are present and non-empty (stray text or tags elsewhere allowed)."""
        return bool(self.threat and self.intent and self.prompt)

    @property
    def usable(self) -> bool:
        """True when there is a non-empty prompt to send downstream (other problems may remain)."""
        return bool(self.prompt)

    def get(self, tag: str) -> str | None:
        return getattr(self, tag)


def names_threat(threat: str | None) -> bool:
    """Whether a ``<threat>`` field names a threat: not empty and not "none" ("None", "none.", "None: …")."""
    return bool(threat and threat.strip()) and not re.match(r"\s*none\b", threat, re.IGNORECASE)


def parse(text: str) -> Parsed:
    """Read a completion; never raises. A field runs from its opening tag to its closing tag, or else
    to the next opening tag or the end of the text (noted as a problem)."""
    if not isinstance(text, str):
        return Parsed(problems=(f"completion is {type(text).__name__}, not text",))
    found: dict[str, str] = {}
    problems: list[str] = []
    tokens = list(_TAG.finditer(text))
    i = 0
    if not tokens and text.strip():
        problems.append("no tags found")
    while i < len(tokens):
        m = tokens[i]
        closing, tag = m.group(1) == "/", m.group(2).lower()
        if closing:
            problems.append(f"stray </{tag}>")
            i += 1
            continue
        j = i + 1
        if j < len(tokens) and tokens[j].group(1) == "/" and tokens[j].group(2).lower() == tag:
            body, i = text[m.end():tokens[j].start()], j + 1
        else:
            end = tokens[j].start() if j < len(tokens) else len(text)
            body, i = text[m.end():end], j
            problems.append(f"<{tag}> not closed")
        if tag in found:
            problems.append(f"duplicate <{tag}> (first kept)")
            continue
        found[tag] = _unescape(body.strip())
    for tag in TAGS:
        if tag not in found:
            problems.append(f"missing <{tag}>")
        elif not found[tag]:
            problems.append(f"empty <{tag}>")
    order = [t for t in (m.group(2).lower() for m in tokens if m.group(1) != "/") if t in found]
    if len(found) == len(TAGS) and order[:3] != list(TAGS):
        problems.append("tags out of order")
    return Parsed(found.get("threat"), found.get("intent"), found.get("prompt"), tuple(problems))


@dataclass(frozen=True)
class Resolved:
    """The prompt to send downstream, or None when the policy is to refuse without asking the target."""

    prompt: str | None
    parsed: Parsed
    fallback_used: bool


def resolve(completion: str, original: str, fallback: Fallback = "original") -> Resolved:
    """Parse a rewriter completion and pick what the target receives, applying ``fallback`` when unusable:
    ``original`` sends the user's instruction unchanged, ``safe-prefix`` sends it behind a safety
    instruction, ``refuse`` sends nothing (the caller answers with ``REFUSAL``)."""
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback {fallback!r}; choose one of {', '.join(FALLBACKS)}")
    parsed = parse(completion)
    if parsed.usable:
        return Resolved(parsed.prompt, parsed, False)
    prompt = {"original": original, "safe-prefix": SAFE_PREFIX + original, "refuse": None}[fallback]
    return Resolved(prompt, parsed, True)
