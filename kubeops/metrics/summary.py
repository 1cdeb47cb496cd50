"""Kubelet `/stats/summary` JSON -> the same NodeUsage the cAdvisor parser gives (pure, no I/O).

Why a second source: the summary API is what metrics-server itself reads, already a rate (`usageNanoCores`)
so it needs one request instead of two scrapes. Pod-level `cpu`/`memory` are the pod cgroup (pause included)
and win over the container sum, as in the cAdvisor maths; a pod without them falls back to its containers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from kubeops.errors import KubeopsError
from kubeops.metrics.cadvisor import ContainerUsage, NodeUsage, PodUsage

__all__ = ["SummaryParseError", "parse_summary"]


class SummaryParseError(KubeopsError):
    """The summary document is not JSON or not shaped like the kubelet's."""


def parse_summary(text: str | bytes) -> tuple[str, NodeUsage]:
    """(node name, usage) from a `/stats/summary` body; CRLF line endings are fine."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise SummaryParseError(f"kubelet stats summary is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("node"), dict):
        raise SummaryParseError("kubelet stats summary has no 'node' object")
    node = doc["node"]
    pods: list[PodUsage] = []
    for i, raw in enumerate(doc.get("pods") or []):
        ref = raw.get("podRef") if isinstance(raw, dict) else None
        if not isinstance(ref, dict) or not ref.get("name"):
            raise SummaryParseError(f"kubelet stats summary: pods[{i}] has no podRef.name")
        ns, name = str(ref.get("namespace", "")), str(ref["name"])
        containers = tuple(
            sorted(
                (
                    ContainerUsage(ns, name, str(c.get("name", "")), _cores(c.get("cpu")), _bytes(c.get("memory")))
                    for c in raw.get("containers") or []
                ),
                key=lambda c: c.container,
            )
        )
        cpu, mem = _cores(raw.get("cpu")), _bytes(raw.get("memory"))
        cpu_c = _sum(c.cpu_cores for c in containers)
        mem_c = _sum(c.memory_bytes for c in containers)
        pods.append(
            PodUsage(
                namespace=ns,
                pod=name,
                uid=ref.get("uid"),
                cpu_cores=cpu if cpu is not None else cpu_c,
                memory_bytes=mem if mem is not None else mem_c,
                cpu_source="pod-cgroup" if cpu is not None else ("containers" if cpu_c is not None else "none"),
                memory_source="pod-cgroup" if mem is not None else ("containers" if mem_c is not None else "none"),
                containers=containers,
            )
        )
    usage = NodeUsage(
        cpu_cores=_cores(node.get("cpu")),
        memory_bytes=_bytes(node.get("memory")),
        pods=tuple(sorted(pods, key=lambda p: (p.namespace, p.pod))),
        interval_s=0.0,
    )
    return str(node.get("nodeName", "")), usage


def _cores(block: Any) -> float | None:
    if not isinstance(block, Mapping) or block.get("usageNanoCores") is None:
        return None
    return float(block["usageNanoCores"]) / 1e9


def _bytes(block: Any) -> float | None:
    if not isinstance(block, Mapping) or block.get("workingSetBytes") is None:
        return None
    return float(block["workingSetBytes"])


def _sum(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) if present else None
