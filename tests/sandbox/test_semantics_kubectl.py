"""Fidelity: the real kubectl (1.33, and 1.27 for drain) against the sandbox's cluster behaviour."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

SMALL: dict[str, Any] = {
    "name": "kubectl-small",
    "settings": {"tick_ms": 50},
    "namespaces": ["apps"],
    "nodes": [{"name_prefix": "worker-", "count": 3, "role": "worker",
               "zone": ["us-east-1a", "us-east-1b", "us-east-1c"]}],
    "workloads": [
        {"kind": "DaemonSet", "name": "agent", "namespace": "kube-system", "labels": {"app": "agent"},
         "image": "agent:1", "tolerations": [{"operator": "Exists"}]},
        {"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": 4, "labels": {"app": "web"},
         "image": "nginx:1.27", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
         "readiness_delay_s": 0.2, "termination_delay_s": 0.3, "pdb": {"max_unavailable": 1}},
        {"kind": "StatefulSet", "name": "db", "namespace": "apps", "replicas": 2, "labels": {"app": "db"},
         "image": "postgres:16", "empty_dir": True},
    ],
}


def pods(sb: Any, *args: str) -> list[dict[str, Any]]:
    out = sb.kubectl("get", "pods", "-o", "json", *args, check=True)
    return json.loads(out.stdout)["items"]


def wait_for(predicate: Any, timeout_s: float = 60.0) -> Any:
    """Poll until predicate() is truthy (returns it); generous bound for a busy 2-core machine."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def all_running_and_ready(sb: Any) -> bool:
    items = pods(sb, "-A")
    return bool(items) and all(
        p["status"].get("phase") == "Running"
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        and not p["metadata"].get("deletionTimestamp")
        for p in items
    )


@pytest.fixture
def small(sandbox_factory: Any) -> Any:
    sb = sandbox_factory(SMALL)
    wait_for(lambda: all_running_and_ready(sb))
    return sb


def test_get_pods_wide_shows_controller_pods_bound_and_running(small: Any) -> None:
    out = small.kubectl("get", "pods", "-A", "-o", "wide", check=True).stdout
    lines = [line.split() for line in out.splitlines()[1:]]
    web = [row for row in lines if row[1].startswith("web-")]
    assert len(web) == 4
    assert all(row[3] == "Running" and row[2] == "1/1" and row[7].startswith("worker-") for row in web)
    assert {row[1] for row in lines if row[1].startswith("db-")} == {"db-0", "db-1"}
    assert len([row for row in lines if row[1].startswith("agent-")]) == 3


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_drain_evicts_and_controllers_recreate_pods_elsewhere(small: Any, version: str) -> None:
    before = {p["metadata"]["name"]: p for p in pods(small, "-A")}
    victim_node = next(p["spec"]["nodeName"] for p in before.values() if p["metadata"]["name"].startswith("web-"))
    leaving = {n for n, p in before.items() if p["spec"]["nodeName"] == victim_node and not n.startswith("agent-")}
    result = small.kubectl("drain", victim_node, "--ignore-daemonsets", "--delete-emptydir-data",
                           "--timeout=60s", version=version)
    assert result.returncode == 0, result.stderr
    assert f"node/{victim_node} drained" in result.stdout
    node = json.loads(small.kubectl("get", "node", victim_node, "-o", "json", check=True).stdout)
    assert node["spec"]["unschedulable"] is True
    wait_for(lambda: all_running_and_ready(small))
    after = pods(small, "-A")
    on_victim = [p["metadata"]["name"] for p in after if p["spec"]["nodeName"] == victim_node]
    assert all(name.startswith("agent-") for name in on_victim), on_victim  # the DaemonSet pod stays
    assert len([p for p in after if p["metadata"]["name"].startswith("web-")]) == 4
    sts = {p["metadata"]["name"]: p for p in after if p["metadata"]["name"].startswith("db-")}
    assert set(sts) == {"db-0", "db-1"}  # StatefulSet pods come back under the same names
    for name in leaving & set(sts):
        assert sts[name]["metadata"]["uid"] != before[name]["metadata"]["uid"]


def test_drain_blocked_by_pdb_retries_then_fails_on_timeout(sandbox_factory: Any) -> None:
    sb = sandbox_factory("pdb-blocked")
    wait_for(lambda: all_running_and_ready(sb))
    node = next(p["spec"]["nodeName"] for p in pods(sb, "-n", "apps", "-l", "app=critical"))
    started = time.monotonic()
    result = sb.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=7s")
    assert result.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget." in result.stderr
    assert "will retry after 5s" in result.stderr
    assert "global timeout reached: 7s" in result.stderr
    assert time.monotonic() - started >= 7
    # the protected pods are all still there
    assert len([p for p in pods(sb, "-n", "apps", "-l", "app=critical")
                if not p["metadata"].get("deletionTimestamp")]) == 2


def unschedulable_taints(sb: Any, node: str) -> list[dict[str, Any]]:
    obj = json.loads(sb.kubectl("get", "node", node, "-o", "json", check=True).stdout)
    return [t for t in obj["spec"].get("taints") or () if t["key"] == "node.kubernetes.io/unschedulable"]


def test_cordon_and_uncordon(small: Any) -> None:
    assert "cordoned" in small.kubectl("cordon", "worker-1", check=True).stdout
    assert "SchedulingDisabled" in small.kubectl("get", "node", "worker-1", check=True).stdout
    taints = wait_for(lambda: unschedulable_taints(small, "worker-1"))
    assert [t["effect"] for t in taints] == ["NoSchedule"]  # the node lifecycle controller taints it
    assert "uncordoned" in small.kubectl("uncordon", "worker-1", check=True).stdout
    assert "SchedulingDisabled" not in small.kubectl("get", "node", "worker-1", check=True).stdout
    wait_for(lambda: not unschedulable_taints(small, "worker-1"))


