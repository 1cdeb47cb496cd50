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
from dataclasses import dataclass
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
    "render_resource",
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
    text = repr(float(value))
    if "e" not in text:  # 1e-4 <= |value| < 1e16: Python already printed the shortest digits, in fixed notation
        body = text.lstrip("-")
        whole, _, fraction = body.partition(".")
        if whole != "0" and len(whole) > 6:  # Go switches to an exponent from 1e6 on
            digits = (whole + fraction).rstrip("0")
            mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
            return f"{text[: len(text) - len(body)]}{mantissa}e+{len(whole) - 1:02d}"
        return text[:-2] if fraction == "0" else text
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


@dataclass(frozen=True, slots=True)
class _Series:
    """One cgroup's label texts and the samples that do not move with the clock (memory, spec, start time).

    Why apart from the counters: a pod's cgroups only change when the pod does, so its series are built once per
    pod version (`PodLayouts`) and a scrape only formats the CPU and network counters, which grow with time.
    """

    own: str  # sorted, escaped labels, shared by most families
    cpu_labels: str  # own plus cpu="total", for container_cpu_usage_seconds_total
    net_labels: str | None  # own plus interface="eth0" for cgroups with a network namespace, else None
    cpu_rate: float  # cores; for parents, the counter is given per render instead
    start: float
    constants: tuple[tuple[str, str, bool], ...]  # (family, formatted value, timestamped): memory and spec


@dataclass(frozen=True, slots=True)
class _PodLayout:
    """A running pod's cgroups (pod, pause, app containers) and what its parents add up."""

    series: tuple[_Series, ...]
    qos: str
    memory: float
    cpu_rate: float  # the pod cgroup's cores: pause plus app containers
    start: float
    namespace: str = ""
    name: str = ""
    containers: tuple[tuple[str, float, float], ...] = ()  # app containers: (name, cores, working set bytes)


class PodLayouts:
    """Per pod UID, the layout built for its current resourceVersion: a scrape of an unchanged pod costs no parsing.

    Bounded by the pods of the cluster: an entry is replaced when its pod changes and dropped when the pod is
    deleted (`pod_event`, fed by the tracker). A pod without a start time is never kept (its start is "now")."""

    def __init__(self) -> None:
        self._by_uid: dict[str, tuple[str, _PodLayout]] = {}

    def get(self, pod: Mapping[str, Any], now: float) -> _PodLayout:
        meta = pod["metadata"]
        uid, version = meta.get("uid", ""), meta.get("resourceVersion")
        cached = self._by_uid.get(uid)
        if cached is not None and version and cached[0] == version:
            return cached[1]
        layout = _pod_layout(pod, now)
        if version and (pod.get("status") or {}).get("startTime"):  # without a start time the start is `now`
            self._by_uid[uid] = (version, layout)
        return layout

    def __len__(self) -> int:
        return len(self._by_uid)

    def pod_event(self, event: Any) -> None:
        if event.type == "DELETED":
            gone = event.old or event.obj
            if gone is not None:
                self._by_uid.pop(gone["metadata"].get("uid", ""), None)


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


def _series(labels: Mapping[str, str], cpu_rate: float, start: float, mem: float, *, cpu_limit: float = 0.0,
            cpu_request: float = 0.0, mem_limit: float = 0.0, network: bool = False) -> _Series:
    constants = [
        ("container_memory_working_set_bytes", go_float(math.floor(mem)), True),
        ("container_memory_usage_bytes", go_float(math.floor(mem * 1.1)), True),
        ("container_memory_rss", go_float(math.floor(mem * 0.9)), True),
        ("container_memory_cache", go_float(math.floor(mem * 0.1)), True),
        ("container_start_time_seconds", go_float(math.floor(start)), False),
        ("container_spec_cpu_period", "100000", False),
        ("container_spec_cpu_shares", go_float(max(2, math.floor((cpu_request or 0.002) * 1024))), False),
        ("container_spec_memory_limit_bytes", go_float(math.floor(mem_limit)), False),
    ]
    if cpu_limit:
        constants.append(("container_spec_cpu_quota", go_float(math.floor(cpu_limit * 100000)), False))
    net = _label_text({**labels, "interface": "eth0"}) if network else None
    return _Series(_label_text(labels), _label_text({**labels, "cpu": "total"}), net, cpu_rate, start,
                   tuple(constants))


