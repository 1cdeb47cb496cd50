"""The rehearsal returns the exit code the real run would: the real run's guard decides, on the snapshot's copy
of kubeops' lock Lease and on the inventory's and playbook's maintenance windows (`--at` asks "what if I run
at 03:00"). Real subprocesses against a real sandbox; the original cluster is never changed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.rehearse.test_rehearse_cli import _run

pytestmark = pytest.mark.timeout(180)


def _micro(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _hold_lock(orig, *, renewed: datetime, holder: str = "20261204-cron@ops-host-7") -> None:
    """Another run's lock as kubeops writes it (holder, playbook annotation, renew time, 10-minute TTL)."""
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "kubeops-lock", "namespace": "kube-system",
                         "annotations": {"kubeops.io/playbook": "patch-nodes"}},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 600, "acquireTime": _micro(renewed),
                     "renewTime": _micro(renewed), "leaseTransitions": 0}}
    status, _ = orig.sb.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", body)
    assert status == 201, status


def test_a_lock_held_at_snapshot_time_exits_3_like_the_real_run(original_factory, tmp_path) -> None:
    orig = original_factory("default")
    _hold_lock(orig, renewed=datetime.now(UTC))
    snap = tmp_path / "held.json.gz"
    assert _run(orig, "snapshot", f"--output={snap}").returncode == 0
    mark = orig.mark()

    rehearsed = _run(orig, "rehearse", "--playbook=drain-node", "--param", "node=worker-1", f"--snapshot={snap}",
                     "--output=json", "--wait-for-lock=30s")
    assert rehearsed.returncode == 3, rehearsed.stderr
    report = json.loads(rehearsed.stdout)
    assert report["status"] == "locked" and report["exit_code"] == 3
    assert "20261204-cron@ops-host-7" in report["error"] and "patch-nodes" in report["error"]
    assert report["steps"] == [] and report["evictions"] == [] and report["nodes_cordoned"] == []
    assert any("waits up to 30s" in n for n in report["notes"])
    assert orig.mutations(mark) == []
    # the real run on the original says the same, with the same exit code
    real = _run(orig, "drain", "--node=worker-1")
    assert real.returncode == 3 and "20261204-cron@ops-host-7" in real.stderr
    assert orig.mutations(mark) == []


def test_a_lease_expired_at_snapshot_time_is_free_and_the_run_is_rehearsed(original_factory) -> None:
    orig = original_factory("default")
    _hold_lock(orig, renewed=datetime.now(UTC) - timedelta(hours=1), holder="crashed@old-host")
    mark = orig.mark()
    out = _run(orig, "rehearse", "--playbook=drain-node", "--param", "node=worker-1", "--speed=5")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "outcome: the run would succeed (exit 0)" in out.stdout and "nodes cordoned: worker-1" in out.stdout
    assert orig.mutations(mark) == []


def _set_window(orig, window: dict) -> None:
    path = Path(str(orig.settings.inventory_path))
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["window"] = window
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")


