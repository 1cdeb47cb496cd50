"""Measured node and pod usage: cAdvisor through the API server's node proxy, metrics-server as fallback.

Why through the API server: nodes' kubelet ports are rarely reachable from where operators run kubeops, but
`/api/v1/nodes/{node}/proxy/metrics/cadvisor` is, with the same credentials as everything else. The body is
streamed into the parser (a busy node sends tens of MB, of which we keep two families). `kube.stats_source:
resource` asks `/proxy/metrics/resource` instead: the kubelet's own short usage endpoint (what metrics-server
reads), the same measurements in a body about 25x smaller, for clusters of thousands of nodes. When the proxy is
forbidden (403), absent (404) or the kubelet is unreachable (503), `metrics.k8s.io/v1beta1` (metrics-server)
is asked instead, and the result says which source answered and why.

Node, pod and eviction calls live in `kubeops.clients.nodes` / `kubeops.clients.pods`; this module only reads usage.
"""

from __future__ import annotations

import contextvars
import heapq
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from kubeops.clients.kube import open_raw
from kubeops.clients.pods import list_pods
from kubeops.errors import ClusterError, NotFound, Unavailable
from kubeops.metrics.cadvisor import (
    ContainerUsage,
    NodeUsage,
    PodUsage,
    Scrape,
    compute_usage,
    cpu_baseline,
    parse_cadvisor,
)
from kubeops.metrics.resource import ResourceScrape, parse_resource, resource_usage
from kubeops.quantity import parse_bytes, parse_cpu

if TYPE_CHECKING:
    from kubeops.clients.kube import KubeClient

Source = Literal["cadvisor", "resource", "metrics.k8s.io"]
ScrapeSource = Literal["cadvisor", "resource"]  # what the kubelet is asked for: /metrics/cadvisor or /metrics/resource
SCRAPE_SOURCES: tuple[ScrapeSource, ...] = ("cadvisor", "resource")
_ENDPOINT = {"cadvisor": ("metrics/cadvisor", "cAdvisor"), "resource": ("metrics/resource", "kubelet resource metrics")}
FALLBACK_STATUS = frozenset({403, 404, 503})
_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class NodeSample:
    """Usage of one node and where it came from (`fallback_reason` says why cAdvisor was not used)."""

    node: str
    source: Source
    usage: NodeUsage
    fallback_reason: str | None = None


def scrape_cadvisor(kube: KubeClient, node: str, *, timeout_s: float = 30.0, memory: bool = True) -> Scrape:
    """One scrape of the node's cAdvisor endpoint, parsed while it streams in (`memory=False`: CPU counters only)."""
    return _scrape(kube, node, "cadvisor", parse_cadvisor, timeout_s=timeout_s, memory=memory)


def scrape_resource(kube: KubeClient, node: str, *, timeout_s: float = 30.0, memory: bool = True) -> ResourceScrape:
    """One scrape of the node's `/metrics/resource` (the kubelet's short usage endpoint), parsed as it streams."""
    return _scrape(kube, node, "resource", parse_resource, timeout_s=timeout_s, memory=memory)


def _scrape(kube: KubeClient, node: str, source: ScrapeSource, parse: Callable[..., Any], *, timeout_s: float,
            memory: bool) -> Any:
    path, name = _ENDPOINT[source]
    what = f"read {name} of node {node}"
    raw = kube.call(_open_kubelet, kube.api_client, node, path, timeout_s, what=what, retry=False)
    try:
        return parse(_chunks(raw, what), memory=memory)
    finally:
        raw.release_conn()