def _pod_layout(pod: Mapping[str, Any], now: float) -> _PodLayout:
    meta = pod["metadata"]
    ns, name, uid = meta.get("namespace", ""), meta["name"], meta.get("uid", "")
    start = _pod_start(pod, now)
    pod_id = _pod_cgroup(pod)
    statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or ()}
    pod_mem = float(_PAUSE_MEM)
    pause_id = _container_id(uid, "POD")
    children = [
        _series({"container": "POD", "id": f"{pod_id}/cri-containerd-{pause_id}.scope", "image": PAUSE_IMAGE,
                 "name": pause_id, "namespace": ns, "pod": name},
                _PAUSE_CPU, start, _PAUSE_MEM, cpu_request=0.002, network=True)
    ]
    split = _container_split(pod)
    for c, cpu, mem in split:
        cid = _container_id(uid, c["name"])
        res = c.get("resources") or {}
        image = (statuses.get(c["name"]) or {}).get("image") or c.get("image") or ""
        children.append(
            _series({"container": c["name"], "id": f"{pod_id}/cri-containerd-{cid}.scope", "image": image,
                     "name": cid, "namespace": ns, "pod": name},
                    cpu, start, mem,
                    cpu_limit=_quantity((res.get("limits") or {}).get("cpu")),
                    cpu_request=_quantity((res.get("requests") or {}).get("cpu")),
                    mem_limit=_quantity((res.get("limits") or {}).get("memory")))
        )
        pod_mem += mem
    cores = _PAUSE_CPU + sum(cpu for _, cpu, _ in split)
    own = _series({"container": "", "id": pod_id, "image": "", "name": "", "namespace": ns, "pod": name},
                  cores, start, pod_mem)
    return _PodLayout((own, *children), _qos(pod), pod_mem, cores, start, ns, name,
                      tuple((c["name"], cpu, mem) for c, cpu, mem in split))


