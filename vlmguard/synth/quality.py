"""Quality checks on a synthesised sample; each failure has a reason that the summary counts."""
from __future__ import annotations

import re

from ..refusal import is_refusal

_WORD = re.compile(r"\w+")


def extract(text: str | None, tag: str, lenient: bool) -> tuple[str | None, str | None]:
    """The content of ``<tag>…</tag>`` (or up to the end when unclosed) → (value, problem)."""
    if text is None:
        return None, "teacher_error"
    m = re.search(rf"<\s*{tag}\s*>(.*?)(?:<\s*/\s*{tag}\s*>|$)", text, re.IGNORECASE | re.DOTALL)
    if m:
        value = m.group(1).strip()
    elif lenient:
        value = re.sub(r"<\s*/?\s*\w+\s*>", " ", text).strip()
    else:
        return None, "parse"
    return (value, None) if value else (None, "empty")


def shared_ngrams(text: str, reference: str, n: int = 6) -> float:
    """Fraction of ``reference``'s word n-grams that also occur in ``text`` (0 when reference is shorter)."""
    ref = [w.lower() for w in _WORD.findall(reference)]
    if len(ref) < n:
        return 0.0
    grams = {tuple(ref[i:i + n]) for i in range(len(ref) - n + 1)}
    words = [w.lower() for w in _WORD.findall(text)]
    have = {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}
    return len(grams & have) / len(grams)


def check_prompt(prompt: str, unsafe_response: str | None, repeat_threshold: float) -> str | None:
    """The reason to drop a refined prompt, or None to keep it."""
    if is_refusal(prompt):
        return "refusal_prompt"
    if unsafe_response and shared_ngrams(prompt, unsafe_response) >= repeat_threshold:
        return "repeats_unsafe"
    return None
