"""`Cluster`: the store plus everything that makes it behave like a cluster, and the plug-in points for it.

The core (this helper) owns the store, the HTTP server and scenario loading; cluster behaviour (controllers,
scheduler, kubelet simulation, PDB status, eviction, AWS link, metrics, namespace life) plugs in here.

Plug-in API
-----------
Plug-in modules: every name in `PLUGIN_MODULES` (``kubeops.sandbox.<name>``) that exists is imported by
`build_cluster` and its ``install(cluster: Cluster) -> None`` is called once, in that order, after the built-in
defaulting/validation and before the scenario's objects are loaded. A missing module is skipped.

On the `Cluster` a plug-in may use:

- ``cluster.store`` (`kubeops.sandbox.store.Store`): create/get/list/update/patch/delete, ``modify`` for internal
  read-modify-write, ``load`` for bulk insert, ``subscribe(fn(event))``, ``defaulters``/``validators``,
  ``deletion_handlers["pods"] = fn(pod)`` + ``finish_deletion(...)`` (graceful pod deletion; see store.py).
- ``cluster.clock.now() -> float``: sandbox time in epoch seconds (wall time plus whatever tests advanced it by).
  Use it, never time.time(), so ``POST /sandbox/v1/clock {"advance_s": N}`` fast-forwards every delay.
- ``cluster.add_reconciler(r)``: ``r.reconcile(cluster, now: float) -> None`` runs every ``tick_s`` (default
  0.05 s, scenario ``settings.tick_ms``) on one background thread, in registration order, and synchronously on
  ``cluster.tick()`` (tests, ``POST /sandbox/v1/tick``). An exception is logged and the loop goes on.
- ``cluster.subresources[("pods", "eviction")] = fn(cluster, namespace, name, body: dict, dry_run: bool)
  -> tuple[int, dict]``: POST handlers for subresources (the dict is the response body; return a Status via
  `kubeops.sandbox.status` helpers for errors, or raise `status.ApiError`). Keys are (store resource key,
  subresource). ``status`` and ``scale`` are served by the core for every resource that lists them in discovery.
- ``cluster.proxies[("nodes", "proxy")] = fn(cluster, namespace, name, path: str, query: dict[str, str])
  -> tuple[int, bytes, str]``: GET handler for ``/api/v1/nodes/{name}/proxy/{path}``; returns (code, body,
  content type). ``path`` is what follows ``proxy/`` (e.g. ``metrics/cadvisor``).
- ``cluster.register_api_group(group, version, resources, handler)``: serve a read-only group version (e.g.
  metrics.k8s.io/v1beta1); ``resources`` are `discovery.ResourceInfo`s (verbs get/list), ``handler(cluster,
  resource_info, namespace: str | None, name: str | None, query: dict[str, str]) -> dict`` returns the object (name
  given) or the list; raise `status.ApiError` for 404 etc.
- ``cluster.on_prepare.append(fn(cluster))``: run once, synchronously, by ``cluster.prepare()`` after the
  scenario is loaded and before the sandbox reports healthy (the AWS link adopts declared nodes there).
- ``cluster.scenario`` (`kubeops.sandbox.scenario.Scenario` or None), ``cluster.settings`` (its ``settings:``
  block as a dict, e.g. ``join_delay_s``), ``cluster.aws_url`` (moto endpoint or None), ``cluster.region``.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from kubeops.sandbox import defaults
from kubeops.sandbox.discovery import Catalog, ResourceInfo
from kubeops.sandbox.selectors import selector_text
from kubeops.sandbox.store import Obj, Store

log = logging.getLogger("kubeops.sandbox")

PLUGIN_MODULES: tuple[str, ...] = (
    "controllers", "binder", "kubelet", "nodelifecycle", "pdb", "eviction", "aws_link", "metrics", "cadvisor",
    "rbac", "events", "crds", "nodefailure", "namespaces", "cronjobs",
)


class Reconciler(Protocol):
    def reconcile(self, cluster: Cluster, now: float) -> None: ...


SubresourceFn = Callable[["Cluster", str | None, str, dict[str, Any], bool], tuple[int, dict[str, Any]]]
ProxyFn = Callable[["Cluster", str | None, str, str, dict[str, str]], tuple[int, bytes, str]]
GroupReadFn = Callable[["Cluster", ResourceInfo, str | None, str | None, dict[str, str]], dict[str, Any]]


class Clock:
    """Wall time plus an offset that tests can advance; thread-safe enough (float assignment is atomic)."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def now(self) -> float:
        return time.time() + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds


