"""SSH in a rehearsal: commands are recorded, never sent.

Why: the snapshot's nodes keep their real addresses, so a rehearsal must never open a connection, yet an
operator rehearsing `maintain-node` wants to see what would run where. The rehearsal's clients replace the SSH
client with `RecordingSsh` (the same choke point the dry run uses): every command is quoted exactly as the real
client would send it (`build_command`, environment values redacted), appended to `sent`, and answered with exit
code 0 and no output. A playbook that reads a command's output therefore sees empty output; one that reboots a
node cannot be rehearsed yet (the sandbox has no reboot), which `reboot_steps` finds before anything starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubeops.clients.factory import Clients
from kubeops.clients.ssh import CommandResult, build_command
from kubeops.model import refs
from kubeops.model.playbook import Playbook, Step

__all__ = ["RecordingSsh", "RehearsalClients", "reboot_steps"]


class RecordingSsh:
    """The SSH client of a rehearsal: records each command (display form) and reports success."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    def run(self, host: str, argv: Sequence[str], *, sudo: bool = False, env: Mapping[str, str] | None = None,
            timeout_s: float | None = None, check: bool = True, port: int | None = None,
            user: str | None = None) -> CommandResult:
        shown = build_command(argv, sudo=sudo, env=env, timeout_s=timeout_s).display
        self.sent.append({"host": host, "command": shown})
        return CommandResult(host=host, command=shown, exit_code=0, stdout="", stderr="")

    def close(self) -> None:
        """Nothing was opened."""


class RehearsalClients(Clients):
    """The run's clients with SSH recorded instead of sent (Kubernetes and AWS are the private sandbox's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ssh = RecordingSsh()

    @property
    def ssh(self) -> RecordingSsh:
        return self._ssh  # type: ignore[no-any-return]


def reboot_steps(playbook: Playbook, params: Mapping[str, Any]) -> list[Step]:
    """The `ssh.reboot` steps that may run with these parameters: any whose `when` is not false from the
    parameters alone (a condition on step outputs or run values cannot be known before the run)."""
    out = []
    for step in (*playbook.steps, *playbook.cleanup):
        if step.action != "ssh.reboot":
            continue
        if step.when is not None and all(r.root == "params" for r, _ in refs.walk_refs(step.when)):
            scope = refs.Scope(params=params, outputs={}, run={})
            if not refs.evaluate(step.when, scope):
                continue
        out.append(step)
    return out