def _label_text(labels: Mapping[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{esc(labels[k])}"' for k in sorted(labels))


@dataclass(slots=True)
class _Tally:
    """The running pods' layouts with their uptime, and what the node's parent cgroups add up to at one instant."""

    running: list[tuple[_PodLayout, float]]
    qos_cpu_s: dict[str, float]
    qos_mem: dict[str, float]
    kube_mem: float
    system_s: float
    boot: float

    @property
    def kube_cpu_s(self) -> float:
        return math.fsum(self.qos_cpu_s.values())


def _tally(node: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], now: float,
           departed: Mapping[str, float] | None, layouts: PodLayouts | None) -> _Tally:
    layouts = layouts if layouts is not None else PodLayouts()
    boot = _epoch((node.get("metadata") or {}).get("creationTimestamp"), now - 3600)
    qos_cpu_s = {q: float((departed or {}).get(q, 0.0)) for q in (*_QOS_SLICES, "guaranteed")}
    qos_mem = dict.fromkeys(_QOS_SLICES, 0.0)
    kube_mem = 0.0
    running: list[tuple[_PodLayout, float]] = []
    for pod in pods:
        if not _running(pod):
            continue
        layout = layouts.get(pod, now)
        uptime = max(0.0, now - layout.start)
        running.append((layout, uptime))
        qos_cpu_s[layout.qos] += layout.cpu_rate * uptime
        if layout.qos in qos_mem:
            qos_mem[layout.qos] += layout.memory
        kube_mem += layout.memory
    return _Tally(running, qos_cpu_s, qos_mem, kube_mem, _SYSTEM_CPU * max(0.0, now - boot), boot)


_RESOURCE_FAMILIES: dict[str, tuple[str, str]] = {  # the kubelet's /metrics/resource, all [STABLE]
    "container_cpu_usage_seconds_total": ("Cumulative cpu time consumed by the container in core-seconds", "counter"),
    "container_memory_working_set_bytes": ("Current working set of the container in bytes", "gauge"),
    "container_start_time_seconds": ("Start time of the container since unix epoch in seconds", "gauge"),
    "node_cpu_usage_seconds_total": ("Cumulative cpu time consumed by the node in core-seconds", "counter"),
    "node_memory_working_set_bytes": ("Current working set of the node in bytes", "gauge"),
    "pod_cpu_usage_seconds_total": ("Cumulative cpu time consumed by the pod in core-seconds", "counter"),
    "pod_memory_working_set_bytes": ("Current working set of the pod in bytes", "gauge"),
    "resource_scrape_error": ("1 if there was an error while getting container metrics, 0 otherwise", "gauge"),
}


def render_resource(node: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], *, now: float | None = None,
                    departed: Mapping[str, float] | None = None, layouts: PodLayouts | None = None) -> str:
    """The node's ``/metrics/resource`` body: what the kubelet tells metrics-server, from the same numbers.

    Per app container (no pause container: the kubelet leaves sandboxes out), per pod (its cgroup: pause
    included) and for the node (its root cgroup), each with the millisecond timestamp of the stats; families
    sorted by name, labels ``container, namespace, pod`` sorted, as the kubelet's Prometheus registry writes."""
    now = now if now is not None else datetime.now(UTC).timestamp()
    ts = str(int(now * 1000))
    tally = _tally(node, pods, now, departed, layouts)
    samples: dict[str, list[str]] = {name: [] for name in _RESOURCE_FAMILIES}
    pod_rows = sorted(tally.running, key=lambda item: (item[0].namespace, item[0].name))
    for layout, uptime in pod_rows:
        pod_labels = _label_text({"namespace": layout.namespace, "pod": layout.name})
        samples["pod_cpu_usage_seconds_total"].append(
            f"pod_cpu_usage_seconds_total{{{pod_labels}}} {go_float(round(layout.cpu_rate * uptime, 9))} {ts}")
        samples["pod_memory_working_set_bytes"].append(
            f"pod_memory_working_set_bytes{{{pod_labels}}} {go_float(math.floor(layout.memory))} {ts}")
    containers = sorted(
        (_label_text({"container": name, "namespace": layout.namespace, "pod": layout.name}), cores * uptime, mem,
         layout.start)
        for layout, uptime in tally.running for name, cores, mem in layout.containers
    )
    for labels, cpu_s, mem, start in containers:
        samples["container_cpu_usage_seconds_total"].append(
            f"container_cpu_usage_seconds_total{{{labels}}} {go_float(round(cpu_s, 9))} {ts}")
        samples["container_memory_working_set_bytes"].append(
            f"container_memory_working_set_bytes{{{labels}}} {go_float(math.floor(mem))} {ts}")
        samples["container_start_time_seconds"].append(
            f"container_start_time_seconds{{{labels}}} {go_float(math.floor(start))} {ts}")
    node_cpu_s = tally.kube_cpu_s + tally.system_s
    samples["node_cpu_usage_seconds_total"].append(
        f"node_cpu_usage_seconds_total {go_float(round(node_cpu_s, 9))} {ts}")
    samples["node_memory_working_set_bytes"].append(
        f"node_memory_working_set_bytes {go_float(math.floor(tally.kube_mem + _SYSTEM_MEM))} {ts}")
    samples["resource_scrape_error"].append("resource_scrape_error 0")
    lines: list[str] = []
    for family in sorted(_RESOURCE_FAMILIES):
        help_text, kind = _RESOURCE_FAMILIES[family]
        lines += [f"# HELP {family} [STABLE] {help_text}", f"# TYPE {family} {kind}", *samples[family]]
    return "\n".join(lines) + "\n"


