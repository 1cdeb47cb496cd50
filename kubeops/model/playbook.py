"""The playbook model: frozen, validated shapes the runner executes. Raw YAML never gets past the loader.

A `Playbook` is fully resolved: includes are inlined (their steps renamed ``<include-step>/<inner-step>``),
every action name and argument has been checked against the registry, and every reference is known to point
at a declared parameter or an earlier step. Each `Step` keeps the file and line it came from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, NewType

from kubeops.model.windows import Window

RunId = NewType("RunId", str)
OnFailure = Literal["abort", "continue"]
PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list,),
    "mapping": (dict,),
}


@dataclass(frozen=True, slots=True)
class Source:
    """Where something was written: shown in every error and in `show`."""

    path: str
    line: int | None

    def __str__(self) -> str:
        return self.path if self.line is None else f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class ParamDecl:
    """A playbook parameter: `type` is one of PARAM_TYPES; a parameter with a default is never required."""

    name: str
    type: str = "string"
    required: bool = False
    default: Any = None
    description: str = ""
    source: Source | None = None

    def accepts(self, value: Any) -> bool:
        """Whether `value` already has this parameter's type (bools are not integers)."""
        if value is None:
            return not self.required
        if isinstance(value, bool) and self.type in ("integer", "number"):
            return False
        return isinstance(value, PARAM_TYPES[self.type])


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts (1 = no retry) with exponential backoff: backoff_s, 2*backoff_s, ... capped at max_backoff_s."""

    attempts: int = 1
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0

    def delay_s(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt number `failed_attempt` (1-based) failed."""
        return min(self.backoff_s * (2 ** (failed_attempt - 1)), self.max_backoff_s)


@dataclass(frozen=True, slots=True)
class Step:
    """One step: an action with arguments (which may hold ``${...}`` references), and how to run it."""

    name: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)
    when: Any = None  # None: always; otherwise a condition (see kubeops.model.refs.evaluate)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float | None = None
    on_failure: OnFailure = "abort"
    cleanup: bool = False  # True for steps of the `cleanup:` section
    always: bool = False  # cleanup only: also run when the run succeeded
    source: Source | None = None

    def canonical(self) -> dict[str, Any]:
        """The step's meaning without its position: what the content hash covers."""
        return {
            "name": self.name,
            "action": self.action,
            "args": self.args,
            "when": self.when,
            "retry": [self.retry.attempts, self.retry.backoff_s, self.retry.max_backoff_s],
            "timeout_s": self.timeout_s,
            "on_failure": self.on_failure,
            "cleanup": self.cleanup,
            "always": self.always,
        }


@dataclass(frozen=True, slots=True)
class Playbook:
    """A loaded, validated playbook with includes inlined."""

    name: str
    path: str
    description: str = ""
    params: tuple[ParamDecl, ...] = ()
    steps: tuple[Step, ...] = ()
    cleanup: tuple[Step, ...] = ()
    # Maintenance windows a run must be inside (all of them): this playbook's `window:` first, then those of
    # the playbooks it includes. The inventory's window applies on top (see kubeops.engine.guard).
    windows: tuple[Window, ...] = ()

    def param(self, name: str) -> ParamDecl | None:
        return next((p for p in self.params if p.name == name), None)

    def all_steps(self) -> tuple[Step, ...]:
        """Main steps, then cleanup steps: the order of a run record."""
        return self.steps + self.cleanup

    def step(self, name: str) -> Step | None:
        return next((s for s in self.all_steps() if s.name == name), None)

    @property
    def content_hash(self) -> str:
        """sha256 of the resolved playbook (includes inlined; comments, layout and lines ignored).

        Resume refuses to continue a run whose playbook hash changed, unless forced.
        """
        doc: dict[str, Any] = {
            "name": self.name,
            "params": [[p.name, p.type, p.required, p.default] for p in self.params],
            "steps": [s.canonical() for s in self.steps],
            "cleanup": [s.canonical() for s in self.cleanup],
        }
        if self.windows:  # only when set, so the hashes of playbooks without a window stay what they were
            doc["windows"] = [w.canonical() for w in self.windows]
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
