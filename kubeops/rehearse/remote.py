"""SSH in a rehearsal: commands are recorded, never sent.

Why: the snapshot's nodes keep their real addresses, so a rehearsal must never open a connection, yet an
operator rehearsing `maintain-node` wants to see what would run where. The rehearsal's clients replace the SSH
client with `RecordingSsh` (the same choke point the dry run uses): every command is quoted exactly as the real
client would send it (`build_command`, environment values redacted), appended to `sent`, and answered with exit
code 0 and no output. A playbook that reads a command's output therefore sees empty output.

A reboot (`ssh.reboot`, which sends through `send_reboot`) is recorded too, and the private sandbox's copy of the
node goes through one over the Kubernetes API, as its kubelet would report it: Ready=False with a new bootID at
once, Ready=True `reboot_s` later (real seconds divided by the speed). The action then waits for it exactly as it
waits for a real node, so the report predicts the reboot's time.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubeops.clients.factory import Clients
from kubeops.clients.nodes import MERGE_PATCH
from kubeops.clients.ssh import CommandResult, build_command

__all__ = ["RecordingSsh", "RehearsalClients"]


class RecordingSsh:
    """The SSH client of a rehearsal: records each command (display form) and reports success; a reboot makes
    the sandbox's node go NotReady with a new boot, then Ready after `reboot_s` (see the module docstring)."""

    def __init__(self, *, kube: Callable[[], Any] | None = None, reboot_s: float = 60.0) -> None:
        self.sent: list[dict[str, Any]] = []
        self._kube = kube  # makes a client of the private sandbox (one per thread)
        self.reboot_s = reboot_s
        self._timers: list[threading.Timer] = []

    def run(self, host: str, argv: Sequence[str], *, sudo: bool = False, env: Mapping[str, str] | None = None,
            timeout_s: float | None = None, check: bool = True, port: int | None = None,
            user: str | None = None) -> CommandResult:
        shown = build_command(argv, sudo=sudo, env=env, timeout_s=timeout_s).display
        self.sent.append({"host": host, "command": shown})
        return CommandResult(host=host, command=shown, exit_code=0, stdout="", stderr="")

    def send_reboot(self, host: str, argv: Sequence[str], *, node: str, sudo: bool = False,
                    timeout_s: float | None = None) -> CommandResult:
        shown = build_command(argv, sudo=sudo).display
        self.sent.append({"host": host, "command": shown, "node": node, "reboot": True})
        if self._kube is not None:
            self._set_ready(node, ready=False, boot_id=uuid.uuid4().hex)  # the machine goes down
            timer = threading.Timer(self.reboot_s, self._set_ready, args=(node,), kwargs={"ready": True})
            timer.daemon = True
            self._timers.append(timer)
            timer.start()  # ...and its kubelet reports Ready once it is back
        return CommandResult(host=host, command=shown, exit_code=0, stdout="", stderr="")

    def _set_ready(self, node: str, *, ready: bool, boot_id: str | None = None) -> None:
        assert self._kube is not None
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status: dict[str, Any] = {"conditions": [{
            "type": "Ready", "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "kubelet is posting ready status" if ready else "node is rebooting (rehearsal)",
            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}
        if boot_id:
            status["nodeInfo"] = {"bootID": boot_id}
        kube = self._kube()
        try:
            kube.request("PATCH", f"/api/v1/nodes/{node}/status", what=f"reboot node {node} (rehearsal)",
                         body={"status": status}, content_type=MERGE_PATCH)
        finally:
            closer = getattr(kube, "close", None)
            if closer is not None:
                closer()

    def close(self) -> None:
        """Nothing was opened; pending reboots are abandoned (the private sandbox goes away with them)."""
        for timer in self._timers:
            timer.cancel()


class RehearsalClients(Clients):
    """The run's clients with SSH recorded instead of sent (Kubernetes and AWS are the private sandbox's)."""

    def __init__(self, *args: Any, reboot_s: float = 60.0, pace: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from kubeops.clients.kube import KubeClient

        settings = self.settings
        self._ssh = RecordingSsh(kube=lambda: KubeClient.from_settings(settings.kube), reboot_s=reboot_s)
        self._pace = pace

    @property
    def kube(self) -> Any:
        """The private sandbox's client, paced like it: at --speed=N a budget's backoff is N times shorter too."""
        client = super().kube
        client.pace = self._pace
        return client

    @property
    def ssh(self) -> RecordingSsh:
        return self._ssh  # type: ignore[no-any-return]
