"""An append-only JSONL record store that long jobs resume from (synthesis, eval).

Each batch of records is written, flushed and fsync'ed before the job moves on; on open, a torn last line
(a kill -9 mid-write) is cut off. So a rerun skips every record already stored and never writes one twice.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable

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
        good = 0
        with open(self.path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break  # torn write
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break
                self.records[self.key(record)] = record
                good += len(line)
        size = self.path.stat().st_size
        if good < size:
            log.warning("%s: cut %d bytes of a torn last record (an interrupted run)", self.path, size - good)
            with open(self.path, "r+b") as f:
                f.truncate(good)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        records = [r for r in records if self.key(r) not in self.records]
        if not records:
            return
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        with open(self.path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        for r in records:
            self.records[self.key(r)] = r