def sample_nodes(
    kube: KubeClient,
    nodes: list[str],
    *,
    interval_s: float,
    concurrency: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    timeout_s: float = 30.0,
    source: ScrapeSource | None = None,
) -> dict[str, NodeSample]:
    """Usage of every node in `nodes`: two scrapes each, `interval_s` apart, all nodes in flight together.

    Why this shape: one node costs one interval, so N nodes one after another cost N intervals. Here
    `concurrency` worker threads (default `kube.scrape_concurrency`) take every node's first scrape; each node's
    second scrape is queued the moment its own interval is up and goes before any first scrape still waiting, so
    the whole run costs about one interval plus the time to scrape every node twice at that concurrency. The
    rate divides by the time really elapsed between the two requests of that node (or the samples' own
    timestamps), never by the nominal interval, so a late second scrape is still right. Workers pull from one
    schedule (no future per scrape: at thousands of nodes the bookkeeping of futures cost as much as a scrape).
    Memory stays bounded: each body is parsed as it streams (the first scrape keeps the CPU counters alone, the
    second CPU and memory), a node's first scrape is dropped as soon as its usage is computed, and at most
    `concurrency` bodies are being read.

    `source` picks the kubelet endpoint (default `kube.stats_source`): ``cadvisor`` (``/metrics/cadvisor``) or
    ``resource`` (``/metrics/resource``: the same numbers in a body about 25x smaller, what metrics-server reads;
    see `kubeops.metrics.resource`). A node whose proxy answers 403/404/503 is read from metrics-server instead; any
    other error stops the workers (scrapes in flight finish) and is raised here.
    """
    source = source or getattr(kube, "stats_source", "cadvisor")
    if source not in SCRAPE_SOURCES:
        raise ValueError(f"source must be one of {', '.join(SCRAPE_SOURCES)}, got {source!r}")
    scrape = scrape_resource if source == "resource" else scrape_cadvisor
    label = _ENDPOINT[source][1]
    if not interval_s > 0:
        raise ValueError(f"interval_s must be positive, got {interval_s!r}")
    workers = max(1, min(concurrency or getattr(kube, "scrape_concurrency", 16), max(1, len(nodes))))
    plan = _SamplingPlan(list(dict.fromkeys(nodes)), interval_s, clock, source)  # a node named twice is measured once

    def work() -> None:
        while (job := plan.next_job()) is not None:
            node, second = job
            try:
                started = clock()
                try:
                    body = scrape(kube, node, timeout_s=timeout_s, memory=second)
                except ClusterError as exc:
                    if exc.status not in FALLBACK_STATUS:
                        raise
                    plan.fell_back(node, f"{label} proxy answered {exc.status}: {exc.message}")
                    continue
                if second:
                    plan.second_done(node, started, body)
                else:
                    plan.first_done(node, started, body)
            except BaseException as exc:  # handed to the caller's thread and raised there
                plan.fail(exc)
                return

    threads = [  # each thread gets its own copy of the caller's context (log fields such as run_id and step)
        threading.Thread(target=contextvars.copy_context().run, args=(work,), name=f"cadvisor-{i}", daemon=True)
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException as exc:  # Ctrl-C: stop starting scrapes; the daemon threads end with the process
        plan.fail(exc)
        raise
    if plan.error is not None:
        raise plan.error
    results, fallback = plan.results, plan.fallback
    for node, reason in fallback.items():
        try:
            usage = metrics_server_usage(kube, node)
        except ClusterError as exc:
            # Both sources failed: say why the first one did too, or a missing nodes/proxy grant hides behind
            # the fallback's own error (e.g. "metrics-server unavailable" when the fix is RBAC).
            raise type(exc)(f"{exc.message} (tried after the {reason})", status=exc.status, reason=exc.reason,
                            hint=exc.hint) from None
        results[node] = NodeSample(node=node, source="metrics.k8s.io", usage=usage, fallback_reason=reason)
    return {node: results[node] for node in nodes}


def metrics_server_usage(kube: KubeClient, node: str) -> NodeUsage:
    """Node and pod usage from metrics-server's NodeMetrics and PodMetrics (already a rate over its window)."""
    what = f"read metrics.k8s.io usage of node {node}"
    try:
        node_metrics = kube.request("GET", f"/apis/metrics.k8s.io/v1beta1/nodes/{node}", what=what)
    except NotFound as exc:
        raise NotFound(
            f"{exc.message}; neither the cAdvisor proxy nor metrics-server has usage for node {node}",
            status=404,
            hint="is the node name right, and is metrics-server installed?",
        ) from None
    pods_on_node = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in list_pods(kube, node=node)[0]}
    listing = kube.request("GET", "/apis/metrics.k8s.io/v1beta1/pods", what=what)
    pods: list[PodUsage] = []
    for item in listing.get("items") or []:
        meta = item.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if key not in pods_on_node:
            continue
        containers = tuple(
            sorted(
                (
                    ContainerUsage(
                        key[0],
                        key[1],
                        c.get("name", ""),
                        parse_cpu((c.get("usage") or {}).get("cpu", "0")),
                        float(parse_bytes((c.get("usage") or {}).get("memory", "0"))),
                    )
                    for c in item.get("containers") or []
                ),
                key=lambda c: c.container,
            )
        )
        pods.append(
            PodUsage(
                namespace=key[0],
                pod=key[1],
                uid=(pods_on_node[key].get("metadata") or {}).get("uid"),
                cpu_cores=sum(c.cpu_cores or 0.0 for c in containers),
                memory_bytes=sum(c.memory_bytes or 0.0 for c in containers),
                cpu_source="containers",
                memory_source="containers",
                containers=containers,
            )
        )
    usage = node_metrics.get("usage") or {}
    return NodeUsage(
        cpu_cores=parse_cpu(usage.get("cpu", "0")),
        memory_bytes=float(parse_bytes(usage.get("memory", "0"))),
        pods=tuple(sorted(pods, key=lambda p: (p.namespace, p.pod))),
        interval_s=_window_s(node_metrics.get("window")),
    )


