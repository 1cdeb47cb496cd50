"""cAdvisor Prometheus text -> per-container and per-pod CPU and memory usage (pure, no I/O).

Why a parser of our own: a kubelet's `/metrics/cadvisor` is megabytes of text of which we need two
families, `container_cpu_usage_seconds_total` and `container_memory_working_set_bytes`. A general
Prometheus parser builds every sample of every family; this one finds the lines it wants with
`bytes.find` (C speed) and only those lines meet a regex.

The maths has to be careful not to count anything twice. A kubelet reports one series per cgroup:

- the node root `/`, system slices and the QoS cgroups (`/kubepods`, `/kubepods/burstable`): no pod;
- the pod-level cgroup (`container=""`, `image=""`; kubelets before ~1.16 left even `pod_name` empty,
  so we recognise it by its path `.../pod<uid>` and learn its name from the containers inside it);
- the pause/sandbox container (`container="POD"`, or a `pause` image, or `container=""` with an image);
- application containers.

The pod cgroup already contains the pause and app containers, so a pod's total is the pod cgroup
when it is there and otherwise the sum of its app containers (pause excluded). The old `pod_name` /
`container_name` label names are accepted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from kubeops.errors import KubeopsError

__all__ = [
    "CPU_METRIC",
    "MEMORY_METRIC",
    "CadvisorParseError",
    "Cgroup",
    "ContainerUsage",
    "CpuBaseline",
    "NodeUsage",
    "PodUsage",
    "Sample",
    "SampleScanner",
    "Scrape",
    "compute_usage",
    "cpu_baseline",
    "parse_cadvisor",
    "parse_line",
]

CPU_METRIC = "container_cpu_usage_seconds_total"
MEMORY_METRIC = "container_memory_working_set_bytes"
_WANTED = (CPU_METRIC, MEMORY_METRIC)  # CPU first: a first scrape keeps only it

_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*[ \t]*=[ \t]*"(?:[^"\\\n]|\\.)*"'
_LABELS = rf"\{{[ \t]*(?:{_LABEL}[ \t]*(?:,[ \t]*{_LABEL}[ \t]*)*,?[ \t]*)?\}}"
# After the metric name: optional labels, value, optional integer timestamp (milliseconds).
_REST = re.compile(rf"({_LABELS})?[ \t]+([^ \t]+)(?:[ \t]+([+-]?\d+))?[ \t]*")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_TIMESTAMP = re.compile(r"[+-]?\d+")
_VALUE = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|[Nn]a[Nn]|[Ii]nf|\+?Inf)")

# Last path component of a pod-level cgroup, for the cgroupfs and systemd drivers:
#   /kubepods/burstable/pod<uid>   /kubepods/pod<uid>
#   /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice
_POD_CGROUP = re.compile(r"pod([0-9a-fA-F-]{32,36})|kubepods(?:-[a-z]+)?-pod([0-9a-fA-F_]{32,36})\.slice")
_VALUE_BYTES = re.compile(_VALUE.pattern.encode())
_TIMESTAMP_BYTES = re.compile(_TIMESTAMP.pattern.encode())
_PAUSE_IMAGE = re.compile(r"(?:^|/)pause(?:-[a-z0-9]+)?(?:[:@]|$)")

_CHUNK = 1 << 20


class CadvisorParseError(KubeopsError):
    """The cAdvisor text is malformed; names the line so the capture can be inspected."""

    def __init__(self, message: str, *, line: int, hint: str | None = None, what: str = "cAdvisor metrics") -> None:
        super().__init__(f"{what} line {line}: {message}", hint=hint)
        self.line = line
        self.reason = message


@dataclass(slots=True)
class Cgroup:
    """What one scrape says about one cgroup (keyed by the `id` label, the cgroup path)."""

    id: str
    namespace: str = ""
    pod: str = ""
    container: str = ""
    image: str = ""
    name: str = ""
    cpu_seconds: float | None = None  # cumulative; per-CPU series summed unless cpu="total" exists
    memory_working_set_bytes: float | None = None
    timestamp_ms: int | None = None
    _cpu_total: float | None = field(default=None, repr=False)
    _cpu_per_cpu: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> Literal["root", "pod", "pause", "container", "other"]:
        """Which of the cgroup kinds in the module docstring this is."""
        if self.id == "/":
            return "root"
        if self.container == "POD" or (self.image and _PAUSE_IMAGE.search(self.image)):
            return "pause"
        if self.container:
            return "container"
        if self.pod and self.image:  # containerd sandbox: no container name, but an image
            return "pause"
        if _pod_uid_of(self.id) is not None:
            return "pod"
        if self.pod and not self.image:
            return "pod"
        return "other"

    @property
    def pod_uid(self) -> str | None:
        """UID of the pod this cgroup is, or is inside, read from the cgroup path."""
        path = self.id.rstrip("/")
        return _pod_uid_of(path) or _pod_uid_of(path.rpartition("/")[0])


def _pod_uid_of(path: str) -> str | None:
    """The pod UID when the last component of cgroup `path` is a pod-level cgroup (either driver's spelling)."""
    last = path.rpartition("/")[2]
    if "pod" not in last:  # most cgroups; skips the regex
        return None
    match = _POD_CGROUP.fullmatch(last)
    return (match.group(1) or match.group(2)).replace("_", "-") if match else None


@dataclass(slots=True)
class Scrape:
    """One parse of a cAdvisor endpoint: the cgroups seen, in file order."""

    cgroups: dict[str, Cgroup] = field(default_factory=dict)
    lines: int = 0
    series: int = 0  # sample lines kept (of the two families we read)


@dataclass(frozen=True, slots=True)
class CpuBaseline:
    """The first of two scrapes reduced to what `compute_usage` reads from it: the CPU counter and sample time of
    every cgroup a rate can be asked of (the root, pods, containers) and which containers existed (a container
    under a new cgroup id restarted in between).

    Why: a `Scrape` keeps every cgroup with its labels (paths, images, names, system slices); the first scrapes of
    thousands of nodes wait a whole interval for their second ones, and were most of a stats run's memory.
    """

    counters: dict[str, tuple[float | None, int | None]]
    containers: frozenset[tuple[str, str, str]]


def cpu_baseline(scrape: Scrape) -> CpuBaseline:
    """`scrape` (a first scrape) as the little a rate needs; system cgroups, which no rate reads, are left out."""
    counters: dict[str, tuple[float | None, int | None]] = {}
    containers: set[tuple[str, str, str]] = set()
    for key, cg in scrape.cgroups.items():
        if key == "/" or cg.pod or _pod_uid_of(key) is not None:
            counters[key] = (cg.cpu_seconds, cg.timestamp_ms)
        if cg.container and cg.pod:
            containers.add((cg.namespace, cg.pod, cg.container))
    return CpuBaseline(counters, frozenset(containers))


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    """Measured usage of one application container."""

    namespace: str
    pod: str
    container: str
    cpu_cores: float | None  # None: not in the first sample, so no rate yet
    memory_bytes: float | None


@dataclass(frozen=True, slots=True)
class PodUsage:
    """Measured usage of one pod; `*_source` says whether the pod cgroup or a container sum was used."""

    namespace: str
    pod: str
    uid: str | None
    cpu_cores: float | None
    memory_bytes: float | None
    cpu_source: Literal["pod-cgroup", "containers", "none"]
    memory_source: Literal["pod-cgroup", "containers", "none"]
    containers: tuple[ContainerUsage, ...]


@dataclass(frozen=True, slots=True)
class NodeUsage:
    """Usage of a node: root cgroup totals (None if absent) and its pods sorted by namespace/name."""

    cpu_cores: float | None
    memory_bytes: float | None
    pods: tuple[PodUsage, ...]
    interval_s: float


# --------------------------------------------------------------------------------------------- parsing


def parse_cadvisor(source: bytes | str | Iterable[bytes | str], *, memory: bool = True) -> Scrape:
    """Parse cAdvisor text (whole, or streamed as chunks of any size) keeping only CPU and memory.

    `memory=False` keeps the CPU counters alone: what the first of two scrapes is for (`compute_usage` reads
    memory from the second), at half the parsing. Raises CadvisorParseError naming the line of the first
    malformed kept sample, or when the body is not Prometheus text at all (an HTML error page, JSON).
    """
    scrape = Scrape()
    scanner = SampleScanner(_WANTED if memory else _WANTED[:1])
    for family, labels, value, timestamp in scanner.samples(source):
        _record(scrape, family, labels, value, timestamp)
    scrape.lines = scanner.lines
    for cgroup in scrape.cgroups.values():
        if cgroup._cpu_total is not None:
            cgroup.cpu_seconds = cgroup._cpu_total
        elif cgroup._cpu_per_cpu:
            cgroup.cpu_seconds = math.fsum(cgroup._cpu_per_cpu.values())
    return scrape


Sample = tuple[str, dict[str, str], float, int | None]  # family, labels, value, timestamp (ms)


class SampleScanner:
    """The samples of a few families out of Prometheus text, streamed, without reading the other families.

    Why: kubelet endpoints are mostly families nobody here reads. Each wanted line is found with `bytes.find`
    (C speed), parsed with plain splits when it has the shape kubelets write (`_parse_canonical`) and with the
    full grammar otherwise, which also names what is wrong. `what` names the endpoint in errors; `lines` is the
    number of lines read once `samples` is exhausted.
    """

    def __init__(self, families: Iterable[str], *, what: str = "cAdvisor metrics") -> None:
        self._wanted = tuple((family, ("\n" + family).encode()) for family in families)
        self.what = what
        self.lines = 0

    def samples(self, source: bytes | str | Iterable[bytes | str]) -> Iterator[Sample]:
        """Every sample of the wanted families, family by family within each block of whole lines."""
        try:
            yield from self._samples(source)
        except CadvisorParseError as exc:
            if self.what == "cAdvisor metrics":
                raise
            raise CadvisorParseError(exc.reason, line=exc.line, hint=exc.hint, what=self.what) from None

    def _samples(self, source: bytes | str | Iterable[bytes | str]) -> Iterator[Sample]:
        chunks: Iterable[bytes | str] = [source] if isinstance(source, bytes | str) else source
        carry = b"\n"  # a virtual newline before line 1, so every wanted line is found as "\n<name>"
        lines_before = 0  # newlines of the real text before `carry`'s leading newline
        first = True
        for chunk in chunks:
            data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            if not data:
                continue
            if first:
                _check_looks_like_prometheus(data)
                first = False
            block = carry + data
            cut = block.rfind(b"\n")
            if cut <= 0:  # no complete line yet; keep accumulating
                carry = block
                continue
            yield from self._scan(block[:cut], lines_before)
            lines_before += block.count(b"\n", 1, cut + 1)
            carry = block[cut:]
            if len(carry) > 64 * _CHUNK:
                raise CadvisorParseError("line longer than 64 MiB", line=lines_before + 1)
        if len(carry) > 1:
            yield from self._scan(carry, lines_before)
            lines_before += 1
        self.lines = lines_before

    def _scan(self, block: bytes, lines_before: int) -> Iterator[Sample]:
        """The wanted lines of `block`, which starts with a newline and holds whole lines."""
        for family, needle in self._wanted:
            counted_to, line_no = 0, lines_before  # newlines counted incrementally: linear, not quadratic
            pos = block.find(needle)
            while pos != -1:
                end = block.find(b"\n", pos + 1)
                if end == -1:
                    end = len(block)
                raw = block[pos + 1 : end]
                after = raw[len(needle) - 1 : len(needle)]
                if after in (b"{", b" ", b"\t"):  # not a longer name sharing the prefix
                    line_no += block.count(b"\n", counted_to, pos + 1)
                    counted_to = pos + 1
                    fast = _parse_canonical(raw, len(needle) - 1) if after == b"{" else None
                    if fast is not None:
                        yield family, *fast
                    else:
                        try:
                            text = raw.decode()
                        except UnicodeDecodeError as exc:
                            raise CadvisorParseError(f"not valid UTF-8 ({exc.reason})", line=line_no) from None
                        yield parse_line(text, line=line_no)
                pos = block.find(needle, end)


def _check_looks_like_prometheus(data: bytes) -> None:
    start = data.lstrip()[:1]
    if start in (b"<", b"{", b"["):
        kind = "HTML" if start == b"<" else "JSON"
        raise CadvisorParseError(
            f"the body looks like {kind}, not Prometheus text",
            line=1,
            hint="the node proxy may have answered with an error page; check the URL and permissions",
        )


def parse_line(text: str, *, line: int = 0) -> tuple[str, dict[str, str], float, int | None]:
    """Parse one sample line `name{labels} value [timestamp]`; CadvisorParseError names `line` if bad."""
    if text.endswith("\r"):
        text = text[:-1]
    brace = text.find("{")
    space = min((i for i in (text.find(" "), text.find("\t")) if i != -1), default=-1)
    cut = brace if brace != -1 and (space == -1 or brace < space) else space
    if cut <= 0:
        raise CadvisorParseError(f"expected 'name{{labels}} value', got {_clip(text)!r}", line=line)
    name = text[:cut]
    match = _REST.fullmatch(text, cut)
    if match is None:
        raise CadvisorParseError(
            f"malformed sample for {name}: expected '{{label=\"value\",...}} value [timestamp]', "
            f"got {_clip(text[cut:])!r}",
            line=line,
        )
    label_text, value_text, ts_text = match.groups()
    labels: dict[str, str] = {}
    if label_text:
        for key, raw in _PAIR.findall(label_text):
            labels[key] = _ESCAPE.sub(_unescape, raw) if "\\" in raw else raw
    if not _VALUE.fullmatch(value_text):
        raise CadvisorParseError(f"value {_clip(value_text)!r} of {name} is not a number", line=line)
    return name, labels, float(value_text), int(ts_text) if ts_text else None


def _parse_canonical(raw: bytes, cut: int) -> tuple[dict[str, str], float, int | None] | None:
    """The shape a kubelet writes, `name{k="v",k="v"} value timestamp` with no escapes, parsed with plain splits.

    Why: this is where `stats` spends its CPU on a big cluster (two hundred such lines per node, twice per node).
    `cut` is the index of the opening brace. Anything else (escapes, spaces, an empty or odd label block, a
    malformed value, bytes that are not UTF-8) returns None and goes through the full grammar, which also names
    what is wrong. The split is exact: without backslashes no label value can hold a quote, so the first `"} `
    closes the block and `",` separates pairs.
    """
    close = raw.find(b"} ", cut)
    if close == -1 or raw[close - 1 : close] != b'"' or b"\\" in raw[cut:close]:
        return None
    try:
        label_text = raw[cut + 1 : close - 1].decode()
    except UnicodeDecodeError:
        return None
    labels: dict[str, str] = {}
    for pair in label_text.split('",'):
        key, sep, value = pair.partition('="')
        if not sep or '"' in value or not (key.isidentifier() and key.isascii()):
            return None
        labels[key] = value
    rest = raw[close + 2 :].split(b" ")
    if not 1 <= len(rest) <= 2 or not _VALUE_BYTES.fullmatch(rest[0]):
        return None
    timestamp = None
    if len(rest) == 2:
        if not _TIMESTAMP_BYTES.fullmatch(rest[1]):
            return None
        timestamp = int(rest[1])
    return labels, float(rest[0]), timestamp


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return _ESCAPES.get(char, "\\" + char)


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _record(scrape: Scrape, name: str, labels: dict[str, str], value: float, ts: int | None) -> None:
    key = labels.get("id") or "|".join(
        (labels.get("namespace", ""), _pod(labels), _container(labels), labels.get("name", ""))
    )
    cgroup = scrape.cgroups.get(key)
    if cgroup is None:
        cgroup = Cgroup(
            id=labels.get("id", key),
            namespace=labels.get("namespace", ""),
            pod=_pod(labels),
            container=_container(labels),
            image=labels.get("image", ""),
            name=labels.get("name", ""),
        )
        scrape.cgroups[key] = cgroup
    scrape.series += 1
    if ts is not None:
        cgroup.timestamp_ms = ts if cgroup.timestamp_ms is None else max(cgroup.timestamp_ms, ts)
    if name == MEMORY_METRIC:
        cgroup.memory_working_set_bytes = value
        return
    cpu = labels.get("cpu", "total")
    if cpu == "total":
        cgroup._cpu_total = value
    else:
        cgroup._cpu_per_cpu[cpu] = value


def _pod(labels: dict[str, str]) -> str:
    return labels.get("pod") or labels.get("pod_name", "")


def _container(labels: dict[str, str]) -> str:
    return labels.get("container") or labels.get("container_name", "")


# --------------------------------------------------------------------------------------------- usage


def compute_usage(before: Scrape | CpuBaseline, after: Scrape, *, interval_s: float) -> NodeUsage:
    """Usage between two scrapes taken `interval_s` apart (sample timestamps win when both have them); `before`
    may be kept as its `cpu_baseline`, which is all this reads of it.

    CPU is the counter's rate; a counter that went down (container restarted under the same key) counts
    from zero, as Prometheus' `rate()` does, and so does a container found under a new cgroup id (restarted
    between the scrapes). A series absent from `before` has no rate (None). Memory is the working set of `after`.
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be positive, got {interval_s!r}")
    base = before if isinstance(before, CpuBaseline) else cpu_baseline(before)

    def rate(cg: Cgroup) -> float | None:
        old = base.counters.get(cg.id)
        if old is None:
            if not (cg.container and cg.pod and (cg.namespace, cg.pod, cg.container) in base.containers):
                return None
            return None if cg.cpu_seconds is None else _finite(cg.cpu_seconds / interval_s)
        old_cpu, old_ts = old
        if cg.cpu_seconds is None or old_cpu is None:
            return None
        elapsed = interval_s
        if cg.timestamp_ms is not None and old_ts is not None and cg.timestamp_ms > old_ts:
            elapsed = (cg.timestamp_ms - old_ts) / 1000.0
        delta = cg.cpu_seconds - old_cpu
        if delta < 0:
            delta = cg.cpu_seconds
        return _finite(delta / elapsed)

    uid_of = {key: cg.pod_uid for key, cg in after.cgroups.items()}  # a regex each: once per cgroup, not thrice
    uid_to_pod: dict[str, tuple[str, str]] = {}
    for key, cg in after.cgroups.items():
        uid = uid_of[key]
        if uid and cg.pod and cg.namespace:
            uid_to_pod.setdefault(uid, (cg.namespace, cg.pod))

    pod_cgroups: dict[tuple[str, str], Cgroup] = {}
    containers: dict[tuple[str, str], list[ContainerUsage]] = {}
    uids: dict[tuple[str, str], str] = {}
    node_cpu: float | None = None
    node_memory: float | None = None
    for cgroup_key, cg in after.cgroups.items():
        kind = cg.kind
        uid = uid_of[cgroup_key]
        if kind == "root":
            node_cpu, node_memory = rate(cg), _finite(cg.memory_working_set_bytes)
        elif kind == "pod":
            key = (cg.namespace, cg.pod) if cg.pod else uid_to_pod.get(uid or "")
            if key is None:  # a pod cgroup nothing tells us the name of (its containers are gone)
                continue
            pod_cgroups[key] = cg
            if uid:
                uids[key] = uid
        elif kind == "container" and cg.pod:
            key = (cg.namespace, cg.pod)
            containers.setdefault(key, []).append(
                ContainerUsage(
                    cg.namespace, cg.pod, cg.container, rate(cg), _finite(cg.memory_working_set_bytes)
                )
            )
            if uid:
                uids.setdefault(key, uid)
        elif kind == "pause" and cg.pod:
            key = (cg.namespace, cg.pod)
            containers.setdefault(key, [])
            if uid:
                uids.setdefault(key, uid)

    pods: list[PodUsage] = []
    for key in sorted(set(pod_cgroups) | set(containers)):
        members = tuple(sorted(_merge_restarts(containers.get(key, [])), key=lambda c: c.container))
        pod_cg = pod_cgroups.get(key)
        cpu, cpu_source = _pick(rate(pod_cg) if pod_cg else None, [c.cpu_cores for c in members])
        memory, memory_source = _pick(
            _finite(pod_cg.memory_working_set_bytes) if pod_cg else None, [c.memory_bytes for c in members]
        )
        pods.append(
            PodUsage(key[0], key[1], uids.get(key), cpu, memory, cpu_source, memory_source, members)
        )
    return NodeUsage(cpu_cores=node_cpu, memory_bytes=node_memory, pods=tuple(pods), interval_s=interval_s)


def _merge_restarts(items: list[ContainerUsage]) -> list[ContainerUsage]:
    """One entry per container name even if a dead and a live cgroup of it are both listed."""
    merged: dict[str, ContainerUsage] = {}
    for item in items:
        seen = merged.get(item.container)
        if seen is None:
            merged[item.container] = item
            continue
        merged[item.container] = ContainerUsage(
            item.namespace,
            item.pod,
            item.container,
            _sum([seen.cpu_cores, item.cpu_cores]),
            _sum([seen.memory_bytes, item.memory_bytes]),
        )
    return list(merged.values())


def _pick(
    pod_value: float | None, container_values: list[float | None]
) -> tuple[float | None, Literal["pod-cgroup", "containers", "none"]]:
    if pod_value is not None:
        return pod_value, "pod-cgroup"
    total = _sum(container_values)
    return (total, "containers") if total is not None else (None, "none")


def _sum(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) if present else None


def _finite(value: float | None) -> float | None:
    """NaN/Inf samples (a cgroup cAdvisor could not read) count as missing, not as usage."""
    return value if value is not None and math.isfinite(value) else None