def test_windows_are_judged_at_the_time_asked_inventory_and_playbook_together(original_factory, tmp_path) -> None:
    orig = original_factory("default")
    _set_window(orig, {"days": ["mon-fri"], "start": "02:00", "end": "05:00", "timezone": "UTC"})
    snap = tmp_path / "prod.json"
    assert _run(orig, "snapshot", f"--output={snap}").returncode == 0
    mark = orig.mark()
    drain = ["rehearse", "--playbook=drain-node", "--param", "node=worker-1", f"--snapshot={snap}", "--speed=5"]

    # Friday 12:00 UTC: the real run would exit 0 "outside window" and do nothing
    outside = _run(orig, *drain, "--at=2026-12-04T12:00:00Z")
    assert outside.returncode == 0, outside.stderr
    assert "outcome: the run would not start, outside its maintenance window" in outside.stdout
    assert "02:00-05:00 UTC is closed; next opens 2026-12-07T02:00" in outside.stdout  # Monday
    assert "nodes cordoned" not in outside.stdout and "evictions" not in outside.stdout
    # Friday 03:00 in Paris is 02:00 UTC: inside, so the drain is rehearsed
    inside = _run(orig, *drain, "--at=2026-12-04T03:00:00+01:00", "--output=json")
    assert inside.returncode == 0, inside.stderr
    assert json.loads(inside.stdout)["nodes_cordoned"] == ["worker-1"]
    # the playbook's own window narrows the inventory's: 03:00-03:30 only
    playbook = tmp_path / "gated.yaml"
    playbook.write_text(yaml.safe_dump({"name": "gated", "window": {"start": "03:00", "end": "03:30",
                                                                   "timezone": "UTC"},
                                        "params": {"node": {"type": "string", "required": True}},
                                        "steps": [{"name": "cordon", "action": "k8s.cordon",
                                                   "args": {"node": "${params.node}"}}]}), encoding="utf-8")
    gated = [*drain[:1], f"--playbook={playbook}", *drain[2:]]
    closed = _run(orig, *gated, "--at=2026-12-04T02:15:00Z", "--output=json")
    assert closed.returncode == 0 and json.loads(closed.stdout)["status"] == "outside window"
    assert "playbook gated" in json.loads(closed.stdout)["error"]
    opened = _run(orig, *gated, "--at=2026-12-04T03:10:00Z", "--output=json")
    assert opened.returncode == 0 and json.loads(opened.stdout)["nodes_cordoned"] == ["worker-1"]
    bad = _run(orig, *drain, "--at=tonight")
    assert bad.returncode == 2 and "--at expects an ISO 8601 time" in bad.stderr
    assert orig.mutations(mark) == []


def test_maintain_rehearse_records_the_ssh_commands_and_connects_to_nothing(original_factory) -> None:
    import socket

    orig = original_factory("default")
    # the node's address is a port nobody listens on here: were anything sent, the step would fail to connect
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    inventory = Path(str(orig.settings.inventory_path))
    doc = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    doc["ssh"] = {"user": "ops", "port": port, "hosts": {"worker-1": "127.0.0.1"}}
    inventory.write_text(yaml.safe_dump(doc), encoding="utf-8")
    mark = orig.mark()

    out = _run(orig, "maintain", "--node=worker-1", "--command=apt-get -y upgrade",
               "--command=systemctl restart kubelet", "--rehearse", "--speed=5")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "outcome: the run would succeed (exit 0)" in out.stdout, out.stdout
    assert "would run over SSH on node worker-1 (127.0.0.1): sudo apt-get -y upgrade" in out.stdout, out.stdout
    assert "would run over SSH on node worker-1 (127.0.0.1): sudo systemctl restart kubelet" in out.stdout
    assert "commands [ssh.run] done" in out.stdout and "uncordon [k8s.uncordon] done" in out.stdout
    # --reboot: recorded too, and the copy of the node reboots (NotReady with a new boot, Ready 60 s later in
    # real time): the reboot step waits for it as for a real node and the report predicts its minute
    rebooting = _run(orig, "maintain", "--node=worker-1", "--command=true", "--reboot", "--rehearse", "--speed=20",
                     "--log-format=json")
    assert rebooting.returncode == 0, rebooting.stdout + rebooting.stderr
    assert ("would run over SSH on node worker-1 (127.0.0.1): sudo systemctl reboot (the node reboots: NotReady, "
            "then Ready)") in rebooting.stdout
    reboot_line = next(line for line in rebooting.stdout.splitlines() if "reboot [ssh.reboot]" in line)
    assert "done" in reboot_line
    minutes, seconds = re.search(r"~(?:(\d+)m)?(\d+(?:\.\d+)?)s", reboot_line).groups()  # ~58.3s or ~1m02s
    predicted = int(minutes or 0) * 60 + float(seconds)
    # the node is down 60 s; the action reads it every 5 s of real time, which a speed of 20 makes 100 s
    assert 60 <= predicted <= 60 + 5 * 20 + 10, reboot_line
    assert "uncordon [k8s.uncordon] done" in rebooting.stdout
    assert orig.mutations(mark) == []
