"""Timing taken from the objects (probes, preStop hooks, grace periods) and divided by the speed, and a snapshot
of a biggish cluster (200 nodes x 30 pods; the 2,000-node version is benchmarks/bench_rehearse.py)."""

from __future__ import annotations

import pytest

from kubeops.rehearse.rehearsal import rehearse, scale_timeouts
from kubeops.rehearse.snapshot import take, write
from kubeops.sandbox.timing import Timing, prestop_s, probe_ready_s


def _pod(**container: object) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"terminationGracePeriodSeconds": 60,
                                                 "containers": [{"name": "c", **container}]}}


def test_readiness_follows_the_probes_rounded_to_their_period() -> None:
    assert probe_ready_s(_pod()) == 0
    assert probe_ready_s(_pod(readinessProbe={"initialDelaySeconds": 15, "periodSeconds": 10})) == 20
    assert probe_ready_s(_pod(readinessProbe={"initialDelaySeconds": 5, "periodSeconds": 5,
                                              "successThreshold": 3})) == 15
    slow_start = _pod(startupProbe={"initialDelaySeconds": 30, "periodSeconds": 10},
                      readinessProbe={"periodSeconds": 10})
    assert probe_ready_s(slow_start) == 30


def test_exit_time_comes_from_the_prestop_hook_unless_overridden() -> None:
    assert prestop_s(_pod(), 60) == 0
    assert prestop_s(_pod(lifecycle={"preStop": {"exec": {"command": ["sleep", "20"]}}}), 60) == 20
    assert prestop_s(_pod(lifecycle={"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 7"]}}}), 60) == 7
    assert prestop_s(_pod(lifecycle={"preStop": {"sleep": {"seconds": 5}}}), 60) == 5
    assert prestop_s(_pod(lifecycle={"preStop": {"httpGet": {"path": "/drain", "port": 80}}}), 60) == 60
    hooked = _pod(lifecycle={"preStop": {"exec": {"command": ["sleep", "20"]}}},
                  readinessProbe={"initialDelaySeconds": 10, "periodSeconds": 10})
    fast = Timing({"timing": "spec", "speed": 10})
    assert fast.exit_s_of(hooked) == 2 and fast.readiness_s(hooked) == 1
    assert Timing({"timing": "spec", "exit_s": "grace"}).exit_s_of(hooked) == 60
    assert Timing({}).exit_s_of(hooked) == 0  # scenarios keep their own knobs (annotations), not the spec
    assert fast.min_ready_s({"minReadySeconds": 30}) == 3


def test_timeouts_are_divided_by_the_speed_but_never_below_a_second() -> None:
    params, changed = scale_timeouts({"timeout_s": 1800, "drain_timeout_s": 5.0, "node": "x", "batch": 3}, 10)
    assert params == {"timeout_s": 180, "drain_timeout_s": 1.0, "node": "x", "batch": 3}
    assert set(changed) == {"timeout_s", "drain_timeout_s"}
    assert scale_timeouts({"timeout_s": 30}, 1) == ({"timeout_s": 30}, {})


@pytest.mark.timeout(240)
def test_a_200_node_snapshot_is_taken_and_rehearsed(original_factory, tmp_path) -> None:
    orig = original_factory({"name": "big", "settings": {"tick_ms": 200}, "nodes": [
        {"name_prefix": "node-", "count": 200, "zone": ["us-east-1a", "us-east-1b"],
         "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"}}],
        "workloads": [{"kind": "Pod", "name": "app", "namespace": "apps", "per_node": 30, "labels": {"app": "bulk"},
                       "image": "pause", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]})
    mark = orig.mark()
    doc = take(orig.settings, aws=False)
    assert doc["header"]["counts"]["pods"] == 6000 and doc["header"]["counts"]["nodes"] == 200
    path = write(doc, tmp_path / "big.json.gz")
    report = rehearse(path, "drain-node", params={"node": "node-007", "force": True}, settings=orig.settings)
    assert report.exit_code == 0
    assert len(report.pods_removed) == 30 and {p["node"] for p in report.pods_removed} == {"node-007"}
    assert orig.mutations(mark) == []


def test_a_bad_speed_is_refused_before_anything_starts(tmp_path) -> None:
    from kubeops.errors import InputError

    with pytest.raises(InputError, match="--speed"):
        rehearse(tmp_path / "never-read.json", "drain-node", params={"node": "worker-1"}, speed=0)
