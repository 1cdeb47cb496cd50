"""Node metrics as a kubelet serves them: ``/metrics/cadvisor`` text and ``metrics.k8s.io`` objects.

Why shaped so closely: kubeops' cAdvisor parser and its usage maths are tested against this endpoint, and
must work unchanged on a real node. The text follows the upstream golden files (``# HELP``/``# TYPE``,
families sorted by name, labels sorted, Go float formatting, millisecond timestamps on usage samples but
not on ``container_spec_*``/``container_start_time_seconds``) with the kubelet's current label set
``container, id, image, name, namespace, pod`` and one ``cpu="total"`` usage series per cgroup (the kubelet
does not enable per-CPU usage). Per pod: a pod-level cgroup (``container=""``, ``image=""``), the pause
container (``container="POD"``) and each app container, under systemd/cgroup-v2 ids like
``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope``.
Plus the root cgroup ``/``, ``/kubepods.slice``, the QoS slices ``kubepods-burstable.slice`` and
``kubepods-besteffort.slice`` under it (Guaranteed pods sit directly in ``kubepods.slice``) and ``/system.slice``.

Usage comes from pod annotations ``sandbox.kubeops.io/cpu-usage`` (cores, a quantity such as ``250m``) and
``sandbox.kubeops.io/memory-usage`` (bytes, e.g. ``300Mi``); CPU counters grow at that rate from the
container's start, so two scrapes a few seconds apart give the configured rate.

Parent cgroups (``/``, ``kubepods.slice``, the QoS slices) count like a kernel's: the sum of their children's
CPU counters plus what pods that have left the node consumed while there (`DepartedCpu`), so they never go
down when a pod goes (kubeops' rate maths would read that as a counter reset). Their memory does drop: the
departed pod's pages are freed. A new pod is a new cgroup, so its own counters start at 0.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kubeops.quantity import parse_quantity

__all__ = [
    "ANN_CPU_USAGE",
    "ANN_MEMORY_USAGE",
    "DepartedCpu",
    "go_float",
    "node_metrics",
    "pod_metrics",
    "render_cadvisor",
]

Obj = dict[str, Any]
ANN_CPU_USAGE = "sandbox.kubeops.io/cpu-usage"
ANN_MEMORY_USAGE = "sandbox.kubeops.io/memory-usage"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
_PAUSE_CPU = 0.0001  # cores: the pause container barely runs
_PAUSE_MEM = 450_000
_SYSTEM_CPU = 0.05  # kubelet, containerd and friends
_SYSTEM_MEM = 400 * 1024 * 1024
_LABELS = ("container", "id", "image", "name", "namespace", "pod")

_FAMILIES: dict[str, tuple[str, str]] = {
    "container_cpu_system_seconds_total": ("Cumulative system cpu time consumed in seconds.", "counter"),
    "container_cpu_usage_seconds_total": ("Cumulative cpu time consumed in seconds.", "counter"),
    "container_cpu_user_seconds_total": ("Cumulative user cpu time consumed in seconds.", "counter"),
    "container_last_seen": ("Last time a container was seen by the exporter", "gauge"),
    "container_memory_cache": ("Number of bytes of page cache memory.", "gauge"),
    "container_memory_rss": ("Size of RSS in bytes.", "gauge"),
    "container_memory_usage_bytes": (
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        "gauge",
    ),
    "container_memory_working_set_bytes": ("Current working set in bytes.", "gauge"),
    "container_network_receive_bytes_total": ("Cumulative count of bytes received", "counter"),
    "container_network_transmit_bytes_total": ("Cumulative count of bytes transmitted", "counter"),
    "container_scrape_error": ("1 if there was an error while getting container metrics, 0 otherwise", "gauge"),
    "container_spec_cpu_period": ("CPU period of the container.", "gauge"),
    "container_spec_cpu_quota": ("CPU quota of the container.", "gauge"),
    "container_spec_cpu_shares": ("CPU share of the container.", "gauge"),
    "container_spec_memory_limit_bytes": ("Memory limit for the container.", "gauge"),
    "container_start_time_seconds": ("Start time of the container since unix epoch in seconds.", "gauge"),
    "machine_cpu_cores": ("Number of logical CPU cores.", "gauge"),
    "machine_memory_bytes": ("Amount of memory installed on the machine.", "gauge"),
}


def go_float(value: float) -> str:
    """Format like Go's ``strconv.FormatFloat(v, 'g', -1, 64)``, as Prometheus' text encoder does."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp = len(text) + int(exponent) - 1  # decimal exponent of the first digit
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:  # Go uses precision 6 for this decision when printing shortest
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if exp >= len(text) - 1:
        return prefix + text + "0" * (exp - len(text) + 1)
    if exp >= 0:
        return prefix + text[: exp + 1] + "." + text[exp + 1 :]
    return prefix + "0." + "0" * (-exp - 1) + text


