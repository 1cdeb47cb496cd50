"""`ssh.run` and `ssh.reboot` with the node served by a real sandbox process and the commands run by a real sshd.

The scenario's node is given the InternalIP 127.0.0.1 through the API (scenarios choose addresses themselves),
so the address the actions connect to really comes from the Node object.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
import structlog.testing

from kubeops.actions import ssh as ssh_actions
from kubeops.actions.context import StepContext
from kubeops.clients.factory import Clients
from kubeops.sandbox.testing import SandboxProcess
from kubeops.settings import KubeSettings, Settings
from tests.ssh_fixture import Sshd, sshd_server  # noqa: F401  (provides the `sshd` fixture)

SCENARIO = {"name": "ssh", "nodes": [{"name": "node-ssh", "zone": "us-east-1a"}]}
MERGE = "application/merge-patch+json"


def start(sandbox_factory: Callable[..., SandboxProcess]) -> SandboxProcess:
    sandbox = sandbox_factory(SCENARIO)
    code, body = sandbox.request(
        "PATCH",
        "/api/v1/nodes/node-ssh/status",
        {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}},
        content_type=MERGE,
    )
    assert code == 200, body
    return sandbox


def context(sshd: Sshd, sandbox: SandboxProcess, intents: list[dict[str, Any]]) -> StepContext:
    settings = Settings(ssh=sshd.settings(), kube=KubeSettings(kubeconfig=str(sandbox.kubeconfig)))
    return StepContext(
        run_id="run-sb",
        step="maintenance",
        action="ssh.run",
        settings=settings,
        clients=Clients(settings),
        log=structlog.get_logger(),
        _persist_intent=intents.append,
    )


def set_ready(sandbox: SandboxProcess, *, ready: bool, boot_id: str | None = None) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp}]
    }
    if boot_id:
        status["nodeInfo"] = {"bootID": boot_id}
    code, body = sandbox.request("PATCH", "/api/v1/nodes/node-ssh/status", {"status": status}, content_type=MERGE)
    assert code == 200, body


def test_ssh_run_connects_to_the_nodes_internal_ip_and_only_reads_the_api(
    sshd: Sshd, sandbox_factory: Callable[..., SandboxProcess]
) -> None:
    sandbox = start(sandbox_factory)
    ctx = context(sshd, sandbox, [])
    try:
        out = ssh_actions.run(ctx, ssh_actions.RunParams(node="node-ssh", command=["echo", "$(uname)"]))
    finally:
        ctx.clients.close()
    assert out["host"] == "127.0.0.1"
    assert out["stdout"] == "$(uname)\n"
    ours: list[str] = []
    for _ in range(50):  # the sandbox writes its request log asynchronously
        ours = [r["method"] for r in sandbox.requests() if r["user_agent"].startswith("kubeops")]
        if ours:
            break
        time.sleep(0.05)
    assert ours == ["GET"]


def test_ssh_reboot_waits_through_a_readiness_transition_driven_through_the_api(
    sshd: Sshd, sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path
) -> None:
    sandbox = start(sandbox_factory)
    marker = tmp_path / "reboot-sent"
    intents: list[dict[str, Any]] = []
    ctx = context(sshd, sandbox, intents)
    boot_before = sandbox.request("GET", "/api/v1/nodes/node-ssh")[1]["status"]["nodeInfo"]["bootID"]

    def play_the_node() -> None:
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        set_ready(sandbox, ready=False)
        time.sleep(2.0)  # down long enough for a progress report while it is
        set_ready(sandbox, ready=True, boot_id="boot-after-reboot")

    driver = threading.Thread(target=play_the_node, daemon=True)
    driver.start()
    params = ssh_actions.RebootParams(
        node="node-ssh",
        command=["sh", "-c", f"touch {marker}; kill -9 $PPID"],
        sudo=False,
        poll_interval_s=0.1,
        timeout_s=30,
    )
    try:
        with structlog.testing.capture_logs() as events:
            out = ssh_actions.reboot(ctx, params)
    finally:
        ctx.clients.close()
    driver.join(5)
    assert marker.exists()
    assert out["sent"] is True and out["host"] == "127.0.0.1"
    assert (out["boot_id_before"], out["boot_id_after"]) == (boot_before, "boot-after-reboot")
    assert intents[0]["boot_id"] == boot_before  # recorded before the reboot command was sent
    # polled every 0.1 s, but a terminal hears about it at most once a second, down phase included
    ticks = [e for e in events if e["event"] == "ssh.reboot.progress"]
    assert ticks and ticks[0]["message"].startswith("waiting for node node-ssh to go down for the reboot")
    assert any(e["message"].startswith("waiting for node node-ssh to be Ready again (Ready=False") for e in ticks)
    elapsed = [e["elapsed_s"] for e in ticks]
    assert len(ticks) <= out["waited_s"] + 1 and all(b - a >= 0.9 for a, b in itertools.pairwise(elapsed))