def render_cadvisor(node: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], *, now: float | None = None,
                    departed: Mapping[str, float] | None = None, layouts: PodLayouts | None = None) -> str:
    """The node's ``/metrics/cadvisor`` body for the pods bound to it.

    ``departed``: CPU seconds by QoS class of pods that have left the node (`DepartedCpu.on_node`), which the
    parent cgroups' counters keep. ``layouts``: a cache of pod layouts kept between scrapes (the server's)."""
    now = now if now is not None else datetime.now(UTC).timestamp()
    ts = str(int(now * 1000))
    tally = _tally(node, pods, now, departed, layouts)
    qos_cpu_s, qos_mem, kube_mem, system_s, boot = (tally.qos_cpu_s, tally.qos_mem, tally.kube_mem, tally.system_s,
                                                    tally.boot)
    counters: list[tuple[_Series, float]] = []  # each cgroup with its CPU seconds now
    for layout, uptime in tally.running:
        counters.append((layout.series[0], layout.cpu_rate * uptime))
        counters.extend((child, child.cpu_rate * uptime) for child in layout.series[1:])
    kube_cpu_s = tally.kube_cpu_s
    empty = {"container": "", "image": "", "name": "", "namespace": "", "pod": ""}
    parents = [("/", kube_cpu_s + system_s, kube_mem + _SYSTEM_MEM, True), (_KUBEPODS, kube_cpu_s, kube_mem, False)]
    parents += [(_qos_cgroup(q), qos_cpu_s[q], qos_mem[q], False) for q in _QOS_SLICES]
    parents.append(("/system.slice", system_s, _SYSTEM_MEM, False))
    parents += [(f"/system.slice/{unit}", system_s / 2, _SYSTEM_MEM / 2, False)
                for unit in ("containerd.service", "kubelet.service")]
    counters += [(_series({**empty, "id": path}, 0.0, boot, mem, network=network), cpu_s)
                 for path, cpu_s, mem, network in parents]

    samples: dict[str, list[str]] = {name: [] for name in _FAMILIES}
    last_seen = go_float(math.floor(now))
    # one order serves every family: ids are unique, so the label texts sort alike with or without cpu/interface
    for series, used in sorted(counters, key=lambda item: item[0].own):
        own = series.own
        samples["container_cpu_usage_seconds_total"].append(
            f"container_cpu_usage_seconds_total{{{series.cpu_labels}}} {go_float(round(used, 9))} {ts}")
        samples["container_cpu_user_seconds_total"].append(
            f"container_cpu_user_seconds_total{{{own}}} {go_float(round(used * 0.7, 9))} {ts}")
        samples["container_cpu_system_seconds_total"].append(
            f"container_cpu_system_seconds_total{{{own}}} {go_float(round(used * 0.3, 9))} {ts}")
        samples["container_last_seen"].append(f"container_last_seen{{{own}}} {last_seen} {ts}")
        for family, value, stamped in series.constants:
            samples[family].append(f"{family}{{{own}}} {value} {ts}" if stamped else f"{family}{{{own}}} {value}")
        net = series.net_labels
        if net is not None:
            uptime = max(0.0, now - series.start)
            samples["container_network_receive_bytes_total"].append(
                f"container_network_receive_bytes_total{{{net}}} {go_float(math.floor(uptime * 2048))} {ts}")
            samples["container_network_transmit_bytes_total"].append(
                f"container_network_transmit_bytes_total{{{net}}} {go_float(math.floor(uptime * 1024))} {ts}")
    cpu_m, mem = _node_capacity(node)
    node_name = node["metadata"]["name"]
    machine = _label_text({"boot_id": _container_id(node_name, "boot"),
                           "machine_id": _container_id(node_name, "machine")[:32],
                           "system_uuid": _container_id(node_name, "uuid")[:32]})
    samples["machine_cpu_cores"].append(f"machine_cpu_cores{{{machine}}} {go_float(cpu_m)} {ts}")
    samples["machine_memory_bytes"].append(f"machine_memory_bytes{{{machine}}} {go_float(mem)} {ts}")
    samples["container_scrape_error"].append("container_scrape_error 0")
    lines: list[str] = []
    for family in sorted(_FAMILIES):
        help_text, kind = _FAMILIES[family]
        lines.append(f"# HELP {family} {help_text}")
        lines.append(f"# TYPE {family} {kind}")
        lines.extend(samples[family])
    return "\n".join(lines) + "\n"


_KUBELET_METRICS = {"metrics/cadvisor": render_cadvisor, "metrics/resource": render_resource}


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
    layouts = PodLayouts()
    tracker.listeners["pods"].append(departed.pod_event)
    tracker.listeners["pods"].append(layouts.pod_event)
    tracker.listeners["nodes"].append(departed.node_event)

    def proxy(cluster: Any, namespace: str | None, name: str, path: str, query: dict[str, str]
              ) -> tuple[int, bytes, str]:
        node = store.try_get("nodes", None, name, copy=False)
        if node is None:
            raise st.not_found("", "nodes", name)
        render = _KUBELET_METRICS.get(path.strip("/"))
        if render is None:
            return 404, b"404 page not found\n", "text/plain; charset=utf-8"
        with store.lock:  # pods and the departed ledger from one instant, or a leaving pod counts twice
            now = cluster.clock.now()
            pods, gone = tracker.pods_on(name), departed.on_node(name)
        text = render(node, pods, now=now, departed=gone, layouts=layouts)
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
