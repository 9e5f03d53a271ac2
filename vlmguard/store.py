"""An append-only JSONL record store that long jobs resume from (synthesis, eval).

Each batch of records is written, flushed and fsync'ed before the job moves on; on open, a torn last line
(a kill -9 mid-write) is cut off. So a rerun skips every record already stored and never writes one twice.
A malformed line anywhere else is no crash artefact: opening fails, naming the line, and the file is left as is.
``put`` stores a newer version of a record (appended; on load the last line for a key wins).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import VLMGuardError

log = logging.getLogger(__name__)


class JsonlStore:
    def __init__(self, path: str | os.PathLike, key: str | Callable[[dict[str, Any]], str] = "id") -> None:
        self.path = Path(path)
        self.key = (lambda r: str(r[key])) if isinstance(key, str) else key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        lines = [line + b"\n" for line in data.split(b"\n")]
        lines[-1] = lines[-1][:-1]  # the text after the last newline (empty unless a write was torn)
        final = max((n for n, line in enumerate(lines, 1) if line.strip()), default=0)
        good = 0
        for n, line in enumerate(lines, 1):
            last = n == final
            if not line.strip():  # a blank line holds no record
                good += len(line)
                continue
            problem, record = None, None
            if not line.endswith(b"\n"):
                problem = "no newline at the end"  # only the last line can lack one
            else:
                try:
                    record = json.loads(line)
                except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                    problem = str(e)
                if problem is None and not isinstance(record, dict):
                    problem = f"a JSON {type(record).__name__}, not an object"
            if problem is not None:
                if last:
                    break  # a torn write: cut below
                raise VLMGuardError(f"{self.path}, line {n}: not a JSON record ({problem}); repair or delete that "
                                    f"line (records after it are kept), then rerun. The file was not changed.")
            try:
                key = self.key(record)
            except (KeyError, TypeError) as e:
                raise VLMGuardError(f"{self.path}, line {n}: the record has no key ({type(e).__name__}: {e}); "
                                    f"is this the right records file?") from e
            self.records[key] = record  # a later line for the same key (``put``) wins
            good += len(line)
        if good < len(data):
            log.warning("%s: cut %d bytes of a torn last record (an interrupted run)", self.path, len(data) - good)
            with open(self.path, "r+b") as f:
                f.truncate(good)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Store the records whose key is not stored yet; the others are skipped."""
        self._write([r for r in records if self.key(r) not in self.records])

    def put(self, records: Iterable[dict[str, Any]]) -> None:
        """Store the records, replacing any stored under the same key (the new version is appended)."""
        self._write(list(records))

    def _write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        with open(self.path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        for r in records:
            self.records[self.key(r)] = r