def test_unschedulable_taint_follows_a_merge_patch_and_keeps_other_taints(small: Any) -> None:
    small.kubectl("taint", "node", "worker-2", "dedicated=db:NoSchedule", check=True)
    small.kubectl("patch", "node", "worker-2", "--type=merge", "-p", '{"spec":{"unschedulable":true}}', check=True)
    wait_for(lambda: unschedulable_taints(small, "worker-2"))
    small.kubectl("patch", "node", "worker-2", "--type=merge", "-p", '{"spec":{"unschedulable":false}}', check=True)
    wait_for(lambda: not unschedulable_taints(small, "worker-2"))
    node = json.loads(small.kubectl("get", "node", "worker-2", "-o", "json", check=True).stdout)
    assert [t["key"] for t in node["spec"]["taints"]] == ["dedicated"]


def test_rollout_status_follows_an_image_change_to_completion(small: Any) -> None:
    small.kubectl("set", "image", "deployment/web", "*=nginx:1.28", "-n", "apps", check=True)
    result = small.kubectl("rollout", "status", "deployment/web", "-n", "apps", "--timeout=60s")
    assert result.returncode == 0, result.stderr
    assert 'deployment "web" successfully rolled out' in result.stdout
    images = {p["spec"]["containers"][0]["image"] for p in pods(small, "-n", "apps", "-l", "app=web")
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"nginx:1.28"}
    sts = small.kubectl("rollout", "status", "statefulset/db", "-n", "apps", "--timeout=30s")
    assert sts.returncode == 0, sts.stderr
    ds = small.kubectl("rollout", "status", "daemonset/agent", "-n", "kube-system", "--timeout=30s")
    assert ds.returncode == 0 and 'daemon set "agent" successfully rolled out' in ds.stdout


def test_scale_changes_the_number_of_pods(small: Any) -> None:
    small.kubectl("scale", "deployment/web", "--replicas=6", "-n", "apps", check=True)
    wait_for(lambda: len([p for p in pods(small, "-n", "apps", "-l", "app=web")
                          if p["status"].get("phase") == "Running"]) == 6)
    small.kubectl("scale", "statefulset/db", "--replicas=1", "-n", "apps", check=True)
    wait_for(lambda: [p["metadata"]["name"] for p in pods(small, "-n", "apps", "-l", "app=db")] == ["db-0"])
    result = small.kubectl("rollout", "status", "deployment/web", "-n", "apps", "--timeout=30s")
    assert result.returncode == 0, result.stderr


def test_top_and_cadvisor_proxy_serve_node_metrics(small: Any) -> None:
    top = small.kubectl("top", "nodes")
    assert top.returncode == 0, top.stderr
    assert {line.split()[0] for line in top.stdout.splitlines()[1:]} == {"worker-0", "worker-1", "worker-2"}
    text = small.kubectl("get", "--raw", "/api/v1/nodes/worker-0/proxy/metrics/cadvisor", check=True).stdout
    assert "# TYPE container_cpu_usage_seconds_total counter" in text
    assert 'container="POD"' in text


def test_policy_v1beta1_eviction_is_served_like_v1(small: Any) -> None:
    name = pods(small, "-n", "apps", "-l", "app=web")[0]["metadata"]["name"]
    code, body = small.request("POST", f"/api/v1/namespaces/apps/pods/{name}/eviction", {
        "apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": name, "namespace": "apps"}})
    assert (code, body["status"]) == (201, "Success")
    code, body = small.request("POST", "/api/v1/namespaces/apps/pods/missing/eviction", {
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "missing", "namespace": "apps"}})
    assert (code, body["reason"]) == (404, "NotFound")


def test_an_old_server_serves_only_v1beta1_evictions_and_kubectl_drain_finds_it_by_discovery(
    sandbox_factory: Any,
) -> None:
    sb = sandbox_factory({**SMALL, "settings": {"tick_ms": 50, "eviction_versions": ["v1beta1"]}})
    wait_for(lambda: all_running_and_ready(sb))
    resources = json.loads(sb.kubectl("get", "--raw", "/api/v1", check=True).stdout)["resources"]
    eviction = next(r for r in resources if r["name"] == "pods/eviction")
    assert (eviction["group"], eviction["version"]) == ("policy", "v1beta1")
    name = pods(sb, "-n", "apps", "-l", "app=web")[0]["metadata"]["name"]
    code, body = sb.request("POST", f"/api/v1/namespaces/apps/pods/{name}/eviction", {
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "apps"}})
    assert (code, body["reason"], body.get("details")) == (404, "NotFound", {})  # not about the pod: no details
    node = next(p["spec"]["nodeName"] for p in pods(sb, "-n", "apps", "-l", "app=web"))
    result = sb.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s")
    assert result.returncode == 0, result.stderr
    assert [r["status"] for r in sb.requests() if r.get("subresource") == "eviction"].count(404) == 1


def test_eviction_versions_must_be_known() -> None:
    from kubeops.errors import PlaybookError
    from kubeops.sandbox import scenario

    with pytest.raises(PlaybookError, match="'v2' is not one of v1, v1beta1") as err:
        scenario.load({**SMALL, "settings": {"eviction_versions": ["v2"]}})
    assert err.value.field == "settings.eviction_versions"
