"""The Kubernetes client helpers against the sandbox over HTTP: retries, pagination, watches, evictions."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from kubeops.clients import nodes, pods
from kubeops.errors import ActionError, NotFound, TooManyRequests
from tests.k8s_sandbox import Sandbox, sandbox_maker  # noqa: F401  (provides `make_sandbox`)


def test_5xx_and_429_answers_are_retried_until_the_call_succeeds(make_sandbox):
    sb = make_sandbox({"nodes": [{"name": "n1"}], "faults": {"error_503_rate": 0.2, "error_429_rate": 0.1,
                                                             "retry_after_s": 0, "seed": 7}})
    kube = sb.kube()
    for _ in range(10):
        assert nodes.get_node(kube, "n1")["metadata"]["name"] == "n1"
    answers = [r["status"] for r in sb.requests() if r["path"] == "/api/v1/nodes/n1"]
    assert any(s in (429, 503) for s in answers), "faults were injected"
    assert answers.count(200) == 10


def test_not_found_carries_the_servers_message(make_sandbox):
    sb = make_sandbox({"nodes": [{"name": "n1"}]})
    with pytest.raises(NotFound, match='get node ghost: nodes "ghost" not found'):
        nodes.get_node(sb.kube(), "ghost")


def test_pods_of_a_node_are_listed_in_pages_by_field_selector(make_sandbox):
    sb = make_sandbox({"nodes": [{"name": "n1", "capacity": {"cpu": "64", "memory": "64Gi", "pods": "2000"}},
                                 {"name": "n2"}],
                       "workloads": [{"kind": "Pod", "name": "p", "replicas": 1100, "node": "n1"},
                                     {"kind": "Pod", "name": "other", "node": "n2"}]})
    mark = sb.mark()
    listed, version = pods.list_pods(sb.kube(), node="n1")
    assert len({p["metadata"]["uid"] for p in listed}) == 1100 and version
    assert all(p["spec"]["nodeName"] == "n1" for p in listed)
    def lists() -> list[dict[str, Any]]:
        return [r for r in sb.requests()[mark:] if r.get("verb") == "list"]

    sb.wait_for(lambda: len(lists()) >= 3, timeout_s=2, what="three list requests in the log")
    pages = lists()
    assert len(pages) == 3
    assert all(r["query"].get("fieldSelector") == "spec.nodeName=n1" and r["query"].get("limit") == "500"
               for r in pages)
    assert "continue" in pages[1]["query"]


def test_wait_ready_returns_when_the_node_reports_ready_by_watching_not_polling(make_sandbox):
    sb = make_sandbox({"nodes": [{"name": "n1", "ready": False}]})
    kube = sb.kube()

    def become_ready() -> None:
        time.sleep(1.0)
        node = nodes.get_node(kube, "n1")
        conditions = [c for c in node["status"]["conditions"] if c["type"] != "Ready"]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady"})
        kube.request("PATCH", "/api/v1/nodes/n1/status", body={"status": {"conditions": conditions}},
                     content_type="application/merge-patch+json", what="test: ready")

    mark = sb.mark()
    threading.Thread(target=become_ready, daemon=True).start()
    started = time.monotonic()
    node = nodes.wait_ready(kube, "n1", timeout_s=20)
    assert nodes.node_is_ready(node)
    assert time.monotonic() - started < 5
    # the open watch is logged only when the server closes it; polling would show here as a row of GETs
    gets = [r for r in sb.requests()[mark:] if r.get("resource") == "nodes" and r.get("verb") == "get"]
    assert len(gets) <= 2


def test_wait_ready_times_out_with_the_last_condition(make_sandbox):
    sb = make_sandbox({"nodes": [{"name": "n1", "ready": False}]})
    with pytest.raises(ActionError, match="did not become Ready within 1s"):
        nodes.wait_ready(sb.kube(), "n1", timeout_s=1)


def test_eviction_of_a_pod_already_gone_or_replaced_reports_gone(make_sandbox):
    sb = make_sandbox({"nodes": [{"name": "n1"}], "workloads": [{"kind": "Pod", "name": "solo", "node": "n1"}]})
    kube = sb.kube()
    pod = sb.pods_on("n1")[0]
    path = f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}"
    stale = {**pod, "metadata": {**pod["metadata"], "uid": "00000000-0000-0000-0000-000000000000"}}
    assert pods.evict_pod(kube, stale, grace_period_s=0) is False  # UID precondition: not the pod we meant
    assert sb.get(path)["metadata"]["uid"] == pod["metadata"]["uid"]
    assert pods.evict_pod(kube, pod, grace_period_s=0) is True
    sb.wait_for(lambda: not sb.get("/api/v1/namespaces/default/pods").get("items"), what="pod gone")
    assert pods.evict_pod(kube, pod, grace_period_s=0) is False


def test_a_refused_eviction_is_not_retried_by_the_client_and_names_the_budget(make_sandbox):
    web = {"kind": "Deployment", "name": "web", "replicas": 1, "pdb": {"min_available": 1}}
    sb = make_sandbox({"nodes": [{"name": "n1"}], "workloads": [web]})
    sb.wait_for(lambda: sb.get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/web")
                .get("status", {}).get("expectedPods") == 1, what="budget status")
    pod = sb.pods_on("n1")[0]
    mark = sb.mark()
    with pytest.raises(TooManyRequests) as err:
        pods.evict_pod(sb.kube(), pod)
    assert "disruption budget" in str(err.value)
    assert any("web" in str(c.get("message")) for c in err.value.details.get("causes", []))
    def evictions() -> int:
        return len([r for r in sb.requests()[mark:] if r.get("subresource") == "eviction"])

    # the server logs a request just after answering it: wait for the entry before counting
    sb.wait_for(lambda: evictions() >= 1, timeout_s=2, what="the eviction in the request log")
    assert evictions() == 1


def test_dry_run_client_sends_every_write_as_dry_run(make_sandbox):
    sb = make_sandbox({"nodes": [{"name": "n1"}]})
    dry = sb.kube(dry_run=True)
    mark = sb.mark()
    assert nodes.set_unschedulable(dry, "n1", True)[1] is True
    assert nodes.set_taints(dry, "n1", add=[{"key": "k", "effect": "NoSchedule"}])[1] is True
    assert nodes.delete_node(dry, "n1") is True
    writes = [r for r in sb.requests()[mark:] if r["method"] != "GET"]
    assert len(writes) == 3 and all(r.get("dry_run") for r in writes)
    node = nodes.get_node(sb.kube(), "n1")
    assert not node["spec"].get("unschedulable") and not node["spec"].get("taints")
