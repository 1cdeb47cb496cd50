"""Structured logs for runs: console on a terminal, JSON lines for cron, secrets never written.

Events have stable names (`run.started`, `step.started`, `step.done`, `step.failed`, `step.skipped`,
`step.retry`, `run.done`, `run.failed`, `run.paused`, ...) and key-values; the runner binds `run_id`, `step` and
`action` on every event of a step. Events named ``*.progress`` (long waits) redraw one status line on a
terminal and are dropped from JSON output, which stays one line per meaningful event.

Redaction is a processor: keys that name secrets are masked, and values that look like secrets (bearer tokens,
AWS secret keys, webhook URLs, URLs with credentials, PEM keys) are masked wherever they appear.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|passphrase|credential|private[_-]?key|api[_-]?key|access[_-]?key|"
    r"authorization|auth[_-]?header|webhook|session[_-]?key|cookie)",
    re.IGNORECASE,
)
_SECRET_VALUE = [
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"(?i)(aws_secret_access_key|aws_session_token)\s*[=:]\s*\S+"),
    re.compile(r"https://hooks\.slack\.com/\S+"),
    re.compile(r"https?://[^\s/]*/(?:services|hooks|webhook|api/webhooks)/\S+", re.IGNORECASE),
    re.compile(r"(?<=://)[^\s/:@]+:[^\s/@]+(?=@)"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{5,}"),  # JWTs (service account tokens)
]


def redact_text(text: str) -> str:
    """Mask anything in free text that looks like a secret (used for logs, checkpoint errors and messages)."""
    for pattern in _SECRET_VALUE:
        text = pattern.sub(REDACTED, text)
    return text


def redact(value: Any, *, key: str | None = None) -> Any:
    """Mask secrets in a value (recursively); a key naming a secret masks its whole value."""
    if key is not None and _SECRET_KEY.search(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, BaseException):
        return redact_text(str(value))
    return value


def redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: never let a secret reach a log line."""
    for key in list(event_dict):
        event_dict[key] = redact(event_dict[key], key=None if key == "event" else key)
    return event_dict


def ensure_context(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Every event has `run_id`, `step` and `action` keys (null outside a run or a step), so log queries are simple."""
    for key in ("run_id", "step", "action"):
        event_dict.setdefault(key, None)
    return event_dict


def compact_for_console(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """On a terminal, say the run id once (on `run.*` events) and put the step in front instead of repeating keys.

    JSON output keeps every key on every line for log queries; a person reading at 3 a.m. needs the step and
    what happened, not the same run id and playbook twenty times.
    """
    event = str(event_dict.get("event", ""))
    if event.endswith(".progress"):
        return event_dict  # the progress line draws itself from `step`
    if not event.startswith("run."):
        event_dict.pop("run_id", None)
    if not event.startswith("fleet."):
        event_dict.pop("fleet_id", None)  # a fleet's runs keep `cluster=`, which tells the lines apart
    event_dict.pop("playbook", None)
    step = event_dict.pop("step", None)
    action = event_dict.pop("action", None)
    if event in ("step.started",) and action:
        event_dict["action"] = action
    if step:
        event_dict["event"] = f"{step}: {event}"
    if event_dict.get("attempt") == 1:
        del event_dict["attempt"]
    event_dict.pop("source", None)
    for key in [k for k, v in event_dict.items() if v is None or (k in ("planned", "resumed") and v is False)]:
        del event_dict[key]
    return event_dict


class _DropProgress:
    """JSON output: progress ticks are for eyes on a terminal, not for log files."""

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if str(event_dict.get("event", "")).endswith(".progress"):
            raise structlog.DropEvent
        return event_dict


class _ProgressConsole:
    """Console output: ``*.progress`` events redraw one line; any other event clears it first."""

    def __init__(self, stream: TextIO, colors: bool) -> None:
        self.stream = stream
        self.renderer = structlog.dev.ConsoleRenderer(colors=colors, pad_event_to=36)
        self.dirty = False

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        event = str(event_dict.get("event", ""))
        if event.endswith(".progress"):
            step = event_dict.get("step", "")
            if event_dict.get("cluster"):  # a fleet: several clusters take turns on the one line
                step = f"{event_dict['cluster']}/{step}"
            done = event_dict.get("elapsed_s")
            total = event_dict.get("timeout_s")
            what = event_dict.get("message", event)
            text = f"\r\x1b[2K  ⏳ {step}: {what}"
            if done is not None:
                text += f" {float(done):.0f}s" + (f"/{float(total):.0f}s" if total else "")
            self.stream.write(text)
            self.stream.flush()
            self.dirty = True
            raise structlog.DropEvent
        line = self.renderer(logger, method, event_dict)
        if self.dirty:
            self.dirty = False
            return "\r\x1b[2K" + line
        return line


def configure_logging(*, log_format: str = "auto", stream: TextIO | None = None, level: str = "info") -> str:
    """Configure structlog for a CLI run; returns the format chosen ("console" or "json")."""
    out = stream or sys.stderr
    fmt = log_format
    if fmt == "auto":
        fmt = "console" if getattr(out, "isatty", lambda: False)() else "json"
    if fmt not in ("console", "json"):
        from kubeops.errors import InputError

        raise InputError(f"--log-format must be auto, console or json, got {log_format!r}")
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        ensure_context,
        redact_processor,
    ]
    if fmt == "json":
        processors = [
            *shared,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _DropProgress(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ]
    else:
        processors = [
            *shared,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            compact_for_console,
            _ProgressConsole(out, colors=out.isatty()),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    return fmt


def get_logger(**bind: Any) -> Any:
    """The kubeops logger, with `bind` key-values."""
    return structlog.get_logger("kubeops").bind(**bind)
