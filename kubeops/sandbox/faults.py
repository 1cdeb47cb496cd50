"""Fault injection: make the sandbox fail the way a loaded or flaky API server does.

A `FaultConfig` comes from the scenario's ``faults:`` block, CLI flags (``--fault-500 0.1`` ...) or
``POST /sandbox/v1/faults`` at run time (body: the fields below; ``{}`` switches faults off). For each request to
the Kubernetes API (never to ``/sandbox/v1/``) `Faults.decide` picks at most one fault: dropped connection, 401
Unauthorized, 403 Forbidden, 500, 503 or 429 (with ``Retry-After``), in that order of precedence, each with its own
rate (``drop_rate``, ``error_401_rate``, ``error_403_rate``, ``error_500_rate``, ``error_503_rate``,
``error_429_rate``); ``latency_ms`` (+ uniform ``jitter_ms``) is added to every matching request. ``methods``,
``path_prefix`` and ``path_regex`` narrow which requests are eligible: ``path_prefix`` matches whole path segments
and ``*`` stands for one segment, so ``/api/v1/nodes/*/proxy`` faults every kubelet proxy call (cAdvisor) and
nothing else, e.g. to see a client fall back to metrics.k8s.io on a 403. ``max_faults`` stops injecting after
that many faults (handy for "the next 2 requests fail").
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any


class FaultConfigError(ValueError):
    """A faults block with an unknown key or a value out of range; str() names the field."""


@dataclass(frozen=True, slots=True)
class FaultConfig:
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    error_429_rate: float = 0.0
    error_403_rate: float = 0.0
    error_401_rate: float = 0.0
    retry_after_s: int = 1
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    methods: tuple[str, ...] = ()
    path_regex: str = ""
    path_prefix: str = ""
    max_faults: int | None = None
    seed: int | None = None

    @property
    def active(self) -> bool:
        return any((self.error_500_rate, self.error_503_rate, self.error_429_rate, self.error_403_rate,
                    self.error_401_rate, self.drop_rate, self.latency_ms, self.jitter_ms))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FaultConfig:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise FaultConfigError(f"unknown fault setting {key!r} (known: {', '.join(sorted(known))})")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key.endswith("_rate"):
                try:
                    rate = float(value)
                except (TypeError, ValueError):
                    raise FaultConfigError(f"{key}: expected a number between 0 and 1, got {value!r}") from None
                if not 0.0 <= rate <= 1.0:
                    raise FaultConfigError(f"{key}: expected a number between 0 and 1, got {value!r}")
                kwargs[key] = rate
            elif key in ("latency_ms", "jitter_ms"):
                try:
                    kwargs[key] = float(value)
                except (TypeError, ValueError):
                    raise FaultConfigError(f"{key}: expected milliseconds, got {value!r}") from None
                if kwargs[key] < 0:
                    raise FaultConfigError(f"{key}: must not be negative")
            elif key in ("retry_after_s", "max_faults", "seed"):
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                    raise FaultConfigError(f"{key}: expected a non-negative integer, got {value!r}")
                kwargs[key] = value
            elif key == "methods":
                if isinstance(value, str):
                    value = [value]
                kwargs[key] = tuple(str(m).upper() for m in value or ())
            elif key == "path_regex":
                try:
                    re.compile(str(value or ""))
                except re.error as exc:
                    raise FaultConfigError(f"path_regex: {exc}") from None
                kwargs[key] = str(value or "")
            elif key == "path_prefix":
                if value and not str(value).startswith("/"):
                    raise FaultConfigError(f"path_prefix: expected a path starting with '/', got {value!r}")
                kwargs[key] = str(value or "").rstrip("/")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = list(self.methods)
        return d


def prefix_pattern(prefix: str) -> re.Pattern[str]:
    """``/api/v1/nodes/*/proxy`` -> a regex matching that path and anything below it (``*`` = one segment)."""
    parts = [r"[^/]+" if seg == "*" else re.escape(seg) for seg in prefix.rstrip("/").split("/")]
    return re.compile("/".join(parts) + r"(?:/|$)")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # "drop", "401", "403", "500", "503", "429" or "" (latency only)
    delay_s: float


class Faults:
    """The current fault configuration, swappable at run time; decides per request."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.set(config or FaultConfig())

    def set(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self._pattern = re.compile(config.path_regex) if config.path_regex else None
            self._prefix = prefix_pattern(config.path_prefix) if config.path_prefix else None
            self.injected = 0

    def decide(self, method: str, path: str) -> Fault | None:
        cfg = self.config
        if not cfg.active:
            return None
        if cfg.methods and method.upper() not in cfg.methods:
            return None
        if self._pattern is not None and not self._pattern.search(path):
            return None
        if self._prefix is not None and not self._prefix.match(path):
            return None
        with self._lock:
            rng = self._rng
            delay = (cfg.latency_ms + (rng.uniform(0, cfg.jitter_ms) if cfg.jitter_ms else 0.0)) / 1000.0
            kind = ""
            if cfg.max_faults is None or self.injected < cfg.max_faults:
                for name, rate in (("drop", cfg.drop_rate), ("401", cfg.error_401_rate),
                                   ("403", cfg.error_403_rate), ("500", cfg.error_500_rate),
                                   ("503", cfg.error_503_rate), ("429", cfg.error_429_rate)):
                    if rate and rng.random() < rate:
                        kind = name
                        self.injected += 1
                        break
        if not kind and not delay:
            return None
        return Fault(kind, delay)
