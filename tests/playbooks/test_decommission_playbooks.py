"""The shipped node playbooks through the real CLI (`kubeops ...` in a subprocess) against a sandbox over HTTP.

What a user sees: exit codes, messages naming pods and budgets, nothing changed when the input is wrong or the
run is a dry run (checked in the sandbox's request log), and a drain killed with SIGKILL finished by `resume`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

from tests.k8s_sandbox import Sandbox, sandbox_maker  # noqa: F401  (provides `make_sandbox`)
from tests.ssh_fixture import sshd_server  # noqa: F401  (provides the `sshd` fixture)


def cli_env(sb: Sandbox) -> dict[str, str]:
    env = dict(os.environ)
    env["KUBEOPS_INVENTORY_DIR"] = str(sb.inventory_dir)
    env["KUBEOPS_STATE_DIR"] = str(sb.folder / "state")
    env["KUBEOPS_LOG_FORMAT"] = "json"
    return env


def kubeops(sb: Sandbox, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from kubeops.cli import main; main()", *args],
        env=cli_env(sb), capture_output=True, text=True, timeout=timeout,
    )


def mutations(sb: Sandbox, since: int = 0) -> list[dict[str, Any]]:
    """Writes to the cluster, except the run's own lock (a coordination.k8s.io Lease taken and released by the
    engine's guard around every real run): that is kubeops' bookkeeping, not a change to any workload or node."""
    return [r for r in sb.requests()[since:] if r["method"] != "GET" and r.get("resource") != "leases"]


def writes(sb: Sandbox, since: int = 0) -> list[dict[str, Any]]:
    """Every write to the cluster, the lock's Lease included."""
    return [r for r in sb.requests()[since:] if r["method"] != "GET"]


def settle(sb: Sandbox, node: str, count: int) -> None:
    sb.wait_for(lambda: len(sb.pods_on(node)) == count, what=f"{count} pods on {node}")


def use_ssh(sb: Sandbox, sshd: Any) -> None:
    """Point the sandbox inventory's SSH at the test sshd: worker-a is 127.0.0.1, its host key known."""
    import yaml

    ssh = sshd.settings()
    (sb.inventory_dir / "sandbox.yaml").write_text(yaml.safe_dump({
        "name": "sandbox",
        "kube": {"kubeconfig": str(sb.kubeconfig), "context": "sandbox"},
        "ssh": {"user": ssh.user, "port": ssh.port, "key_filename": ssh.key_filename,
                "known_hosts": ssh.known_hosts, "connect_timeout_s": 5, "hosts": {"worker-a": "127.0.0.1"}},
    }))


TWO_WORKERS = {
    "namespaces": ["apps"],
    "nodes": [{"name": "worker-a", "role": "worker"},
              {"name": "worker-b", "role": "worker", "taints": [{"key": "hold", "effect": "NoSchedule"}]}],
}


