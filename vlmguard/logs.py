"""Logging for the command line and the training entry points: the ``vlmguard`` logger to stderr.

A library does not configure logging; the entry points (``vlmguard ...``, ``python -m vlmguard.sft`` /
``vlmguard.rl``) call ``setup_logging`` once. Under a multi-process launch (``WORLD_SIZE`` > 1) each line
names its process: ``[rank N]``.
"""
from __future__ import annotations

import logging
import os
import sys

from .errors import VLMGuardError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ENV_LEVEL = "VLMGUARD_LOG_LEVEL"
_HANDLER_NAME = "vlmguard-stderr"


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (as logging's own last-resort handler does), so a
    stderr replaced later (pytest's capture, a redirect) still gets the lines."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _rank_prefix() -> str:
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        world = 1
    if world <= 1:
        return ""
    rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "?"))
    return f"[rank {rank}] "


def _level(level: str | None) -> int:
    source = "--log-level"
    if level is None:
        level, source = os.environ.get(ENV_LEVEL) or "INFO", ENV_LEVEL
    name = str(level).strip().upper()
    if name not in LEVELS:
        raise VLMGuardError(f"{source}: unknown log level {level!r}; use one of {', '.join(LEVELS)} "
                            f"(any case)")
    return getattr(logging, name)


def setup_logging(level: str | None = None) -> None:
    """Send the ``vlmguard`` logger's records to stderr at ``level`` (default: env ``VLMGUARD_LOG_LEVEL``,
    else INFO). Calling it again only changes the level: it never adds a second handler."""
    lvl = _level(level)
    logger = logging.getLogger("vlmguard")
    logger.setLevel(lvl)
    handler = next((h for h in logger.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = _Stderr()
        handler.set_name(_HANDLER_NAME)
        logger.addHandler(handler)
        logger.propagate = False  # the root logger (if someone configured it) would print every line again
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {_rank_prefix()}%(name)s: %(message)s"))
