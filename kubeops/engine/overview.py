"""Read-only views of a cluster for front ends: nodes with usage, a node's pods, apps, the lock, windows, schedules.

Why in the engine: the console must show nothing that `invoke` cannot also reach, and it must not talk to
the clients itself. These functions join what `invoke stats`, `invoke lock` and `invoke render` already read
into plain frozen rows; they never change anything. Each opens its clients and closes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeops.clients.factory import Clients
from kubeops.engine.guard import lock_for, window_from_settings
from kubeops.errors import KubeopsError, NotFound
from kubeops.model.playbook import Playbook
from kubeops.model.windows import Window, next_opening_of_all
from kubeops.settings import Settings, inventory_dir

ROLE_PREFIX = "node-role.kubernetes.io/"
ZONE_LABEL = "topology.kubernetes.io/zone"
GROUP_LABELS = ("kubeops.io/autoscaling-group", "eks.amazonaws.com/nodegroup", "alpha.eksctl.io/nodegroup-name")


@contextmanager
def _kube(settings: Settings) -> Iterator[Any]:
    clients = Clients(settings)
    try:
        yield clients.kube
    finally:
        clients.close()


@dataclass(frozen=True, slots=True)
class NodeView:
    """One line of the Nodes page."""

    name: str
    ready: bool
    cordoned: bool
    roles: str
    zone: str
    instance: str
    group: str
    pods: int
    cpu_used: float | None  # cores
    cpu_alloc: float
    memory_used: float | None  # bytes
    memory_alloc: float
    source: str  # cadvisor, metrics.k8s.io, or "" when usage could not be measured

    @property
    def cpu_pct(self) -> float | None:
        return 100.0 * self.cpu_used / self.cpu_alloc if self.cpu_used is not None and self.cpu_alloc else None

    @property
    def memory_pct(self) -> float | None:
        return (100.0 * self.memory_used / self.memory_alloc
                if self.memory_used is not None and self.memory_alloc else None)


@dataclass(frozen=True, slots=True)
class PodView:
    """One pod of a node page: usage beside requests and limits, its owner and the budgets covering it."""

    namespace: str
    name: str
    phase: str
    owner: str
    budgets: tuple[str, ...]
    cpu_used: float | None
    cpu_request: float
    cpu_limit: float | None
    memory_used: float | None
    memory_request: float
    memory_limit: float | None


@dataclass(frozen=True, slots=True)
class NodesPage:
    nodes: list[NodeView]
    usage_error: str | None  # why usage is missing (the rest still shows)


@dataclass(frozen=True, slots=True)
class NodePage:
    node: NodeView
    pods: list[PodView]
    taints: list[str]
    labels: dict[str, str]
    usage_error: str | None


def _node_view(obj: dict[str, Any], *, pods: int, row: Any | None) -> NodeView:
    from kubeops.clients.nodes import node_instance_id, node_is_ready
    from kubeops.metrics.report import allocatable

    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    roles = sorted(k[len(ROLE_PREFIX):] for k in labels if k.startswith(ROLE_PREFIX))
    roles = roles or [labels.get("kubernetes.io/role", "")]
    cpu_alloc, mem_alloc = allocatable(obj)
    return NodeView(
        name=str(meta.get("name")),
        ready=node_is_ready(obj),
        cordoned=bool((obj.get("spec") or {}).get("unschedulable")),
        roles=",".join(r for r in roles if r) or "-",
        zone=str(labels.get(ZONE_LABEL) or "-"),
        instance=node_instance_id(obj) or "-",
        group=next((str(labels[k]) for k in GROUP_LABELS if labels.get(k)), "-"),
        pods=row.pods if row is not None else pods,
        cpu_used=row.cpu_cores if row is not None else None,
        cpu_alloc=cpu_alloc,
        memory_used=row.memory_bytes if row is not None else None,
        memory_alloc=mem_alloc,
        source=row.source if row is not None else "",
    )


def _live_pods_by_node(pods: list[dict[str, Any]]) -> dict[str, int]:
    from kubeops.drain import is_finished

    counts: dict[str, int] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and not is_finished(pod):
            counts[node] = counts.get(node, 0) + 1
    return counts


def nodes_page(settings: Settings, *, interval_s: float = 0.5) -> NodesPage:
    """Every node, with usage measured over `interval_s` (cAdvisor, metrics.k8s.io as fallback)."""
    from kubeops.actions.cadvisor import collect_reports
    from kubeops.clients.nodes import list_nodes
    from kubeops.clients.pods import list_pods

    with _kube(settings) as kube:
        nodes = sorted(list_nodes(kube), key=lambda n: n["metadata"]["name"])
        rows: dict[str, Any] = {}
        error = None
        try:
            rows = {r.node.node: r.node for r in collect_reports(kube, None, interval_s=interval_s)}
            counts: dict[str, int] = {}
        except KubeopsError as exc:
            error = exc.message
            counts = _live_pods_by_node(list_pods(kube)[0])
    return NodesPage([_node_view(n, pods=counts.get(n["metadata"]["name"], 0), row=rows.get(n["metadata"]["name"]))
                      for n in nodes], error)


def _owner(pod: dict[str, Any]) -> str:
    from kubeops.drain import controller_ref

    ref = controller_ref(pod)
    return f"{ref.get('kind')}/{ref.get('name')}" if ref else "(none)"


def node_page(settings: Settings, name: str, *, interval_s: float = 0.5) -> NodePage:
    """One node and its pods; NotFound when there is no such node."""
    from kubeops.actions.cadvisor import collect_reports
    from kubeops.clients.nodes import get_node
    from kubeops.clients.pods import list_budgets, list_pods
    from kubeops.drain import is_finished, selector_matches
    from kubeops.metrics.report import pod_limits

    with _kube(settings) as kube:
        obj = get_node(kube, name)
        pods = [p for p in list_pods(kube, node=name)[0] if not is_finished(p)]
        budgets = list_budgets(kube)
        report = None
        error = None
        try:
            (report,) = collect_reports(kube, [name], interval_s=interval_s)
        except KubeopsError as exc:
            error = exc.message
    from kubeops.capacity import pod_requests

    usage = {(r.namespace, r.pod): r for r in report.pods} if report else {}
    views = []
    for pod in sorted(pods, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
        meta = pod["metadata"]
        ns, pname = meta.get("namespace", ""), meta["name"]
        covering = tuple(
            f"{b['metadata'].get('namespace')}/{b['metadata']['name']}"
            for b in budgets
            if b["metadata"].get("namespace") == ns
            and selector_matches((b.get("spec") or {}).get("selector"), meta.get("labels") or {})
        )
        row = usage.get((ns, pname))
        cpu_req, mem_req = pod_requests(pod)
        cpu_lim, mem_lim = pod_limits(pod)
        views.append(PodView(
            namespace=ns, name=pname, phase=str((pod.get("status") or {}).get("phase", "?")), owner=_owner(pod),
            budgets=covering, cpu_used=row.cpu_cores if row else None, cpu_request=cpu_req / 1000.0,
            cpu_limit=cpu_lim, memory_used=row.memory_bytes if row else None, memory_request=float(mem_req),
            memory_limit=mem_lim,
        ))
    spec = obj.get("spec") or {}
    taints = [f"{t.get('key')}={t.get('value') or ''}:{t.get('effect')}" for t in spec.get("taints") or ()]
    return NodePage(
        node=_node_view(obj, pods=len(pods), row=report.node if report else None),
        pods=views,
        taints=taints,
        labels=dict((obj.get("metadata") or {}).get("labels") or {}),
        usage_error=error,
    )


@dataclass(frozen=True, slots=True)
class AppView:
    """One inventory app: its live versioned controllers and what its Service routes to."""

    name: str
    namespace: str
    configured_version: str | None
    versions: list[dict[str, Any]]  # name, version, replicas, ready
    service: str
    endpoints: list[str]  # ip:port of ready addresses
    error: str | None
    previous: list[str]  # versions earlier runs deployed that are no longer live: what a rollback goes back to


def deployed_versions(runs: Sequence[Any], app: str) -> list[str]:
    """Versions that `rolling-deploy` runs (done, not dry) of `app` deployed, newest first, each once."""
    seen: list[str] = []
    for run in runs:  # RunSummary rows, newest first
        version = str(run.params.get("version") or "")
        if (run.playbook == "rolling-deploy" and run.status == "done" and not run.dry_run
                and run.params.get("app") == app and version and version not in seen):
            seen.append(version)
    return seen


def apps_page(settings: Settings, *, runs: Sequence[Any] = ()) -> list[AppView]:
    """Every app of the cluster's inventory folder (a bad config shows its error, the others still show);
    `runs` (run summaries, newest first) tell which versions were deployed before, for rollback."""
    from kubeops.apps.config import apps_dir, load_app
    from kubeops.apps.render import ANNOTATION_VERSION, app_selector
    from kubeops.clients.workloads import list_controllers

    inventory = Path(settings.inventory_path).parent if settings.inventory_path else inventory_dir()
    folder = apps_dir(inventory)
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    out: list[AppView] = []
    with _kube(settings) as kube:
        for path in files:
            try:
                app = load_app(path.stem, inventory=inventory, cluster=settings.cluster)
            except KubeopsError as exc:
                out.append(AppView(path.stem, "-", None, [], "-", [], exc.message, []))
                continue
            versions = [
                {"name": c.name,
                 "version": c.annotations.get(ANNOTATION_VERSION) or c.labels.get("version")
                 or c.name.rpartition("-v")[2],
                 "replicas": c.replicas, "ready": c.ready, "kind": c.kind}
                for c in list_controllers(kube, namespace=app.namespace, label_selector=app_selector(app))
            ]
            endpoints: list[str] = []
            try:
                ep = kube.request("GET", f"/api/v1/namespaces/{app.namespace}/endpoints/{app.service.name}",
                                  what=f"read endpoints {app.namespace}/{app.service.name}")
                for subset in ep.get("subsets") or ():
                    ports = [p.get("port") for p in subset.get("ports") or ()] or [""]
                    endpoints += [f"{a.get('ip')}:{ports[0]}" for a in subset.get("addresses") or ()]
            except NotFound:
                pass
            live = {v["version"] for v in versions if v["replicas"]}
            previous = [v for v in deployed_versions(runs, path.stem) if v not in live]
            out.append(AppView(app.name, app.namespace, app.version, versions, app.service.name, endpoints, None,
                               previous))
    return out


@dataclass(frozen=True, slots=True)
class LockView:
    lines: list[str]
    free: bool
    holders: list[str]  # run ids holding it now


def lock_view(settings: Settings) -> LockView:
    """Who holds the cluster lock (read-only; nothing is taken)."""
    lock = lock_for(settings)
    if lock is None:
        return LockView(["no kubeconfig: runs go unlocked"], True, [])
    now = datetime.now(UTC)
    try:
        states = lock.states()
    finally:
        lock.kube.close()
    busy = [s for s in states if not s.is_free(now)]
    lines = [s.describe(now) for s in states] or [f"lease {settings.lock.namespace}/{settings.lock.name} is free"]
    return LockView(lines, not busy or len(busy) < int(settings.lock.concurrency), [str(s.holder) for s in busy])


@dataclass(frozen=True, slots=True)
class WindowView:
    """Whether a run may start now, and when it next may."""

    windows: list[str]  # "inventory: mon-fri 22:00-04:00 Europe/Berlin"
    open_now: bool
    next_opening: str | None
    message: str


def window_view(settings: Settings, playbook: Playbook | None = None, *, now: datetime | None = None) -> WindowView:
    """The inventory's window and the playbook's own (a run must be inside all of them, like the guard says)."""
    moment = now or datetime.now(UTC)
    pairs: list[tuple[Window, str]] = []
    inv = window_from_settings(settings)
    if inv is not None:
        pairs.append((inv, "inventory"))
    if playbook is not None:
        pairs += [(w, f"playbook {playbook.name}") for w in playbook.windows]
    if not pairs:
        return WindowView([], True, None, "no maintenance window: runs may start any time")
    windows: Sequence[Window] = [w for w, _ in pairs]
    closed = next(((w, o) for w, o in pairs if not w.contains(moment)), None)
    described = [f"{o}: {w.describe()}" for w, o in pairs]
    if closed is None:
        return WindowView(described, True, None, "inside the maintenance window")
    nxt = next_opening_of_all(windows, moment)
    return WindowView(described, False, nxt.isoformat(timespec="minutes") if nxt else None,
                      closed[0].outside_message(moment, origin=closed[1], others=[w for w in windows
                                                                                  if w is not closed[0]]))


def schedules(settings: Settings) -> list[dict[str, Any]]:
    """The CronJobs `invoke schedule --kubernetes` installed in the cluster (crontab lines live on hosts)."""
    with _kube(settings) as kube:
        data = kube.request("GET", "/apis/batch/v1/cronjobs",
                            query={"labelSelector": "app.kubernetes.io/managed-by=kubeops"}, what="list CronJobs")
    out = []
    for item in data.get("items") or ():
        meta, spec = item.get("metadata") or {}, item.get("spec") or {}
        out.append({"name": f"{meta.get('namespace')}/{meta.get('name')}", "schedule": spec.get("schedule"),
                    "suspended": bool(spec.get("suspend")),
                    "last": (item.get("status") or {}).get("lastScheduleTime") or "-"})
    return out
