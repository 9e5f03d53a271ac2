"""What a served endpoint needs besides the model: settings and limits, API keys, metrics, access logs.

Used by ``vlmguard serve`` (the guard in front of a target) and ``vlmguard serve-model`` alike.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import VLMGuardError

access_log = logging.getLogger("vlmguard.access")


class HTTPError(Exception):
    """A request error with its HTTP status and OpenAI error ``type`` (and ``code``)."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code or str(status)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}}


@dataclass
class ServeConfig:
    """Settings of a served endpoint (``--config serve.yaml`` or flags). ``None`` = no limit."""

    rewriter: str | None = None
    """Backend spec of the rewriter (``vlmguard serve``)."""
    target: str | None = None
    """Backend spec of the guarded target: a ``vllm serve`` endpoint, a hosted API, an in-process model."""
    name: list[str] | None = None
    """Model name(s) clients send; default: the target's model name."""
    host: str = "127.0.0.1"
    port: int = 8000
    fallback: str = "original"
    """What the target gets when the rewriter is down or writes no usable prompt: original, safe-prefix, refuse."""
    rewrite_max_new_tokens: int = 384
    threat_threshold: float | str | None = None
    """Decide the threat from the rewriter's probabilities at this threshold (``GuardConfig.threat_threshold``;
    ``auto``: the one recorded in the rewriter's folder); None: greedy decoding decides."""
    api_key_file: str | None = None
    """A file with one accepted API key per line; clients send ``Authorization: Bearer KEY``."""
    max_body_bytes: int | None = 20_000_000
    max_image_bytes: int | None = 10_000_000
    """Per decoded image."""
    max_images: int | None = 8
    max_turns: int | None = 64
    """Messages per request."""
    max_tokens: int | None = 4096
    """Largest ``max_tokens`` a client may ask for."""
    default_max_tokens: int = 512
    request_timeout: float | None = 300.0
    """Seconds for a whole request (rewrite + answer); past it: 504."""
    max_concurrency: int | None = 64
    """Requests in flight; one more is answered 429 at once."""
    max_batch: int = 8
    batch_wait_ms: float = 5.0
    log_content: bool = False
    """Access logs carry request metadata only; true adds the users' messages (privacy: off by default)."""

    @classmethod
    def unlimited(cls) -> "ServeConfig":
        """No keys, limits, timeout or bound: the plain model server's settings."""
        return cls(max_body_bytes=None, max_image_bytes=None, max_images=None, max_turns=None, max_tokens=None,
                   request_timeout=None, max_concurrency=None, default_max_tokens=256)

    @classmethod
    def load(cls, path: str | Path | None, overrides: dict[str, Any] | None = None) -> "ServeConfig":
        data: dict[str, Any] = {}
        if path is not None:
            import yaml

            path = Path(path)
            if not path.is_file():
                raise VLMGuardError(f"serve config not found: {path}")
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise VLMGuardError(f"{path}: a serve config is a mapping of settings")
        data.update({k: v for k, v in (overrides or {}).items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VLMGuardError(f"{path or 'serve settings'}: unknown key(s) {', '.join(unknown)}; valid: "
                                f"{', '.join(sorted(known))}")
        if isinstance(data.get("name"), str):
            data["name"] = [data["name"]]
        config = cls(**data)
        config.check()
        return config

    def check(self) -> None:
        from .format import FALLBACKS

        if self.fallback not in FALLBACKS:
            raise VLMGuardError(f"fallback {self.fallback!r} is not one of {', '.join(FALLBACKS)}")
        from .guard import GuardConfig

        GuardConfig(threat_threshold=self.threat_threshold)  # its own check
        for key in ("max_body_bytes", "max_image_bytes", "max_images", "max_turns", "max_tokens", "max_concurrency"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise VLMGuardError(f"{key} must be a positive integer or null, got {value!r}")
        if self.request_timeout is not None and self.request_timeout <= 0:
            raise VLMGuardError(f"request_timeout must be positive, got {self.request_timeout!r}")

    def api_keys(self) -> set[str] | None:
        if self.api_key_file is None:
            return None
        path = Path(self.api_key_file)
        try:
            keys = {line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and not line.startswith("#")}
        except OSError as e:
            raise VLMGuardError(f"api key file {path}: {e.strerror}") from None
        if not keys:
            raise VLMGuardError(f"api key file {path} holds no key (one per line)")
        return keys


@dataclass
class Metrics:
    """Counters and a window of request latencies, rendered in Prometheus' text format."""

    counters: Counter = field(default_factory=Counter)
    latencies: deque = field(default_factory=lambda: deque(maxlen=2048))
    started: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def observe(self, seconds: float) -> None:
        with self._lock:
            self.latencies.append(seconds)

    def quantiles(self) -> dict[str, float | None]:
        with self._lock:
            values = sorted(self.latencies)
        if not values:
            return {"0.5": None, "0.9": None, "0.99": None}
        return {q: values[min(len(values) - 1, int(float(q) * len(values)))] for q in ("0.5", "0.9", "0.99")}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counters = dict(self.counters)
        return {"counters": counters, "latency_s": self.quantiles(), "uptime_s": round(time.time() - self.started, 1)}

    def prometheus(self) -> str:
        lines = []
        with self._lock:
            counters = sorted(self.counters.items())
            values = list(self.latencies)
        for name, value in counters:
            metric = "vlmguard_" + name.replace(".", "_").replace("-", "_")
            lines += [f"# TYPE {metric}_total counter", f"{metric}_total {value}"]
        lines.append("# TYPE vlmguard_request_latency_seconds summary")
        for q, v in self.quantiles().items():
            lines.append(f'vlmguard_request_latency_seconds{{quantile="{q}"}} {"NaN" if v is None else f"{v:.6f}"}')
        lines += [f"vlmguard_request_latency_seconds_count {len(values)}",
                  f"vlmguard_request_latency_seconds_sum {sum(values):.6f}"]
        return "\n".join(lines) + "\n"


def log_access(request_id: str, status: int, seconds: float, **fields: Any) -> None:
    """One JSON line per request: id, status, latency and metadata (no user content unless given in fields)."""
    access_log.info(json.dumps({"id": request_id, "status": status, "latency_s": round(seconds, 4), **fields},
                               ensure_ascii=False, default=str))
