"""Toy actions in a fresh registry, for engine and loader tests: files stand in for the world they change."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeops.actions import builtin
from kubeops.actions.context import StepContext
from kubeops.actions.registry import Plan, Registry, action
from kubeops.errors import ActionError, InputError, TransientError


@dataclass(frozen=True, slots=True)
class WriteParams:
    path: str
    text: str


@dataclass(frozen=True, slots=True)
class ReadParams:
    path: str


@dataclass(frozen=True, slots=True)
class TypedParams:
    name: str
    count: int
    ratio: float = 1.0
    flag: bool = False
    items: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    maybe: str | None = None


@dataclass(frozen=True, slots=True)
class FlakyParams:
    counter: str
    failures: int
    transient: bool = True


@dataclass(frozen=True, slots=True)
class SlowParams:
    seconds: float


@dataclass(frozen=True, slots=True)
class LookupParams:
    node: str
    known: list[str] = field(default_factory=list)


def _write(ctx: StepContext, p: WriteParams) -> dict[str, Any]:
    with open(p.path, "a", encoding="utf-8") as fh:
        fh.write(p.text + "\n")
    return {"written": p.text}


def _plan_write(ctx: StepContext, p: WriteParams) -> Plan:
    return Plan(summary=f"append {p.text!r} to {p.path}", details=["one line"], outputs={"written": p.text})


def _read(ctx: StepContext, p: ReadParams) -> dict[str, Any]:
    path = Path(p.path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return {"content": text, "lines": text.splitlines(), "exists": path.exists()}


def _typed(ctx: StepContext, p: TypedParams) -> dict[str, Any]:
    return {"echo": {"name": p.name, "count": p.count, "ratio": p.ratio, "flag": p.flag, "items": p.items}}


def _flaky(ctx: StepContext, p: FlakyParams) -> dict[str, Any]:
    path = Path(p.counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    if n < p.failures:
        if p.transient:
            raise TransientError(f"flaky failure {n + 1}", delay_s=0.0)
        raise ActionError(f"flaky failure {n + 1}")
    return {"calls": n + 1}


def _slow(ctx: StepContext, p: SlowParams) -> dict[str, Any]:
    time.sleep(p.seconds)  # ignores ctx.deadline on purpose: the runner must still fail the step
    return {}


def _lookup(ctx: StepContext, p: LookupParams) -> dict[str, Any]:
    if p.node not in p.known:
        raise InputError(f"node {p.node!r} not found")
    return {"node": p.node}


def make_registry() -> Registry:
    """A fresh registry: the builtin actions plus the toys above."""
    reg = Registry()
    action("noop", params=builtin.NoopParams, mutates=False, registry=reg)(builtin.noop)
    action("sleep", params=builtin.SleepParams, mutates=False, outputs=("slept_s",), registry=reg)(builtin.sleep)
    action("log", params=builtin.LogParams, mutates=False, outputs=("message",), registry=reg)(builtin._log)
    action("fail", params=builtin.FailParams, mutates=False, registry=reg)(builtin.fail)
    action("assert", params=builtin.AssertParams, mutates=False, outputs=("value",), registry=reg)(builtin.assert_)
    action("t.write", params=WriteParams, mutates=True, plan=_plan_write, outputs=("written",), registry=reg)(_write)
    action("t.read", params=ReadParams, mutates=False, outputs=("content", "lines", "exists"), registry=reg)(_read)
    action("t.typed", params=TypedParams, mutates=False, outputs=("echo",), registry=reg)(_typed)
    action("t.flaky", params=FlakyParams, mutates=False, registry=reg)(_flaky)
    action("t.slow", params=SlowParams, mutates=False, registry=reg)(_slow)
    action("t.lookup", params=LookupParams, mutates=False, outputs=("node",), registry=reg)(_lookup)
    action("t.write_unchecked", params=WriteParams, mutates=True, plan=_plan_write, registry=reg)(_write)
    return reg
