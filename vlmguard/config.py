"""One way to configure a command: dataclasses filled from a YAML file (``--config``), then command-line flags
(TRL's ``TrlParser`` convention), with unknown keys reported by name before any work starts."""
from __future__ import annotations

import difflib
import re
from dataclasses import fields
from typing import Any, Sequence

from .errors import VLMGuardError


def parse_config(types: Sequence[type], argv: Sequence[str], prog: str) -> tuple[Any, ...]:
    """Instances of ``types`` from ``--config FILE`` and flags in ``argv``."""
    from trl import TrlParser

    argv = list(argv)
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise VLMGuardError("--config needs a YAML file")
        path = argv[i + 1]
        try:
            open(path).close()
        except OSError as e:
            raise VLMGuardError(f"config file {path}: {e.strerror}") from None
    known = sorted({f.name for t in types for f in fields(t)})
    parser = TrlParser(list(types), prog=prog, allow_abbrev=False)  # a typo must not match a prefix
    try:
        return tuple(parser.parse_args_and_config(argv))
    except ValueError as e:
        message = str(e)
        keys = re.findall(r"'--?([A-Za-z0-9_\-]+)'", message) or re.findall(r"'([A-Za-z0-9_\-]+)'", message)
        if "Unknown arguments" in message or "not used by the HfArgumentParser" in message:
            hints = []
            for k in keys:
                close = difflib.get_close_matches(k.replace("-", "_"), known, n=1)
                hints.append(f"{k}" + (f" (did you mean {close[0]}?)" if close else ""))
            where = "config file" if "config file" in message else "command line"
            raise VLMGuardError(f"unknown key(s) in the {where}: {', '.join(hints) or message}; "
                                f"see `{prog} --help` for the valid keys") from None
        raise VLMGuardError(f"{prog}: {message}") from None
