"""`ssh.run` and `ssh.reboot` through the action functions, against a real sshd and the sandbox's Kubernetes API."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog

from kubeops.actions import ssh as ssh_actions
from kubeops.actions.context import StepContext
from kubeops.actions.registry import default_registry
from kubeops.clients.factory import Clients
from kubeops.clients.ssh import SshCommandFailed
from kubeops.errors import ActionError, InputError, NotFound
from kubeops.sandbox.server import SANDBOX_TOKEN
from kubeops.settings import KubeSettings, Settings
from tests.ssh_fixture import Sshd, sshd_server  # noqa: F401  (provides the `sshd` fixture)


# --- a sandbox API server with one helper to write to it ----------------------------------------------------------
@dataclass
class Api:
    url: str
    kubeconfig: Path

    def send(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, method=method, data=data)
        request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def add_node(self, name: str, *, addresses: list[dict[str, str]], boot_id: str = "boot-1") -> None:
        self.send(
            "POST",
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name},
                "status": {
                    "addresses": addresses,
                    "nodeInfo": {"bootID": boot_id},
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}],
                },
            },
        )

    def set_node_status(self, name: str, *, ready: bool, boot_id: str | None = None) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status: dict[str, Any] = {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp}]
        }
        if boot_id:
            status["nodeInfo"] = {"bootID": boot_id}
        self.send("PATCH", f"/api/v1/nodes/{name}/status", {"status": status}, "application/merge-patch+json")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    from kubeops.sandbox.cluster import build_cluster
    from kubeops.sandbox.server import SandboxServer

    cluster = build_cluster()
    server = SandboxServer(cluster)
    server.start()
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "sandbox", "cluster": {"server": server.url}}],
                "users": [{"name": "u", "user": {"token": SANDBOX_TOKEN}}],
                "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "u"}}],
                "current-context": "sandbox",
            }
        )
    )
    try:
        yield Api(url=server.url, kubeconfig=kubeconfig)
    finally:
        server.stop()


# --- a StepContext built by hand ----------------------------------------------------------------------------------
@dataclass
class Recorder:
    intents: list[dict[str, Any]] = field(default_factory=list)


def make_ctx(
    sshd: Sshd,
    *,
    kubeconfig: Path | None = None,
    hosts: dict[str, str] | None = None,
    dry_run: bool = False,
    intent: dict[str, Any] | None = None,
    recorder: Recorder | None = None,
    action: str = "ssh.run",
) -> StepContext:
    settings = Settings(
        ssh=sshd.settings(hosts=hosts or {}),
        kube=KubeSettings(kubeconfig=str(kubeconfig or sshd.dir / "no-kubeconfig"), max_retries=0),
    )
    rec = recorder or Recorder()
    return StepContext(
        run_id="run-1",
        step="maintenance",
        action=action,
        settings=settings,
        clients=Clients(settings, dry_run=dry_run),
        log=structlog.get_logger(),
        dry_run=dry_run,
        intent=intent,
        _persist_intent=rec.intents.append,
    )


def test_both_actions_are_registered_with_dry_run_plans() -> None:
    registry = default_registry()
    for name in ("ssh.run", "ssh.reboot"):
        spec = registry.get(name)
        assert spec is not None and spec.mutates and spec.plan is not None


class TestRun:
    def test_runs_commands_on_an_explicit_host_and_returns_their_output(self, sshd: Sshd) -> None:
        ctx = make_ctx(sshd)
        try:
            out = ssh_actions.run(
                ctx,
                ssh_actions.RunParams(
                    node="node-a", host=sshd.host, command=[["echo", "one"], ["sh", "-c", "echo two >&2"]]
                ),
            )
        finally:
            ctx.clients.close()
        assert out["host"] == sshd.host
        assert [r["stdout"] for r in out["results"]] == ["one\n", ""]
        assert out["stderr"] == "two\n" and out["exit_code"] == 0

    def test_a_failing_command_fails_the_step_and_stops_the_list(self, sshd: Sshd, tmp_path: Path) -> None:
        after = tmp_path / "after"
        rec = Recorder()
        ctx = make_ctx(sshd, recorder=rec)
        params = ssh_actions.RunParams(
            node="node-a", host=sshd.host, command=[["sh", "-c", "echo broken >&2; exit 4"], ["touch", str(after)]]
        )
        try:
            with pytest.raises(SshCommandFailed) as info:
                ssh_actions.run(ctx, params)
        finally:
            ctx.clients.close()
        assert "exited with code 4" in str(info.value) and "broken" in str(info.value)
        assert not after.exists()
        assert rec.intents[-1] == {"host": sshd.host, "commands": 2, "completed": 0}

    def test_a_resumed_step_skips_the_commands_an_earlier_attempt_completed(self, sshd: Sshd, tmp_path: Path) -> None:
        first, second = tmp_path / "first", tmp_path / "second"
        intent = {"host": sshd.host, "commands": 2, "completed": 1}
        ctx = make_ctx(sshd, intent=intent)
        params = ssh_actions.RunParams(node="node-a", command=[["touch", str(first)], ["touch", str(second)]])
        try:
            out = ssh_actions.run(ctx, params)
        finally:
            ctx.clients.close()
        assert not first.exists() and second.exists()
        assert "skipped" in out["results"][0]

    def test_the_inventory_host_mapping_is_used_without_asking_kubernetes(self, sshd: Sshd) -> None:
        ctx = make_ctx(sshd, hosts={"node-a": sshd.host})  # no kubeconfig: a Kubernetes call would fail
        try:
            out = ssh_actions.run(ctx, ssh_actions.RunParams(node="node-a", command=["hostname"]))
        finally:
            ctx.clients.close()
        assert out["host"] == sshd.host and out["stdout"].strip()

    def test_the_host_is_the_nodes_internal_ip_from_the_api(self, sshd: Sshd, api: Api) -> None:
        api.add_node(
            "node-ip",
            addresses=[
                {"type": "Hostname", "address": "no-such-host.invalid"},
                {"type": "InternalIP", "address": "127.0.0.1"},
            ],
        )
        ctx = make_ctx(sshd, kubeconfig=api.kubeconfig)
        try:
            out = ssh_actions.run(ctx, ssh_actions.RunParams(node="node-ip", command=["echo", "$HOME is literal"]))
        finally:
            ctx.clients.close()
        assert out["host"] == "127.0.0.1"
        assert out["stdout"] == "$HOME is literal\n"

    def test_a_node_without_addresses_fails_with_a_hint(self, sshd: Sshd, api: Api) -> None:
        api.add_node("node-bare", addresses=[])
        ctx = make_ctx(sshd, kubeconfig=api.kubeconfig)
        with pytest.raises(ActionError) as info:
            ssh_actions.run(ctx, ssh_actions.RunParams(node="node-bare", command=["true"]))
        assert "ssh.hosts.node-bare" in str(info.value)

    def test_an_unknown_node_is_not_found(self, sshd: Sshd, api: Api) -> None:
        ctx = make_ctx(sshd, kubeconfig=api.kubeconfig)
        with pytest.raises(NotFound):
            ssh_actions.run(ctx, ssh_actions.RunParams(node="ghost", command=["true"]))

    def test_the_plan_names_host_and_commands_and_connects_to_nothing(self, sshd: Sshd, tmp_path: Path) -> None:
        marker = tmp_path / "ran"
        before = sshd.log_text().count("Connection from")
        ctx = make_ctx(sshd, dry_run=True)
        params = ssh_actions.RunParams(
            node="node-a", host=sshd.host, command=["touch", str(marker)], sudo=True, env={"TOKEN": "s3cr3t"}
        )
        plan = ssh_actions.plan_run(ctx, params)
        out = ssh_actions.run(ctx, params)  # an engine calling the action itself in a dry run gets the plan
        assert plan.details == [f"{sshd.host}$ sudo env 'TOKEN=***' touch {marker}"]
        assert plan.outputs["results"][0]["dry_run"] and out["results"][0]["dry_run"]
        assert "s3cr3t" not in repr(plan) + repr(out)
        time.sleep(0.2)
        assert not marker.exists()
        assert sshd.log_text().count("Connection from") == before

    def test_a_command_given_as_a_string_is_refused(self, sshd: Sshd) -> None:
        with pytest.raises(InputError):
            ssh_actions.normalise_commands([])
        with pytest.raises(InputError, match="list of arguments"):
            ssh_actions.run(make_ctx(sshd), ssh_actions.RunParams(node="n", host=sshd.host, command="reboot"))  # type: ignore[arg-type]


class TestReboot:
    def _driver(self, api: Api, node: str, marker: Path, new_boot: str) -> threading.Thread:
        """Plays the node: once the reboot command has run, goes NotReady, then Ready with a new bootID."""

        def play() -> None:
            deadline = time.monotonic() + 20
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            api.set_node_status(node, ready=False)
            time.sleep(0.5)
            api.set_node_status(node, ready=True, boot_id=new_boot)

        thread = threading.Thread(target=play, daemon=True)
        thread.start()
        return thread

    def test_reboots_tolerating_the_dropped_connection_and_waits_for_a_new_boot(
        self, sshd: Sshd, api: Api, tmp_path: Path
    ) -> None:
        marker = tmp_path / "rebooted"
        api.add_node("node-rb", addresses=[{"type": "InternalIP", "address": "127.0.0.1"}], boot_id="boot-1")
        rec = Recorder()
        ctx = make_ctx(sshd, kubeconfig=api.kubeconfig, recorder=rec, action="ssh.reboot")
        driver = self._driver(api, "node-rb", marker, "boot-2")
        # like a real reboot, the command takes the SSH session down with it: that must not fail the step
        params = ssh_actions.RebootParams(
            node="node-rb",
            command=["sh", "-c", f"touch {marker}; kill -9 $PPID"],
            sudo=False,
            poll_interval_s=0.05,
            timeout_s=20,
        )
        try:
            out = ssh_actions.reboot(ctx, params)
        finally:
            ctx.clients.close()
        driver.join(5)
        assert marker.exists()
        assert out["sent"] is True
        assert (out["boot_id_before"], out["boot_id_after"]) == ("boot-1", "boot-2")
        assert rec.intents and rec.intents[0]["phase"] == "reboot-sent" and rec.intents[0]["boot_id"] == "boot-1"

    def test_a_resumed_reboot_whose_boot_id_changed_only_waits(self, sshd: Sshd, api: Api, tmp_path: Path) -> None:
        marker = tmp_path / "rebooted-again"
        api.add_node("node-rs", addresses=[{"type": "InternalIP", "address": "127.0.0.1"}], boot_id="boot-new")
        intent = {"phase": "reboot-sent", "host": "127.0.0.1", "boot_id": "boot-old", "sent_at": time.time() - 30}
        ctx = make_ctx(sshd, kubeconfig=api.kubeconfig, intent=intent, action="ssh.reboot")
        params = ssh_actions.RebootParams(
            node="node-rs", command=["touch", str(marker)], sudo=False, poll_interval_s=0.05
        )
        try:
            out = ssh_actions.reboot(ctx, params)
        finally:
            ctx.clients.close()
        assert out["sent"] is False and out["boot_id_after"] == "boot-new"
        assert not marker.exists()

    def test_a_resumed_reboot_that_never_happened_is_sent_again_once(
        self, sshd: Sshd, api: Api, tmp_path: Path
    ) -> None:
        marker = tmp_path / "second-send"
        api.add_node("node-lost", addresses=[{"type": "InternalIP", "address": "127.0.0.1"}], boot_id="boot-1")
        # sent 3.5 s ago, no sign of it since: after `down_timeout_s` (4 s) the step concludes it never happened
        sent_at = time.time() - 3.5
        intent = {"phase": "reboot-sent", "host": "127.0.0.1", "boot_id": "boot-1", "sent_at": sent_at, "sends": 1}
        rec = Recorder()
        ctx = make_ctx(sshd, kubeconfig=api.kubeconfig, intent=intent, recorder=rec, action="ssh.reboot")
        driver = self._driver(api, "node-lost", marker, "boot-2")
        params = ssh_actions.RebootParams(
            node="node-lost",
            command=["touch", str(marker)],
            sudo=False,
            poll_interval_s=0.05,
            down_timeout_s=4,
            timeout_s=20,
        )
        try:
            out = ssh_actions.reboot(ctx, params)
        finally:
            ctx.clients.close()
        driver.join(5)
        assert marker.exists() and out["sent"] is True and out["boot_id_after"] == "boot-2"
        assert rec.intents[-1]["sends"] == 2

    def test_a_node_that_never_goes_down_fails_the_step(self, sshd: Sshd, api: Api, tmp_path: Path) -> None:
        marker = tmp_path / "sent"
        api.add_node("node-stuck", addresses=[{"type": "InternalIP", "address": "127.0.0.1"}])
        ctx = make_ctx(sshd, kubeconfig=api.kubeconfig, action="ssh.reboot")
        params = ssh_actions.RebootParams(
            node="node-stuck", command=["touch", str(marker)], sudo=False, poll_interval_s=0.05, down_timeout_s=0.5
        )
        try:
            with pytest.raises(ActionError, match="no sign of rebooting"):
                ssh_actions.reboot(ctx, params)
        finally:
            ctx.clients.close()
        assert marker.exists()

    def test_the_reboot_plan_reads_the_node_and_sends_nothing(self, sshd: Sshd, api: Api, tmp_path: Path) -> None:
        marker = tmp_path / "planned"
        api.add_node("node-plan", addresses=[{"type": "InternalIP", "address": "127.0.0.1"}], boot_id="boot-p")
        ctx = make_ctx(sshd, kubeconfig=api.kubeconfig, dry_run=True, action="ssh.reboot")
        params = ssh_actions.RebootParams(node="node-plan", command=["touch", str(marker)], sudo=False)
        plan = ssh_actions.plan_reboot(ctx, params)
        out = ssh_actions.reboot(ctx, params)
        assert plan.outputs["boot_id_before"] == "boot-p" and out["boot_id_before"] == "boot-p"
        assert f"127.0.0.1$ touch {marker}" in plan.details
        assert not marker.exists()