def _quantity(value: Any, default: float = 0.0) -> float:
    if value in (None, ""):
        return default
    try:
        return float(parse_quantity(value))
    except ValueError:
        return default


def _epoch(ts: str | None, default: float) -> float:
    if not ts:
        return default
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _container_id(pod_uid: str, name: str) -> str:
    return hashlib.sha256(f"{pod_uid}/{name}".encode()).hexdigest()


def _qos(pod: Mapping[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    any_set = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        any_set = any_set or bool(req) or bool(lim)
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
    if not any_set:
        return "besteffort"
    return "guaranteed" if guaranteed else "burstable"


_KUBEPODS = "/kubepods.slice"
_QOS_SLICES = ("besteffort", "burstable")  # guaranteed pods have no slice of their own


def _qos_cgroup(qos: str) -> str:
    return f"{_KUBEPODS}/kubepods-{qos}.slice"


def _pod_cgroup(pod: Mapping[str, Any]) -> str:
    uid = pod["metadata"].get("uid", "").replace("-", "_")
    qos = _qos(pod)
    if qos == "guaranteed":
        return f"{_KUBEPODS}/kubepods-pod{uid}.slice"
    return f"{_qos_cgroup(qos)}/kubepods-{qos}-pod{uid}.slice"


@dataclass(slots=True)
class _Cgroup:
    labels: dict[str, str]
    cpu_s: float  # cumulative CPU seconds at the scrape
    mem: float  # bytes
    start: float
    cpu_limit: float = 0.0
    cpu_request: float = 0.0
    mem_limit: float = 0.0
    network: bool = False
    extra: dict[str, float] = field(default_factory=dict)


def _pod_usage(pod: Mapping[str, Any]) -> tuple[float, float]:
    ann = pod["metadata"].get("annotations") or {}
    return _quantity(ann.get(ANN_CPU_USAGE)), _quantity(ann.get(ANN_MEMORY_USAGE))


def _running(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def _container_split(pod: Mapping[str, Any]) -> list[tuple[Obj, float, float]]:
    """App containers with their share of the pod's usage (even split)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    cpu, mem = _pod_usage(pod)
    n = max(1, len(containers))
    return [(c, cpu / n, mem / n) for c in containers]


def _pod_start(pod: Mapping[str, Any], now: float) -> float:
    return _epoch((pod.get("status") or {}).get("startTime"), now)


def _pod_cpu_seconds(pod: Mapping[str, Any], now: float) -> float:
    """The pod cgroup's CPU counter at ``now``: pause plus app containers, from the pod's start."""
    cores = _PAUSE_CPU + sum(cpu for _, cpu, _ in _container_split(pod))
    return cores * max(0.0, now - _pod_start(pod, now))


class DepartedCpu:
    """Per node and QoS class, the CPU seconds of pods that stopped running there (deleted, or finished).

    Why: a departed pod's CPU time stays in its parent cgroups' counters on a real node; without this the
    node's ``/`` counter would be the sum over the pods present and fall when one leaves. Fed by pod events
    (under the store lock, as the scrape that reads it); a deleted Node forgets its history (a new machine)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._by_node: dict[str, dict[str, float]] = {}

    def on_node(self, node: str) -> dict[str, float]:
        """CPU seconds by QoS class (``besteffort``, ``burstable``, ``guaranteed``) of pods gone from ``node``."""
        return dict(self._by_node.get(node) or {})

    def pod_event(self, event: Any) -> None:
        before = event.old if event.type != "DELETED" else (event.old or event.obj)
        after = None if event.type == "DELETED" else event.obj
        node = _running_on(before)
        if node is None or _running_on(after) == node:
            return
        assert before is not None
        qos = _qos(before)
        spent = self._by_node.setdefault(node, {})
        spent[qos] = spent.get(qos, 0.0) + _pod_cpu_seconds(before, self._clock())

    def node_event(self, event: Any) -> None:
        if event.type == "DELETED":
            self._by_node.pop(event.name, None)


def _running_on(pod: Mapping[str, Any] | None) -> str | None:
    """The node whose cgroups the pod's CPU time counts in right now, if any."""
    if pod is None or not _running(pod):
        return None
    return (pod.get("spec") or {}).get("nodeName") or None


def _cgroups(node: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], now: float,
             departed: Mapping[str, float]) -> list[_Cgroup]:
    boot = _epoch((node.get("metadata") or {}).get("creationTimestamp"), now - 3600)
    groups: list[_Cgroup] = []
    qos_cpu_s = {q: float(departed.get(q, 0.0)) for q in (*_QOS_SLICES, "guaranteed")}
    qos_mem = dict.fromkeys(_QOS_SLICES, 0.0)
    kube_mem = 0.0
    for pod in pods:
        if not _running(pod):
            continue
        meta = pod["metadata"]
        ns, name, uid = meta.get("namespace", ""), meta["name"], meta.get("uid", "")
        start = _pod_start(pod, now)
        uptime = max(0.0, now - start)
        pod_id = _pod_cgroup(pod)
        statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or ()}
        pod_mem = float(_PAUSE_MEM)
        children: list[_Cgroup] = []
        pause_id = _container_id(uid, "POD")
        children.append(
            _Cgroup(
                {"container": "POD", "id": f"{pod_id}/cri-containerd-{pause_id}.scope", "image": PAUSE_IMAGE,
                 "name": pause_id, "namespace": ns, "pod": name},
                _PAUSE_CPU * uptime, _PAUSE_MEM, start, cpu_request=0.002, network=True,
            )
        )
        for c, cpu, mem in _container_split(pod):
            cid = _container_id(uid, c["name"])
            res = c.get("resources") or {}
            image = (statuses.get(c["name"]) or {}).get("image") or c.get("image") or ""
            children.append(
                _Cgroup(
                    {"container": c["name"], "id": f"{pod_id}/cri-containerd-{cid}.scope", "image": image,
                     "name": cid, "namespace": ns, "pod": name},
                    cpu * uptime, mem, start,
                    cpu_limit=_quantity((res.get("limits") or {}).get("cpu")),
                    cpu_request=_quantity((res.get("requests") or {}).get("cpu")),
                    mem_limit=_quantity((res.get("limits") or {}).get("memory")),
                )
            )
            pod_mem += mem
        pod_cpu_s = _pod_cpu_seconds(pod, now)
        groups.append(
            _Cgroup({"container": "", "id": pod_id, "image": "", "name": "", "namespace": ns, "pod": name},
                    pod_cpu_s, pod_mem, start)
        )
        groups.extend(children)
        qos = _qos(pod)
        qos_cpu_s[qos] += pod_cpu_s
        if qos in qos_mem:
            qos_mem[qos] += pod_mem
        kube_mem += pod_mem
    kube_cpu_s = math.fsum(qos_cpu_s.values())
    system_s = _SYSTEM_CPU * max(0.0, now - boot)
    empty = {"container": "", "image": "", "name": "", "namespace": "", "pod": ""}
    groups.append(_Cgroup({**empty, "id": "/"}, kube_cpu_s + system_s, kube_mem + _SYSTEM_MEM, boot, network=True))
    groups.append(_Cgroup({**empty, "id": _KUBEPODS}, kube_cpu_s, kube_mem, boot))
    for qos in _QOS_SLICES:
        groups.append(_Cgroup({**empty, "id": _qos_cgroup(qos)}, qos_cpu_s[qos], qos_mem[qos], boot))
    groups.append(_Cgroup({**empty, "id": "/system.slice"}, system_s, _SYSTEM_MEM, boot))
    for unit in ("containerd.service", "kubelet.service"):
        groups.append(_Cgroup({**empty, "id": f"/system.slice/{unit}"}, system_s / 2, _SYSTEM_MEM / 2, boot))
    return groups


def _label_text(labels: Mapping[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{esc(labels[k])}"' for k in sorted(labels))


def render_cadvisor(node: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], *, now: float | None = None,
                    departed: Mapping[str, float] | None = None) -> str:
    """The node's ``/metrics/cadvisor`` body for the pods bound to it.

    ``departed``: CPU seconds by QoS class of pods that have left the node (`DepartedCpu.on_node`), which the
    parent cgroups' counters keep."""
    now = now if now is not None else datetime.now(UTC).timestamp()
    ts = str(int(now * 1000))
    groups = _cgroups(node, pods, now, departed or {})
    samples: dict[str, list[tuple[str, str, bool]]] = {name: [] for name in _FAMILIES}

    def add(family: str, labels: Mapping[str, str] | str, value: float, *, stamped: bool = True) -> None:
        text = labels if isinstance(labels, str) else _label_text(labels)
        samples[family].append((text, go_float(value), stamped))

    for g in groups:
        uptime = max(0.0, now - g.start)
        used = g.cpu_s
        own = _label_text(g.labels)  # the same label text in most families: escaped and sorted once per cgroup
        add("container_cpu_usage_seconds_total", {**g.labels, "cpu": "total"}, round(used, 9))
        add("container_cpu_user_seconds_total", own, round(used * 0.7, 9))
        add("container_cpu_system_seconds_total", own, round(used * 0.3, 9))
        add("container_memory_working_set_bytes", own, math.floor(g.mem))
        add("container_memory_usage_bytes", own, math.floor(g.mem * 1.1))
        add("container_memory_rss", own, math.floor(g.mem * 0.9))
        add("container_memory_cache", own, math.floor(g.mem * 0.1))
        add("container_last_seen", own, math.floor(now))
        add("container_start_time_seconds", own, math.floor(g.start), stamped=False)
        add("container_spec_cpu_period", own, 100000, stamped=False)
        if g.cpu_limit:
            add("container_spec_cpu_quota", own, math.floor(g.cpu_limit * 100000), stamped=False)
        add("container_spec_cpu_shares", own, max(2, math.floor((g.cpu_request or 0.002) * 1024)),
            stamped=False)
        add("container_spec_memory_limit_bytes", own, math.floor(g.mem_limit), stamped=False)
        if g.network:
            net = {**g.labels, "interface": "eth0"}
            add("container_network_receive_bytes_total", net, math.floor(uptime * 2048))
            add("container_network_transmit_bytes_total", net, math.floor(uptime * 1024))
    cpu_m, mem = _node_capacity(node)
    machine = {"boot_id": _container_id(node["metadata"]["name"], "boot"),
               "machine_id": _container_id(node["metadata"]["name"], "machine")[:32],
               "system_uuid": _container_id(node["metadata"]["name"], "uuid")[:32]}
    add("machine_cpu_cores", machine, cpu_m)
    add("machine_memory_bytes", machine, mem)
    lines: list[str] = []
    for family in sorted(_FAMILIES):
        help_text, kind = _FAMILIES[family]
        lines.append(f"# HELP {family} {help_text}")
        lines.append(f"# TYPE {family} {kind}")
        if family == "container_scrape_error":
            lines.append("container_scrape_error 0")
            continue
        for labels, value, stamped in sorted(samples[family]):
            lines.append(f"{family}{{{labels}}} {value} {ts}" if stamped else f"{family}{{{labels}}} {value}")
    return "\n".join(lines) + "\n"


def _node_capacity(node: Mapping[str, Any]) -> tuple[float, float]:
    cap = (node.get("status") or {}).get("capacity") or (node.get("status") or {}).get("allocatable") or {}
    return _quantity(cap.get("cpu")), _quantity(cap.get("memory"))


def _format_ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu_nanos(cores: float) -> str:
    return f"{round(cores * 1e9)}n"


def _mem_ki(nbytes: float) -> str:
    return f"{math.floor(nbytes / 1024)}Ki"


def node_metrics(node: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], *, now: float | None = None) -> Obj:
    """A ``metrics.k8s.io/v1beta1`` NodeMetrics for the node's running pods plus system overhead."""
    now = now if now is not None else datetime.now(UTC).timestamp()
    cpu, mem = _SYSTEM_CPU, float(_SYSTEM_MEM)
    for pod in pods:
        if _running(pod):
            pc, pm = _pod_usage(pod)
            cpu += pc + _PAUSE_CPU
            mem += pm + _PAUSE_MEM
    meta = node["metadata"]
    return {
        "kind": "NodeMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {
            "name": meta["name"],
            "creationTimestamp": _format_ts(now),
            "labels": dict(meta.get("labels") or {}),
        },
        "timestamp": _format_ts(now - 5),
        "window": "20.027s",
        "usage": {"cpu": _cpu_nanos(cpu), "memory": _mem_ki(mem)},
    }