class Cluster:
    """See the module docstring."""

    def __init__(self, *, settings: dict[str, Any] | None = None, aws_url: str | None = None,
                 region: str = "us-east-1") -> None:
        self.catalog = Catalog()
        self.clock = Clock()
        self.store = Store(self.catalog, clock=self.clock.now,
                           history=int((settings or {}).get("watch_history", 200_000)))
        self.settings: dict[str, Any] = dict(settings or {})
        # The loaded `kubeops.sandbox.scenario.Scenario`; typed loosely because scenarios sit above the cluster.
        self.scenario: Any = None
        self.aws_url = aws_url
        self.region = region
        self.reconcilers: list[Reconciler] = []
        self.subresources: dict[tuple[str, str], SubresourceFn] = {}
        self.proxies: dict[tuple[str, str], ProxyFn] = {}
        self.group_handlers: dict[str, GroupReadFn] = {}  # by ResourceInfo.key
        self.on_prepare: list[Callable[[Cluster], None]] = []
        # /sandbox/v1/<name>[/rest]: fn(cluster, method, rest, body) -> (code, body), e.g. "node-faults"
        self.sandbox_endpoints: dict[str, Callable[[Cluster, str, str, Any], tuple[int, Any]]] = {}
        self.tick_s = float(self.settings.get("tick_ms", 50)) / 1000.0
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        defaults.install(self.store)

    def add_reconciler(self, reconciler: Reconciler) -> None:
        self.reconcilers.append(reconciler)

    def register_api_group(self, group: str, version: str, resources: list[ResourceInfo],
                           handler: GroupReadFn) -> None:
        self.catalog.add_group(group, version, resources)
        for info in resources:
            self.group_handlers[info.key] = handler

    def tick(self) -> None:
        """Run every reconciler once, now (serialised with the background loop)."""
        with self._tick_lock:
            now = self.clock.now()
            for r in list(self.reconcilers):
                try:
                    r.reconcile(self, now)
                except Exception:
                    log.exception("reconciler %r failed", r)

    def prepare(self) -> None:
        """Run the plug-ins' ``on_prepare`` hooks once (after loading, before serving)."""
        with self._tick_lock:
            for fn in self.on_prepare:
                fn(self)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sandbox-reconcile", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.tick()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # ---- generic scale subresource (served by the core) ---------------------------------------------------

    def scale_of(self, resource: str, obj: Obj) -> dict[str, Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": int(spec.get("replicas", 0))},
            "status": {"replicas": int(status.get("replicas", 0)), "selector": selector_text(spec.get("selector"))},
        }


def build_cluster(*, scenario: Any = None, aws_url: str | None = None,
                  plugins: tuple[str, ...] | None = None, region: str | None = None) -> Cluster:
    """A Cluster with the built-in semantics and every available plug-in installed.

    ``cluster.scenario``/``settings`` are set before plug-ins install; the scenario's objects are loaded after
    (`kubeops.sandbox.scenario.apply`), so plug-ins' defaulters and subscribers see them arrive."""
    settings = dict(scenario.settings) if scenario is not None else {}
    cluster = Cluster(settings=settings, aws_url=aws_url,
                      region=region or str(settings.get("region", "us-east-1")))
    cluster.scenario = scenario
    for name in PLUGIN_MODULES if plugins is None else plugins:
        modname = f"kubeops.sandbox.{name}"
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                continue
            raise
        install = getattr(module, "install", None)
        if install is not None:
            install(cluster)
    return cluster
