"""What a rehearsal looks at: cluster and Auto Scaling state before and after, and the request log in between.

Why from the outside: the report must describe what the cluster went through, not what kubeops believed, so
it is read from the private sandbox (nodes, pods, groups) and from its ``requests.jsonl`` (every eviction with
its answer: 201 evicted, 429 a budget said no), never from the engine's own bookkeeping alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeops.clients.factory import Clients
from kubeops.settings import Settings

__all__ = ["Eviction", "State", "capture", "evictions", "log_offset"]


@dataclass(frozen=True, slots=True)
class PodInfo:
    name: str  # namespace/name
    node: str | None
    phase: str
    owner: str | None  # Kind/name of the controller
    reason: str = ""  # why it is Pending (the scheduler's message)


@dataclass(frozen=True, slots=True)
class State:
    """The cluster as the report compares it: nodes, pods by UID, Auto Scaling instances by id."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {unschedulable, ready, instance}
    pods: dict[str, PodInfo] = field(default_factory=dict)  # uid -> info
    instances: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (group, lifecycle state)


def _ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or ())


def _pending_reason(pod: dict[str, Any]) -> str:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return str(c.get("message") or c.get("reason") or "")
    return ""


def _list(kube: Any, path: str) -> list[dict[str, Any]]:
    """Every object at `path`, in pages of 5,000: the private sandbox is local, and 60,000 pods in pages of 500
    would take 120 round trips per read."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        query: dict[str, Any] = {"limit": 5000}
        if token:
            query["continue"] = token
        page = kube.request("GET", path, query=query, what=f"list {path}")
        items.extend(page.get("items") or ())
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items


def capture(settings: Settings, *, groups: list[str]) -> State:
    """Read the private cluster (and its moto) now."""
    clients = Clients(settings)
    try:
        nodes = {}
        for n in _list(clients.kube, "/api/v1/nodes"):
            nodes[n["metadata"]["name"]] = {
                "unschedulable": bool((n.get("spec") or {}).get("unschedulable")), "ready": _ready(n),
                "instance": str((n.get("spec") or {}).get("providerID") or "").rsplit("/", 1)[-1]}
        pods = {}
        for p in _list(clients.kube, "/api/v1/pods"):
            meta = p["metadata"]
            owner = next((f"{r.get('kind')}/{r.get('name')}" for r in meta.get("ownerReferences") or ()
                          if r.get("controller")), None)
            phase = str((p.get("status") or {}).get("phase") or "")
            pods[meta["uid"]] = PodInfo(name=f"{meta.get('namespace')}/{meta['name']}",
                                        node=(p.get("spec") or {}).get("nodeName"), phase=phase, owner=owner,
                                        reason=_pending_reason(p) if phase == "Pending" else "")
        instances: dict[str, tuple[str, str]] = {}
        for name in groups:
            group = clients.aws.describe_group(name)
            for inst in group.instances:
                instances[inst.id] = (name, inst.lifecycle_state)
        return State(nodes=nodes, pods=pods, instances=instances)
    finally:
        clients.close()


def log_offset(path: Path) -> int:
    """Where the request log ends now: what the run sends is read from here on."""
    return path.stat().st_size if path.exists() else 0


@dataclass(frozen=True, slots=True)
class Eviction:
    pod: str  # namespace/name
    at_s: float  # seconds after the run started (rehearsal time) of the accepted eviction, or last refusal
    budget_waits: int  # 429 answers (a PodDisruptionBudget said no) before it
    waited_s: float  # from the first attempt to the accepted one (rehearsal time)
    evicted: bool


def evictions(path: Path, *, offset: int, t0: float) -> list[Eviction]:
    """Eviction attempts in the log since `offset`, one entry per pod, in the order they were accepted."""
    attempts: dict[str, list[tuple[float, int]]] = {}
    with open(path, "rb") as fh:
        fh.seek(offset)
        for line in fh:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("subresource") != "eviction" or r.get("dry_run"):
                continue
            pod = f"{r.get('namespace')}/{r.get('name')}"
            attempts.setdefault(pod, []).append((float(r.get("ts") or 0), int(r.get("status") or 0)))
    out = []
    for pod, tries in attempts.items():
        ok = [ts for ts, code in tries if code in (200, 201)]
        refused = sum(1 for _, code in tries if code == 429)
        end = ok[0] if ok else tries[-1][0]
        out.append(Eviction(pod=pod, at_s=max(0.0, end - t0), budget_waits=refused,
                            waited_s=max(0.0, end - tries[0][0]), evicted=bool(ok)))
    return sorted(out, key=lambda e: (not e.evicted, e.at_s, e.pod))
