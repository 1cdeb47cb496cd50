"""Engine-level actions any playbook may use: `noop`, `sleep`, `log` (alias `echo`), `fail`, `assert`.

They touch nothing outside the run, so none of them mutates; they exist for tests, for glue between domain
steps (``assert`` a precondition, ``log`` a summary) and for playbooks that just wait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kubeops.actions.context import StepContext
from kubeops.actions.registry import action
from kubeops.errors import ActionError, InputError, TransientError


@dataclass(frozen=True, slots=True)
class NoopParams:
    """Anything in `outputs` is returned as the step's outputs (handy for tests and for naming values)."""

    outputs: dict[str, Any] = field(default_factory=dict, metadata={"help": "returned as the step's outputs"})


@action("noop", params=NoopParams, mutates=False)
def noop(ctx: StepContext, p: NoopParams) -> dict[str, Any]:
    """Do nothing; return `outputs` as given."""
    return dict(p.outputs)


@dataclass(frozen=True, slots=True)
class SleepParams:
    seconds: float = field(metadata={"help": "how long to wait"})


@action("sleep", params=SleepParams, mutates=False, outputs=("slept_s",))
def sleep(ctx: StepContext, p: SleepParams) -> dict[str, Any]:
    """Wait `seconds` (bounded by the step's timeout, which fails the step)."""
    if p.seconds < 0:
        raise InputError(f"sleep: seconds must be >= 0, got {p.seconds}")
    start = time.monotonic()
    end = start + p.seconds
    while True:
        ctx.check_deadline()
        now = time.monotonic()
        if now >= end:
            break
        limit = end - now
        remaining = ctx.remaining_s()
        if remaining is not None:
            limit = min(limit, remaining + 0.001)
        time.sleep(min(limit, 1.0))
        ctx.log.info("sleep.progress", message="sleeping", elapsed_s=time.monotonic() - start, timeout_s=p.seconds)
    return {"slept_s": round(time.monotonic() - start, 3)}


@dataclass(frozen=True, slots=True)
class LogParams:
    message: str = field(metadata={"help": "text to log (references are substituted)"})
    level: str = field(default="info", metadata={"help": "debug, info, warning or error"})
    data: dict[str, Any] = field(default_factory=dict, metadata={"help": "extra key-values for the event"})


def _log(ctx: StepContext, p: LogParams) -> dict[str, Any]:
    if p.level not in ("debug", "info", "warning", "error"):
        raise InputError(f"log: level must be debug, info, warning or error, got {p.level!r}")
    getattr(ctx.log, p.level)("playbook.message", message=p.message, **p.data)
    return {"message": p.message}


log = action("log", params=LogParams, mutates=False, outputs=("message",))(_log)
echo = action("echo", params=LogParams, mutates=False, outputs=("message",))(_log)


@dataclass(frozen=True, slots=True)
class FailParams:
    message: str = field(default="failed on purpose", metadata={"help": "the error message"})
    transient: bool = field(default=False, metadata={"help": "raise a retryable error (tests of retry)"})


@action("fail", params=FailParams, mutates=False)
def fail(ctx: StepContext, p: FailParams) -> dict[str, Any]:
    """Fail the step with `message`; for tests and for `when`-guarded guard rails."""
    if p.transient:
        raise TransientError(p.message, delay_s=0.0)
    raise ActionError(p.message)


@dataclass(frozen=True, slots=True)
class AssertParams:
    """`that` must be truthy; or, with `equals`, `that` must equal it."""

    that: Any = field(metadata={"help": "the value that must be true (usually a reference)"})
    equals: Any = field(default=None, metadata={"help": "when set, `that` must equal this"})
    message: str = field(default="", metadata={"help": "what to say when the assertion fails"})


@action("assert", params=AssertParams, mutates=False, outputs=("value",))
def assert_(ctx: StepContext, p: AssertParams) -> dict[str, Any]:
    """Stop the run unless a condition holds (a precondition check before mutating steps)."""
    ok = (p.that == p.equals) if p.equals is not None else bool(p.that) and p.that not in ("false", "False", "0")
    if not ok:
        detail = f"{p.that!r} != {p.equals!r}" if p.equals is not None else f"{p.that!r} is not true"
        raise ActionError(f"assertion failed: {p.message or detail}" + (f" ({detail})" if p.message else ""))
    return {"value": p.that}
