"""Rule-based refusal detection (synthesis filter, over-refusal reward)."""
from __future__ import annotations

import re

REFUSAL_PATTERNS = (
    r"\bi(?: am|'m) (?:sorry|afraid|unable|not able)\b", r"\bi (?:can(?:no|')t|cannot|won'?t|will not)"
    r" (?:help|assist|provide|do|comply|answer|fulfil|support|share|give)\b", r"\bi apologi[sz]e\b",
    r"\bas an ai\b", r"\bi(?: must|'d have to)? (?:respectfully )?decline\b", r"\bnot able to (?:help|assist)\b",
    r"\b(?:this|that) (?:request )?(?:is|would be) (?:inappropriate|unethical|illegal|harmful)\b",
    r"\bi(?: am|'m) not (?:comfortable|going to)\b", r"\bunable to (?:help|assist|comply|provide)\b",
)
_REFUSAL = re.compile("|".join(REFUSAL_PATTERNS), re.IGNORECASE)


def is_refusal(text: str | None) -> bool:
    """True when the text refuses (an apology or "I can't help" style phrase in its first sentences)."""
    if not text:
        return False
    head = " ".join(re.split(r"(?<=[.!?])\s+", text.strip().replace("’", "'"))[:2])
    return bool(_REFUSAL.search(head))