def web(replicas: int = 2, **extra: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": replicas, **extra}


def release_worker_b(sb: Sandbox) -> None:
    """Lift the taint that kept the replicas on worker-a (as an operator adding capacity would)."""
    kube = sb.kube()
    kube.request("PATCH", "/api/v1/nodes/worker-b", body={"spec": {"taints": None}},
                 content_type="application/merge-patch+json", what="test: release worker-b")


def test_unknown_node_exits_2_and_sends_no_mutating_request(make_sandbox):
    sb = make_sandbox({**TWO_WORKERS, "workloads": [web()]})
    mark = sb.mark()
    for task in ("decommission", "drain", "cordon", "maintain"):
        done = kubeops(sb, task, "--node=ghost")
        assert done.returncode == 2, done.stderr
        assert "node 'ghost' not found" in done.stderr
    assert writes(sb, mark) == []  # not even the lock: it is taken only before the first change


def test_dry_run_decommission_changes_nothing_and_every_write_is_a_server_side_dry_run(make_sandbox):
    sb = make_sandbox({**TWO_WORKERS, "workloads": [web(pdb={"min_available": 1})]})
    settle(sb, "worker-a", 2)
    release_worker_b(sb)
    before = sorted(p["metadata"]["uid"] for p in sb.pods_on("worker-a"))
    mark = sb.mark()
    done = kubeops(sb, "decommission", "--node=worker-a", "--delete-node", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would drain node worker-a: 2 eviction(s)" in done.stdout
    writes = mutations(sb, mark)
    assert writes, "a dry run still asks the server (dryRun=All) about each change"
    assert all(r.get("dry_run") for r in writes), writes
    assert sorted(p["metadata"]["uid"] for p in sb.pods_on("worker-a")) == before
    assert not sb.get("/api/v1/nodes/worker-a")["spec"].get("unschedulable")


def test_capacity_check_refuses_before_any_change(make_sandbox):
    sb = make_sandbox({
        "nodes": [{"name_prefix": "worker-", "count": 2, "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"}}],
        "workloads": [{"kind": "Deployment", "name": "big", "replicas": 2,
                       "resources": {"requests": {"cpu": "1500m"}}}],
    })
    sb.wait_for(lambda: len(sb.pods_on("worker-0")) == 1 and len(sb.pods_on("worker-1")) == 1, what="spread")
    mark = sb.mark()
    done = kubeops(sb, "decommission", "--node=worker-0")
    assert done.returncode == 1
    assert "capacity check refuses" in done.stderr and "default/big-" in done.stderr
    assert "Insufficient cpu" in done.stderr
    assert writes(sb, mark) == []


def test_budget_past_the_timeout_fails_names_it_keeps_the_node_cordoned_and_resume_finishes(make_sandbox):
    sb = make_sandbox({**TWO_WORKERS, "workloads": [web(pdb={"min_available": 2})]})
    settle(sb, "worker-a", 2)
    release_worker_b(sb)
    done = kubeops(sb, "drain", "--node=worker-a", "--timeout=2")
    assert done.returncode == 1
    assert "PodDisruptionBudget apps/web" in done.stderr and "invoke resume" in done.stderr
    assert sb.get("/api/v1/nodes/worker-a")["spec"]["unschedulable"] is True
    assert len(sb.pods_on("worker-a")) == 2
    # the owner relaxes the budget; the same run continues from the drain step
    sb.kube().request("PATCH", "/apis/policy/v1/namespaces/apps/poddisruptionbudgets/web",
                      body={"spec": {"minAvailable": 1}}, content_type="application/merge-patch+json", what="relax")
    resumed = kubeops(sb, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert sb.pods_on("worker-a") == []
    assert sb.get("/api/v1/nodes/worker-a")["spec"]["unschedulable"] is True


def kill_at_first_eviction(sb, *args: str) -> None:
    """Start `kubeops *args` and SIGKILL it as soon as the sandbox saw its first eviction: a crash mid-drain."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from kubeops.cli import main; main()", *args],
        env=cli_env(sb), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        sb.wait_for(lambda: any(r.get("subresource") == "eviction" for r in sb.requests()), what="first eviction")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_during_the_drain_then_resume_finishes_it(make_sandbox):
    # pods take 2 s to terminate after their eviction, so the drain is caught mid-way
    sb = make_sandbox({**TWO_WORKERS, "workloads": [web(replicas=6, termination_delay_s=2.0)]})
    settle(sb, "worker-a", 6)
    release_worker_b(sb)
    kill_at_first_eviction(sb, "drain", "--node=worker-a")
    left = sb.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dworker-a")["items"]
    assert left, "the kill should land before the drain finished (pods still there or terminating)"
    resumed = kubeops(sb, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert sb.pods_on("worker-a") == []
    runs = kubeops(sb, "runs", "--json")
    assert '"done"' in runs.stdout
    evictions = [r for r in sb.requests() if r.get("subresource") == "eviction" and r["status"] < 300]
    assert len({r["name"] for r in evictions}) == 6  # each pod was evicted, none twice after it was gone


def test_maintain_without_commands_cordons_drains_waits_and_uncordons(make_sandbox):
    sb = make_sandbox({**TWO_WORKERS, "workloads": [web()]})
    settle(sb, "worker-a", 2)
    release_worker_b(sb)
    done = kubeops(sb, "maintain", "--node=worker-a")
    assert done.returncode == 0, done.stderr
    assert sb.pods_on("worker-a") == []
    assert not sb.get("/api/v1/nodes/worker-a")["spec"].get("unschedulable")


def test_cordon_and_uncordon_tasks(make_sandbox):
    sb = make_sandbox({**TWO_WORKERS})
    assert kubeops(sb, "cordon", "--node=worker-a").returncode == 0
    assert sb.get("/api/v1/nodes/worker-a")["spec"]["unschedulable"] is True
    assert kubeops(sb, "uncordon", "--node=worker-a").returncode == 0
    assert not sb.get("/api/v1/nodes/worker-a")["spec"].get("unschedulable")


def test_maintain_runs_commands_over_ssh_between_drain_and_uncordon(make_sandbox, sshd, tmp_path):

    sb = make_sandbox({**TWO_WORKERS, "workloads": [web()]})
    settle(sb, "worker-a", 2)
    release_worker_b(sb)
    use_ssh(sb, sshd)
    marker = tmp_path / "maintained; not a shell"
    done = kubeops(sb, "maintain", "--node=worker-a", "--no-sudo", f"--command=touch '{marker}'",
                   "--command=uname -s")
    assert done.returncode == 0, done.stderr
    assert marker.exists()  # the argument reached the node literally, metacharacters and all
    assert sb.pods_on("worker-a") == []
    assert not sb.get("/api/v1/nodes/worker-a")["spec"].get("unschedulable")


def test_maintain_stops_cordoned_when_a_command_fails(make_sandbox, sshd):

    sb = make_sandbox({**TWO_WORKERS, "workloads": [web()]})
    settle(sb, "worker-a", 2)
    release_worker_b(sb)
    use_ssh(sb, sshd)
    done = kubeops(sb, "maintain", "--node=worker-a", "--no-sudo", "--command=false")
    assert done.returncode == 1
    assert "commands" in done.stderr
    assert sb.get("/api/v1/nodes/worker-a")["spec"]["unschedulable"] is True


REBOOT_SCRIPT = '''#!{python}
"""Stand-in for `systemctl` on the "node": `systemctl reboot` makes worker-a go through a reboot in the sandbox."""
import json, os, subprocess, sys, time, urllib.request

API, NODE, LOG = {api!r}, {node!r}, {log!r}


def status(ready, boot_id=None):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = {{"status": {{"conditions": [{{"type": "Ready", "status": "True" if ready else "False",
                                         "reason": "KubeletReady" if ready else "KubeletNotReady",
                                         "lastTransitionTime": stamp}}]}}}}
    if boot_id:
        body["status"]["nodeInfo"] = {{"bootID": boot_id}}
    req = urllib.request.Request(f"{{API}}/api/v1/nodes/{{NODE}}/status", data=json.dumps(body).encode(),
                                 method="PATCH", headers={{"Content-Type": "application/merge-patch+json"}})
    urllib.request.urlopen(req, timeout=10).read()
    with open(LOG, "a") as log:
        log.write(f"{{'up' if ready else 'down'}} {{boot_id or ''}}\\n")


if sys.argv[1:] == ["reboot"]:
    if os.environ.get("KUBEOPS_FAKE_REBOOT_CHILD"):
        time.sleep(0.5)
        status(False, "boot-after-reboot")  # the kubelet of the new boot starts NotReady...
        time.sleep(2.0)
        status(True, "boot-after-reboot")  # ...and reports Ready once up
    else:  # like systemd: return at once, the machine goes down a moment later
        subprocess.Popen([sys.executable, __file__, "reboot"], start_new_session=True,
                         env={{**os.environ, "KUBEOPS_FAKE_REBOOT_CHILD": "1"}},
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sys.exit(0)
sys.exit(f"fake systemctl: {{sys.argv[1:]}} not simulated")
'''


def test_maintain_with_reboot_waits_for_the_new_boot_then_uncordons(make_sandbox, tmp_path):
    """`maintain --reboot` end to end: a real sshd whose `systemctl reboot` reboots worker-a in the sandbox."""
    from tests.ssh_fixture import start_sshd, stop_sshd

    sb = make_sandbox({**TWO_WORKERS, "workloads": [web()]})
    settle(sb, "worker-a", 2)
    release_worker_b(sb)
    boot_before = sb.get("/api/v1/nodes/worker-a")["status"]["nodeInfo"]["bootID"]
    bin_dir, log = tmp_path / "node-bin", tmp_path / "reboots.log"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text(REBOOT_SCRIPT.format(python=sys.executable, api=sb.server.url, node="worker-a", log=str(log)))
    script.chmod(0o755)
    sshd = start_sshd(tmp_path / "sshd", extra_config=(f"SetEnv PATH={bin_dir}:/usr/bin:/bin",))
    try:
        use_ssh(sb, sshd)
        done = kubeops(sb, "maintain", "--node=worker-a", "--reboot", "--no-sudo", "--command=true")
    finally:
        stop_sshd(sshd)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["down boot-after-reboot", "up boot-after-reboot"]  # rebooted once
    run_id = next(json.loads(line)["run_id"] for line in done.stderr.splitlines() if line.startswith("{"))
    shown = kubeops(sb, "show", f"--run={run_id}", "--json")
    assert shown.returncode == 0, shown.stderr
    steps = {s["name"]: s for s in json.loads(shown.stdout)["steps"]}
    assert [s["status"] for s in steps.values()] == ["done"] * len(steps), steps
    reboot = steps["reboot"]["outputs"]
    assert (reboot["sent"], reboot["boot_id_before"], reboot["boot_id_after"]) == (
        True, boot_before, "boot-after-reboot")
    assert steps["ready"]["outputs"]["boot_id"] == "boot-after-reboot"
    node = sb.get("/api/v1/nodes/worker-a")
    assert node["status"]["nodeInfo"]["bootID"] == "boot-after-reboot"
    assert not node["spec"].get("unschedulable")  # back in service only after the new boot was Ready
    assert sb.pods_on("worker-a") == []  # drained pods stay where they went
