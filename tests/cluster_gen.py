"""A generated cluster in memory (nodes, pods, measured usage) for capacity/redistribute tests and benchmarks.

Shaped like what the API server returns (ReplicaSet-owned pods with requests, Ready nodes with allocatable), so
the pure logic reads it exactly as it reads a real list. Deterministic: the same arguments give the same cluster.
"""

from __future__ import annotations

from typing import Any

from kubeops.metrics.cadvisor import NodeUsage, PodUsage


def make_cluster(nodes: int, pods_per_node: int, *, hot: int = 2) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                          dict[str, NodeUsage]]:
    """(nodes, pods, usage by node): the first `hot` nodes use 90% of their CPU, the rest 5%."""
    node_objs: list[dict[str, Any]] = []
    pod_objs: list[dict[str, Any]] = []
    usage: dict[str, NodeUsage] = {}
    for n in range(nodes):
        name = f"node-{n:05d}"
        node_objs.append({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "topology.kubernetes.io/zone": f"zone-{n % 3}"}},
            "spec": {},
            "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                       "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]},
        })
        per_pod_cpu = (14.4 if n < hot else 0.8) / pods_per_node
        pods: list[PodUsage] = []
        for i in range(pods_per_node):
            pod = f"app-{n:05d}-{i:02d}"
            pod_objs.append({
                "metadata": {"name": pod, "namespace": "apps", "uid": f"uid-{n}-{i}", "labels": {"app": "bulk"},
                             "ownerReferences": [{"kind": "ReplicaSet", "name": f"rs-{i % 50}", "controller": True,
                                                  "uid": f"rs-{i % 50}"}]},
                "spec": {"nodeName": name, "containers": [
                    {"name": "app", "image": "registry.k8s.io/pause:3.9",
                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            })
            pods.append(PodUsage(namespace="apps", pod=pod, uid=f"uid-{n}-{i}", cpu_cores=per_pod_cpu,
                                 memory_bytes=100 * 2**20, cpu_source="pod-cgroup", memory_source="pod-cgroup",
                                 containers=()))
        usage[name] = NodeUsage(cpu_cores=sum(p.cpu_cores or 0 for p in pods),
                                memory_bytes=sum(p.memory_bytes or 0 for p in pods), pods=tuple(pods), interval_s=5.0)
    return node_objs, pod_objs, usage
