"""Prompt templates shipped as text files, so they can be read, diffed and overridden."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent


@lru_cache(maxsize=None)
def load_prompt(name_or_path: str) -> str:
    """A bundled template by name (``rewriter_system``) or any text file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = HERE / f"{name_or_path}.txt"
    return path.read_text(encoding="utf-8").strip()