# ------------------------------------------------------------------------------------------------- internals


class _SamplingPlan:
    """What the scrape workers share: first scrapes to start, second scrapes by due time, results, the first error.

    One condition guards it all; a worker holds it only to pick a job or file a result (never while scraping or
    parsing), and `compute_usage` runs outside it.
    """

    def __init__(self, nodes: list[str], interval_s: float, clock: Callable[[], float],
                 source: ScrapeSource = "cadvisor") -> None:
        self._cond = threading.Condition()
        self._source = source
        self._usage: Callable[..., NodeUsage] = resource_usage if source == "resource" else compute_usage
        self._clock = clock
        self._interval_s = interval_s
        self._firsts = deque(nodes)
        self._due: list[tuple[float, str]] = []  # heap of (time the second scrape is due, node)
        self._first: dict[str, tuple[float, Any]] = {}  # node -> (when, CpuBaseline or ResourceScrape)
        self._open = len(nodes)  # nodes without a result or a fallback yet
        self.results: dict[str, NodeSample] = {}
        self.fallback: dict[str, str] = {}
        self.error: BaseException | None = None

    def next_job(self) -> tuple[str, bool] | None:
        """(node, is_second_scrape), waiting until one is due; None when all is done or a worker failed."""
        with self._cond:
            while self.error is None and self._open > 0:
                now = self._clock()
                if self._due and self._due[0][0] <= now:
                    return heapq.heappop(self._due)[1], True
                if self._firsts:
                    return self._firsts.popleft(), False
                # nothing to start: wait for the next due second scrape, or for a worker to queue one
                self._cond.wait(self._due[0][0] - now if self._due else None)
            return None

    def first_done(self, node: str, started: float, scrape: Any) -> None:
        if isinstance(scrape, Scrape):  # kept a whole interval: only what the rate needs (ResourceScrapes are small)
            scrape = cpu_baseline(scrape)
        with self._cond:
            self._first[node] = (started, scrape)
            heapq.heappush(self._due, (started + self._interval_s, node))
            self._cond.notify()

    def second_done(self, node: str, started: float, scrape: Any) -> None:
        with self._cond:
            began, before = self._first.pop(node)
        usage = self._usage(before, scrape, interval_s=max(started - began, 1e-6))
        with self._cond:
            self.results[node] = NodeSample(node=node, source=self._source, usage=usage)
            self._close_one()

    def fell_back(self, node: str, reason: str) -> None:
        with self._cond:
            self.fallback[node] = reason
            self._first.pop(node, None)
            self._close_one()

    def fail(self, error: BaseException) -> None:
        with self._cond:
            if self.error is None:
                self.error = error
            self._cond.notify_all()

    def _close_one(self) -> None:
        self._open -= 1
        if self._open == 0:
            self._cond.notify_all()




def _open_kubelet(api_client: Any, node: str, path: str, timeout_s: float) -> Any:
    """Start the GET of a kubelet endpoint through the node proxy and return the undecoded urllib3 response;
    non-2xx raises ApiException (mapped by call)."""
    from urllib.parse import quote

    return open_raw(
        api_client,
        "GET",
        f"/api/v1/nodes/{quote(node, safe='')}/proxy/{path}",
        headers={"Accept": "text/plain;version=0.0.4, */*;q=0.1"},
        timeout=timeout_s,
    )


def _chunks(raw: Any, what: str) -> Iterator[bytes]:
    from urllib3.exceptions import HTTPError as Urllib3Error

    try:
        yield from raw.stream(_CHUNK_BYTES, decode_content=True)
    except (Urllib3Error, OSError) as exc:
        raise Unavailable(f"{what}: connection dropped while reading ({type(exc).__name__})") from None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def _window_s(window: str | None) -> float:
    """metrics-server's `window` ("20.027s", "1m30s") in seconds; 0 when absent."""
    if not window:
        return 0.0
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in _DURATION.findall(window))
