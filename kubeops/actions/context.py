"""What an action sees while it runs: its run, its step, its clients, its deadline and its checkpointed intent.

The engine builds one StepContext per step attempt. Actions never read settings files, environment variables or
the checkpoint directly: everything comes through here, which keeps them easy to test with a fresh context.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubeops.errors import ActionError

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from kubeops.clients.factory import Clients
    from kubeops.settings import Settings


@dataclass(slots=True)
class StepContext:
    """Per-attempt handle given to an action function or plan."""

    run_id: str
    step: str
    action: str
    settings: Settings
    clients: Clients
    log: FilteringBoundLogger
    dry_run: bool = False
    attempt: int = 1
    resumed: bool = False  # True when this step was left `running` by a crashed process and is re-entered
    intent: dict[str, Any] | None = None  # what an earlier attempt recorded before acting, if anything
    deadline: float | None = None  # time.monotonic() value after which the step has timed out
    _persist_intent: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False)

    @property
    def kube(self) -> Any:
        """The Kubernetes client for this run's cluster (built on first use)."""
        return self.clients.kube

    @property
    def aws(self) -> Any:
        """The AWS client for this run's account and region (built on first use)."""
        return self.clients.aws

    @property
    def ssh(self) -> Any:
        """The SSH client for this run's nodes (built on first use)."""
        return self.clients.ssh

    def record_intent(self, intent: dict[str, Any]) -> None:
        """Persist what this step is about to do, atomically, before it does it; resume reads it back."""
        self.intent = dict(intent)
        if self._persist_intent is not None:
            self._persist_intent(self.intent)

    def record_node_event(self, node: str, reason: str, what: str, *, type_: str = "Normal") -> bool:
        """Note on the Node what this step did (`kubectl describe node` shows it), naming the run and step.

        Best effort: a refused Event is logged and the step goes on (see kubeops.clients.events)."""
        from kubeops.clients import events

        message = f"{what} by kubeops run {self.run_id} (step {self.step})"
        done = events.record(self.kube, regarding=events.node_ref(node), reason=reason, message=message,
                             run_id=self.run_id, action=self.action, type_=type_)
        if not done:
            self.log.warning("k8s.event_not_recorded", node=node, reason=reason)
        return done

    def remaining_s(self, default: float | None = None) -> float | None:
        """Seconds until the step's timeout; `default` when the step has none."""
        if self.deadline is None:
            return default
        return max(0.0, self.deadline - time.monotonic())

    def check_deadline(self) -> None:
        """Raise when the step's timeout has passed; long loops call this between waits."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise ActionError(f"step {self.step!r} timed out")
