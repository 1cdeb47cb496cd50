"""Test-only actions for crash/resume tests, loaded into the CLI with KUBEOPS_ACTION_MODULES=tests.engine.crash_actions.

`crash.effect` blocks at two gates so a test can SIGKILL the process before and after its side effect: it
announces `<gates>/<name>.entered`, waits for `<name>.start`, records its intent, appends `<name>` to the log
unless the log already has it (reconciling with the world, as a real action would on resume), announces
`<name>.effected`, then waits for `<name>.end`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeops.actions.context import StepContext
from kubeops.actions.registry import DEFAULT_REGISTRY, Plan, action
from kubeops.errors import ActionError


@dataclass(frozen=True, slots=True)
class EffectParams:
    name: str
    log: str
    gates: str


@dataclass(frozen=True, slots=True)
class AppendParams:
    log: str
    text: str


@dataclass(frozen=True, slots=True)
class RequireParams:
    path: str


def _append(log: Path, text: str) -> None:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _wait(path: Path) -> None:
    while not path.exists():
        time.sleep(0.005)


def _plan_effect(ctx: StepContext, p: EffectParams) -> Plan:
    return Plan(summary=f"append {p.name} to {p.log}", outputs={"effect": p.name})


@action(
    "crash.effect", params=EffectParams, mutates=True, plan=_plan_effect, outputs=("effect",), registry=DEFAULT_REGISTRY
)
def effect(ctx: StepContext, p: EffectParams) -> dict[str, Any]:
    """Blocking side effect, exactly once across crashes."""
    gates, log = Path(p.gates), Path(p.log)
    (gates / f"{p.name}.entered").touch()
    _wait(gates / f"{p.name}.start")
    if ctx.intent is None:
        ctx.record_intent({"append": p.name})
    done = log.exists() and p.name in log.read_text(encoding="utf-8").splitlines()
    if not done:
        _append(log, p.name)
    (gates / f"{p.name}.effected").touch()
    _wait(gates / f"{p.name}.end")
    return {"effect": p.name}


def _plan_append(ctx: StepContext, p: AppendParams) -> Plan:
    return Plan(summary=f"append {p.text!r} to {p.log}", outputs={})


@action("crash.append", params=AppendParams, mutates=True, plan=_plan_append, registry=DEFAULT_REGISTRY)
def append(ctx: StepContext, p: AppendParams) -> dict[str, Any]:
    """Append a line (not idempotent: tests count lines to prove steps did not run twice)."""
    _append(Path(p.log), p.text)
    return {}


@action("crash.require", params=RequireParams, mutates=False, registry=DEFAULT_REGISTRY)
def require(ctx: StepContext, p: RequireParams) -> dict[str, Any]:
    """Fail unless a file exists (the 'cause' a test fixes before resuming)."""
    if not Path(p.path).exists():
        raise ActionError(f"required file {p.path} is missing")
    return {}
