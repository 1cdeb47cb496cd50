"""Cluster behaviour of the sandbox, driven tick by tick with sandbox time (no HTTP): eviction, graceful
deletion, scheduling, rolling updates, endpoints, node readiness and the AWS link (against a real moto_server)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from kubeops.sandbox import scenario as sc
from kubeops.sandbox.cluster import Cluster, build_cluster
from kubeops.sandbox.eviction import evict
from kubeops.sandbox.status import ApiError
from tests.aws_fixtures import boto_kwargs, start_moto, stop_moto


def cluster_with(spec: dict[str, Any], *, aws_url: str | None = None) -> Cluster:
    s = sc.load({"name": "t", **spec})
    c = build_cluster(scenario=s, aws_url=aws_url)
    sc.apply(c, s)
    settle(c)
    return c


def settle(c: Cluster, ticks: int = 6) -> None:
    for _ in range(ticks):
        c.tick()


def live_pods(c: Cluster, ns: str = "apps", app: str | None = None) -> list[dict[str, Any]]:
    return [p for p in c.store.list("pods", namespace=ns, label_selector=f"app={app}" if app else None).items
            if not p["metadata"].get("deletionTimestamp")]


def ready(p: dict[str, Any]) -> bool:
    return any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions", []))


NODES = [{"name_prefix": "worker-", "count": 3, "zone": ["us-east-1a", "us-east-1b", "us-east-1c"],
          "capacity": {"cpu": "2", "memory": "4Gi", "pods": "20"}}]


def web(**extra: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": 4, "labels": {"app": "web"},
            "image": "nginx:1", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}, **extra}


class TestEviction:
    def test_allowed_eviction_returns_201_and_decrements_the_budget(self) -> None:
        c = cluster_with({"nodes": NODES, "workloads": [web(pdb={"min_available": 3})]})
        name = live_pods(c, app="web")[0]["metadata"]["name"]
        code, body = evict(c, "apps", name, {}, False)
        assert (code, body["status"]) == (201, "Success")
        pdb = c.store.get("poddisruptionbudgets.policy", "apps", "web")["status"]
        assert pdb["disruptionsAllowed"] == 0
        assert name in pdb["disruptedPods"]

    def test_second_eviction_is_refused_with_the_real_message_and_cause(self) -> None:
        c = cluster_with({"nodes": NODES, "workloads": [web(pdb={"min_available": 3})]})
        first, second = (p["metadata"]["name"] for p in live_pods(c, app="web")[:2])
        evict(c, "apps", first, {}, False)
        with pytest.raises(ApiError) as err:
            evict(c, "apps", second, {}, False)
        assert err.value.code == 429
        assert err.value.message == "Cannot evict pod as it would violate the pod's disruption budget."
        assert err.value.details == {"causes": [{"reason": "DisruptionBudget", "message":
                                                 "The disruption budget web needs 3 healthy pods and has 4 currently"}]}

    def test_dry_run_changes_nothing(self) -> None:
        c = cluster_with({"nodes": NODES, "workloads": [web(pdb={"min_available": 3})]})
        name = live_pods(c, app="web")[0]["metadata"]["name"]
        rv = c.store.resource_version
        assert evict(c, "apps", name, {}, True)[0] == 201
        assert c.store.resource_version == rv

    def test_missing_pod_is_404_and_two_budgets_are_500(self) -> None:
        c = cluster_with({"nodes": NODES, "workloads": [web(pdb={"min_available": 1})],
                          "objects": [{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                       "metadata": {"name": "extra", "namespace": "apps"},
                                       "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}]})
        with pytest.raises(ApiError) as missing:
            evict(c, "apps", "nope", {}, False)
        assert (missing.value.code, missing.value.message) == (404, 'pods "nope" not found')
        with pytest.raises(ApiError) as two:
            evict(c, "apps", live_pods(c, app="web")[0]["metadata"]["name"], {}, False)
        assert two.value.code == 500

    def test_pending_pods_skip_the_budget(self) -> None:
        c = cluster_with({"nodes": NODES, "workloads": [
            web(replicas=2, pdb={"min_available": 2}),
            {"kind": "Deployment", "name": "huge", "namespace": "apps", "replicas": 1, "labels": {"app": "web"},
             "image": "x:1", "resources": {"requests": {"cpu": "64"}}}]})
        pending = [p for p in live_pods(c, app="web") if p["status"]["phase"] == "Pending"]
        assert len(pending) == 1
        cond = next(x for x in pending[0]["status"]["conditions"] if x["type"] == "PodScheduled")
        assert cond["reason"] == "Unschedulable"
        assert cond["message"].startswith("0/3 nodes are available: 3 Insufficient cpu.")
        assert evict(c, "apps", pending[0]["metadata"]["name"], {}, False)[0] == 201


class TestGracefulDeletion:
    def test_pod_terminates_for_its_termination_delay_then_is_replaced(self) -> None:
        c = cluster_with({"nodes": NODES, "workloads": [web(termination_delay_s=5)]})
        victim = live_pods(c, app="web")[0]["metadata"]["name"]
        c.store.delete("pods", "apps", victim)
        settle(c)
        assert c.store.try_get("pods", "apps", victim)["metadata"]["deletionTimestamp"]
        assert len(live_pods(c, app="web")) == 4  # the replacement does not wait for the old pod
        c.clock.advance(5)
        settle(c)
        assert c.store.try_get("pods", "apps", victim) is None

    def test_grace_period_shorter_than_the_delay_wins(self) -> None:
        c = cluster_with({"nodes": NODES, "workloads": [web(termination_delay_s=60)]})
        victim = live_pods(c, app="web")[0]["metadata"]["name"]
        c.store.delete("pods", "apps", victim, grace_period_s=2)
        c.clock.advance(2)
        settle(c)
        assert c.store.try_get("pods", "apps", victim) is None


class TestScheduling:
    def test_cordoned_and_tainted_nodes_get_no_new_pods(self) -> None:
        c = cluster_with({"nodes": [
            {"name": "open", "capacity": {"cpu": "8", "memory": "8Gi", "pods": "50"}},
            {"name": "cordoned", "unschedulable": True},
            {"name": "tainted", "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}],
            "workloads": [web(replicas=6)]})
        assert {p["spec"]["nodeName"] for p in live_pods(c, app="web")} == {"open"}

    def test_daemonset_runs_on_every_node_it_tolerates_including_cordoned_ones(self) -> None:
        c = cluster_with({"nodes": [
            {"name": "a"}, {"name": "b", "unschedulable": True},
            {"name": "c", "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}],
            "workloads": [{"kind": "DaemonSet", "name": "agent", "namespace": "apps", "labels": {"app": "agent"},
                           "image": "agent:1"}]})
        assert sorted(p["spec"]["nodeName"] for p in live_pods(c, app="agent")) == ["a", "b"]
        ds = c.store.get("daemonsets.apps", "apps", "agent")["status"]
        assert (ds["desiredNumberScheduled"], ds["numberReady"]) == (2, 2)


    def test_evicted_deployment_pods_land_on_the_emptiest_schedulable_node_not_a_busy_one(self) -> None:
        nodes = [{"name_prefix": "worker-", "count": 4, "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}}]
        hogs = [{"kind": "Pod", "name": f"hog-{n}", "namespace": "apps", "node": f"worker-{n}", "image": "hog:1",
                 "resources": {"requests": {"cpu": "3", "memory": "12Gi"}}} for n in (1, 2)]
        c = cluster_with({"nodes": nodes, "workloads": [*hogs, web()]})
        placed = sorted(p["spec"]["nodeName"] for p in live_pods(c, app="web"))
        assert placed == ["worker-0", "worker-0", "worker-3", "worker-3"]  # least allocated, spread evenly

        c.store.modify("nodes", None, "worker-0", lambda o: o["spec"].update(unschedulable=True))
        for p in live_pods(c, app="web"):
            if p["spec"]["nodeName"] == "worker-0":
                evict(c, "apps", p["metadata"]["name"], {}, False)
        settle(c, 10)
        pods = live_pods(c, app="web")
        assert len(pods) == 4 and all(p["spec"].get("nodeName") == "worker-3" for p in pods)

    def test_replicas_spread_over_equally_empty_nodes_deterministically(self) -> None:
        c = cluster_with({"nodes": NODES, "workloads": [web(replicas=6)]})
        placed = sorted(p["spec"]["nodeName"] for p in live_pods(c, app="web"))
        assert placed == ["worker-0", "worker-0", "worker-1", "worker-1", "worker-2", "worker-2"]


class TestRollingUpdate:
    def test_surge_and_unavailability_stay_within_the_strategy(self) -> None:
        c = cluster_with({"nodes": NODES, "workloads": [web(readiness_delay_s=1)]})
        c.clock.advance(1)
        settle(c)
        c.store.modify("deployments.apps", "apps", "web", lambda d: d["spec"]["strategy"].update(
            rollingUpdate={"maxSurge": 1, "maxUnavailable": 0}))
        c.store.modify("deployments.apps", "apps", "web",
                       lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="nginx:2"))
        for _ in range(40):
            settle(c, 2)
            pods = live_pods(c, app="web")
            assert len(pods) <= 5
            assert sum(1 for p in pods if ready(p)) >= 4
            c.clock.advance(0.5)
        d = c.store.get("deployments.apps", "apps", "web")
        assert d["status"]["updatedReplicas"] == d["status"]["availableReplicas"] == 4
        assert {p["spec"]["containers"][0]["image"] for p in live_pods(c, app="web")} == {"nginx:2"}


class TestEndpoints:
    def test_endpoints_follow_readiness_and_termination(self) -> None:
        c = cluster_with({"nodes": NODES, "workloads": [web(replicas=2, readiness_delay_s=2,
                                                            termination_delay_s=10)],
                          "services": [{"name": "web", "namespace": "apps", "selector": {"app": "web"},
                                        "ports": [{"port": 80, "target_port": 8080}]}]})
        ep = c.store.get("endpoints", "apps", "web")
        assert len(ep["subsets"][0]["notReadyAddresses"]) == 2 and "addresses" not in ep["subsets"][0]
        c.clock.advance(2)
        settle(c)
        ep = c.store.get("endpoints", "apps", "web")
        assert len(ep["subsets"][0]["addresses"]) == 2
        victim = live_pods(c, app="web")[0]
        c.store.delete("pods", "apps", victim["metadata"]["name"])
        settle(c, 1)
        ips = [a["ip"] for s in c.store.get("endpoints", "apps", "web").get("subsets", [])
               for a in s.get("addresses", [])]
        assert victim["status"]["podIP"] not in ips  # terminating pods stop receiving traffic at once
        slices = c.store.list("endpointslices.discovery.k8s.io", namespace="apps").items
        term = [e for e in slices[0]["endpoints"] if e["targetRef"]["name"] == victim["metadata"]["name"]]
        assert term[0]["conditions"] == {"ready": False, "serving": True, "terminating": True}


class TestNodeReadiness:
    def test_not_ready_node_makes_its_pods_unready(self) -> None:
        c = cluster_with({"nodes": NODES, "workloads": [web(replicas=3)]})
        node = live_pods(c, app="web")[0]["spec"]["nodeName"]

        def not_ready(o: dict[str, Any]) -> None:
            for cond in o["status"]["conditions"]:
                if cond["type"] == "Ready":
                    cond["status"] = "False"

        c.store.modify("nodes", None, node, not_ready)
        settle(c)
        assert all(not ready(p) for p in live_pods(c, app="web") if p["spec"]["nodeName"] == node)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    stop_moto(server)


class TestAwsLink:
    def test_group_instances_become_nodes_and_follow_the_instance_lifecycle(self, moto: Any) -> None:
        moto.reset()
        c = cluster_with({"settings": {"join_delay_s": 3, "aws_poll_s": 0},
                          "autoscaling_groups": [{"name": "workers", "min": 1, "max": 4, "desired": 2,
                                                  "zones": ["us-east-1a"], "instance_type": "m5.large"}],
                          "workloads": [web(replicas=2)]}, aws_url=moto.url)
        nodes = c.store.list("nodes").items
        assert len(nodes) == 2
        node = nodes[0]
        assert node["metadata"]["name"].endswith(".ec2.internal")
        assert node["spec"]["providerID"].startswith("aws:///us-east-1a/i-")
        assert node["metadata"]["labels"]["kubeops.io/autoscaling-group"] == "workers"
        assert {a["type"] for a in node["status"]["addresses"]} >= {"InternalIP", "Hostname"}
        assert len([p for p in live_pods(c, app="web") if p["status"]["phase"] == "Running"]) == 2

        asg = boto3.client("autoscaling", **boto_kwargs(moto.url))
        iid = node["spec"]["providerID"].rsplit("/", 1)[1]
        asg.terminate_instance_in_auto_scaling_group(InstanceId=iid, ShouldDecrementDesiredCapacity=False)
        settle(c)
        names = {n["metadata"]["name"] for n in c.store.list("nodes").items}
        assert node["metadata"]["name"] not in names and len(names) == 2
        newcomer = next(n for n in c.store.list("nodes").items if n["metadata"]["name"] != nodes[1]["metadata"]["name"])
        assert not any(x["type"] == "Ready" and x["status"] == "True" for x in newcomer["status"]["conditions"])
        assert all(p["spec"].get("nodeName") != node["metadata"]["name"] for p in live_pods(c, app="web"))
        c.clock.advance(3)
        settle(c)
        newcomer = c.store.get("nodes", None, newcomer["metadata"]["name"])
        assert any(x["type"] == "Ready" and x["status"] == "True" for x in newcomer["status"]["conditions"])
        assert len([p for p in live_pods(c, app="web") if p["status"]["phase"] == "Running"]) == 2


    def test_declared_group_nodes_are_the_groups_first_instances_and_keep_their_names(self, moto: Any) -> None:
        moto.reset()
        s = sc.load({"name": "t", "settings": {"join_delay_s": 3, "aws_poll_s": 0},
                     "autoscaling_groups": [{"name": "workers", "min": 3, "max": 6, "desired": 4,
                                             "zones": ["us-east-1a", "us-east-1b", "us-east-1c"]}],
                     "nodes": [{"name_prefix": "worker-", "count": 3, "autoscaling_group": "workers",
                                "zone": ["us-east-1a", "us-east-1b", "us-east-1c"]},
                               {"name": "pinned", "autoscaling_group": "workers", "internal_ip": "127.0.0.1"}]})
        c = build_cluster(scenario=s, aws_url=moto.url)
        sc.apply(c, s)
        c.prepare()  # what the sandbox process does before it reports healthy
        asg = boto3.client("autoscaling", **boto_kwargs(moto.url))
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["workers"])["AutoScalingGroups"][0]
        zone_of = {i["InstanceId"]: i["AvailabilityZone"] for i in group["Instances"]}
        assert group["DesiredCapacity"] == 4 and len(zone_of) == 4  # 4 declared: nothing to top up
        nodes = {n["metadata"]["name"]: n for n in c.store.list("nodes").items}
        assert set(nodes) == {"worker-0", "worker-1", "worker-2", "pinned"}
        for name, node in nodes.items():
            _, zone, iid = node["spec"]["providerID"].removeprefix("aws://").split("/")
            assert zone_of[iid] == zone == node["metadata"]["labels"]["topology.kubernetes.io/zone"], name
        assert nodes["worker-1"]["metadata"]["labels"]["topology.kubernetes.io/zone"] == "us-east-1b"
        assert {a["type"]: a["address"] for a in nodes["pinned"]["status"]["addresses"]}["InternalIP"] == "127.0.0.1"
        assert len({n["spec"]["providerID"] for n in nodes.values()}) == 4

        iid = nodes["worker-2"]["spec"]["providerID"].rsplit("/", 1)[1]
        asg.terminate_instance_in_auto_scaling_group(InstanceId=iid, ShouldDecrementDesiredCapacity=True)
        settle(c)
        assert "worker-2" not in {n["metadata"]["name"] for n in c.store.list("nodes").items}
        asg.set_desired_capacity(AutoScalingGroupName="workers", DesiredCapacity=4)
        settle(c)
        names = {n["metadata"]["name"] for n in c.store.list("nodes").items}
        assert len(names) == 4 and len([n for n in names if n.endswith(".ec2.internal")]) == 1
