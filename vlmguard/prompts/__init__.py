"""Prompt templates shipped as text files, so they can be read, diffed and overridden.

A name (``synth_causal``) means a bundled file in this folder; anything with a suffix or a slash is a path to
your own file. Templates are Jinja2 with strict variables: a misspelt variable is an error, not a blank.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import VLMGuardError

HERE = Path(__file__).parent


def template_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if not path.suffix and "/" not in name_or_path:
        path = HERE / f"{name_or_path}.txt"
    if not path.is_file():
        bundled = ", ".join(sorted(p.stem for p in HERE.glob("*.txt")))
        raise VLMGuardError(f"prompt template not found: {name_or_path} (a file path, or one of: {bundled})")
    return path


@lru_cache(maxsize=None)
def load_prompt(name_or_path: str) -> str:
    """A template's text, stripped."""
    return template_path(name_or_path).read_text(encoding="utf-8").strip()


@lru_cache(maxsize=None)
def _compiled(name_or_path: str):
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
    try:
        return env.from_string(load_prompt(name_or_path))
    except jinja2.TemplateSyntaxError as e:
        raise VLMGuardError(f"template {template_path(name_or_path)} line {e.lineno}: {e.message}") from e


def render_prompt(name_or_path: str, **variables: Any) -> str:
    """Fill a template; an unknown variable names the template and the variables it may use."""
    import jinja2

    try:
        text = _compiled(name_or_path).render(**variables)
    except jinja2.UndefinedError as e:
        raise VLMGuardError(f"template {template_path(name_or_path)}: {e.message}; available variables: "
                            f"{', '.join(sorted(variables))}") from e
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:  # collapse the blank runs that conditional blocks leave
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out)