def pod_metrics(pod: Mapping[str, Any], *, now: float | None = None) -> Obj | None:
    """A PodMetrics for a running pod (None for any other: metrics-server has nothing for it)."""
    if not _running(pod):
        return None
    now = now if now is not None else datetime.now(UTC).timestamp()
    meta = pod["metadata"]
    return {
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace"), "creationTimestamp": _format_ts(now),
                     "labels": dict(meta.get("labels") or {})},
        "timestamp": _format_ts(now - 5),
        "window": "18.4s",
        "containers": [
            {"name": c["name"], "usage": {"cpu": _cpu_nanos(cpu), "memory": _mem_ki(mem)}}
            for c, cpu, mem in _container_split(pod)
        ],
    }


def _metrics_resources() -> list[Any]:
    from kubeops.sandbox.discovery import ResourceInfo

    verbs = ("get", "list")
    return [
        ResourceInfo(plural="nodes", kind="NodeMetrics", group="metrics.k8s.io", versions=("v1beta1",),
                     namespaced=False, verbs=verbs),
        ResourceInfo(plural="pods", kind="PodMetrics", group="metrics.k8s.io", versions=("v1beta1",),
                     namespaced=True, verbs=verbs),
    ]


def install(cluster: Any) -> None:
    """Serve ``/api/v1/nodes/{name}/proxy/metrics/cadvisor`` and the metrics.k8s.io/v1beta1 group."""
    from kubeops.sandbox import status as st
    from kubeops.sandbox.selectors import SelectorError, labels_match, parse_label_selector
    from kubeops.sandbox.tracker import tracker_for

    tracker = tracker_for(cluster)
    store = cluster.store
    departed = DepartedCpu(cluster.clock.now)
    tracker.listeners["pods"].append(departed.pod_event)
    tracker.listeners["nodes"].append(departed.node_event)

    def proxy(cluster: Any, namespace: str | None, name: str, path: str, query: dict[str, str]
              ) -> tuple[int, bytes, str]:
        node = store.try_get("nodes", None, name, copy=False)
        if node is None:
            raise st.not_found("", "nodes", name)
        if path.strip("/") != "metrics/cadvisor":
            return 404, b"404 page not found\n", "text/plain; charset=utf-8"
        with store.lock:  # pods and the departed ledger from one instant, or a leaving pod counts twice
            now = cluster.clock.now()
            pods, gone = tracker.pods_on(name), departed.on_node(name)
        text = render_cadvisor(node, pods, now=now, departed=gone)
        return 200, text.encode(), "text/plain; version=0.0.4; charset=utf-8"

    def read(cluster: Any, info: Any, namespace: str | None, name: str | None, query: dict[str, str]) -> Obj:
        now = cluster.clock.now()
        try:
            selector = parse_label_selector(query.get("labelSelector"))
        except SelectorError as exc:
            raise st.bad_request(str(exc)) from None
        if info.kind == "NodeMetrics":
            if name is not None:
                node = store.try_get("nodes", None, name, copy=False)
                if node is None:
                    raise st.not_found("metrics.k8s.io", "nodes", name)
                return node_metrics(node, tracker.pods_on(name), now=now)
            items = [node_metrics(n, tracker.pods_on(n["metadata"]["name"]), now=now)
                     for n in sorted(store.iter("nodes"), key=lambda n: n["metadata"]["name"])
                     if not selector or labels_match(selector, n)]
            return {"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {},
                    "items": items}
        if name is not None:
            pod = store.try_get("pods", namespace, name, copy=False)
            found = pod_metrics(pod, now=now) if pod is not None else None
            if found is None:
                raise st.not_found("metrics.k8s.io", "pods", name)
            return found
        pods = sorted(store.iter("pods", namespace or None),
                      key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"]))
        items = [m for p in pods if (not selector or labels_match(selector, p))
                 for m in [pod_metrics(p, now=now)] if m is not None]
        return {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}

    cluster.proxies[("nodes", "proxy")] = proxy
    cluster.register_api_group("metrics.k8s.io", "v1beta1", _metrics_resources(), read)
