"""Measured node and pod usage: cAdvisor through the API server's node proxy, metrics-server as fallback.

Why through the API server: nodes' kubelet ports are rarely reachable from where operators run kubeops, but
`/api/v1/nodes/{node}/proxy/metrics/cadvisor` is, with the same credentials as everything else. The body is
streamed into the parser (a busy node sends tens of MB, of which we keep two families). When the proxy is
forbidden (403), absent (404) or the kubelet is unreachable (503), `metrics.k8s.io/v1beta1` (metrics-server)
is asked instead, and the result says which source answered and why.

Node, pod and eviction calls live in `kubeops.clients.nodes` / `kubeops.clients.pods`; this module only reads usage.
"""

from __future__ import annotations

import heapq
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from kubeops.clients.kube import open_raw
from kubeops.clients.pods import list_pods
from kubeops.errors import ClusterError, NotFound, Unavailable
from kubeops.metrics.cadvisor import ContainerUsage, NodeUsage, PodUsage, Scrape, compute_usage, parse_cadvisor
from kubeops.quantity import parse_bytes, parse_cpu

if TYPE_CHECKING:
    from kubeops.clients.kube import KubeClient

Source = Literal["cadvisor", "metrics.k8s.io"]
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
    what = f"read cAdvisor metrics of node {node}"
    raw = kube.call(_open_cadvisor, kube.api_client, node, timeout_s, what=what, retry=False)
    try:
        return parse_cadvisor(_chunks(raw, what), memory=memory)
    finally:
        raw.release_conn()


def sample_nodes(
    kube: KubeClient,
    nodes: list[str],
    *,
    interval_s: float,
    concurrency: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    timeout_s: float = 30.0,
) -> dict[str, NodeSample]:
    """Usage of every node in `nodes`: two scrapes each, `interval_s` apart, all nodes in flight together.

    Why this shape: one node costs one interval, so N nodes one after another cost N intervals. Here a pool of
    `concurrency` workers (default `kube.scrape_concurrency`) takes every node's first scrape; each node's second
    scrape is queued the moment its own interval is up, so the whole run costs about one interval plus the time
    to scrape every node twice at that concurrency. The rate divides by the time really elapsed between the two
    requests of that node (or the samples' own timestamps), never by the nominal interval, so a queued second
    scrape is still right. Memory stays bounded: each body is parsed as it streams (the first scrape keeps the
    CPU counters alone, the second CPU and memory), a node's first scrape is dropped as soon as its usage is
    computed, and at most `concurrency` bodies are being read.

    A node whose proxy answers 403/404/503 is read from metrics-server instead; other errors propagate (the
    remaining scrapes are cancelled).
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be positive, got {interval_s!r}")
    workers = max(1, min(concurrency or getattr(kube, "scrape_concurrency", 16), max(1, len(nodes))))
    first: dict[str, tuple[float, Scrape]] = {}
    results: dict[str, NodeSample] = {}
    fallback: dict[str, str] = {}

    def timed_scrape(node: str, memory: bool) -> tuple[float, Scrape]:
        started = clock()
        return started, scrape_cadvisor(kube, node, timeout_s=timeout_s, memory=memory)

    due: list[tuple[float, str]] = []  # heap of (time the second scrape is due, node)
    todo = deque(nodes)  # first scrapes not yet started
    pending: dict[Future[tuple[float, Scrape]], tuple[str, int]] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cadvisor") as pool:
        try:
            while todo or pending or due:
                # no more in flight than workers (waiting on thousands of futures costs more than scraping);
                # a second scrape that is due goes before the next first one, so intervals stay close to asked
                while len(pending) < workers:
                    if due and due[0][0] <= clock():
                        node = heapq.heappop(due)[1]
                        pending[pool.submit(timed_scrape, node, True)] = (node, 2)
                    elif todo:
                        node = todo.popleft()
                        # a first scrape only gives CPU counters a start: memory comes from the second
                        pending[pool.submit(timed_scrape, node, False)] = (node, 1)
                    else:
                        break
                if not pending:
                    sleep(max(0.0, due[0][0] - clock()))
                    continue
                # with every worker busy only a finished scrape can change anything: waking for a due second
                # scrape then would spin (timeout 0) and starve the workers of the GIL
                wait_s = max(0.0, due[0][0] - clock()) if due and len(pending) < workers else None
                done, _ = wait(pending, timeout=wait_s, return_when=FIRST_COMPLETED)
                for future in done:
                    node, which = pending.pop(future)
                    try:
                        started, scrape = future.result()
                    except ClusterError as exc:
                        if exc.status not in FALLBACK_STATUS:
                            raise
                        fallback[node] = f"cAdvisor proxy answered {exc.status}: {exc.message}"
                        first.pop(node, None)
                        continue
                    if which == 1:
                        first[node] = (started, scrape)
                        heapq.heappush(due, (started + interval_s, node))
                        continue
                    began, before = first.pop(node)
                    elapsed = max(started - began, 1e-6)
                    usage = compute_usage(before, scrape, interval_s=elapsed)
                    results[node] = NodeSample(node=node, source="cadvisor", usage=usage)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
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


def _open_cadvisor(api_client: Any, node: str, timeout_s: float) -> Any:
    """Start the GET and return the undecoded urllib3 response; non-2xx raises ApiException (mapped by call)."""
    from urllib.parse import quote

    return open_raw(
        api_client,
        "GET",
        f"/api/v1/nodes/{quote(node, safe='')}/proxy/metrics/cadvisor",
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
