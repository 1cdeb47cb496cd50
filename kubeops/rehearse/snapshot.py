"""Snapshots: take one from a cluster (reads only), write it, and read any supported input into one document.

Inputs a rehearsal accepts (`load_input`):
- a snapshot file written by `take` (``kubeops.io/snapshot/v1``; ``.gz`` allowed);
- a folder written by ``kubectl cluster-info dump --output-directory=DIR [--all-namespaces]``: ``nodes.json``
  at the top, ``<namespace>/<resource>.json`` below (each a ``<Kind>List``), pod logs beside them (ignored);
- one or more files from ``kubectl get ... -o json`` (comma-separated): a ``List`` of objects or a single object.
Everything read is passed through the same `sanitize` as a live snapshot (env values, last-applied annotations
and managedFields dropped) and Secrets and ConfigMaps in the input are left out, so the document is the same
shape whatever its source. What the input lacks (Auto Scaling groups, PDBs in a cluster-info dump) is simply
absent; the header says where the objects came from.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

from kubeops.clients.snapshot import DROPPED, SNAPSHOT_FORMAT, sanitize, take_snapshot
from kubeops.errors import AwsError, InputError
from kubeops.settings import Settings

__all__ = ["load_input", "take", "write"]

Obj = dict[str, Any]
_NEVER = {"Secret", "ConfigMap"}
# kind -> the snapshot's resource key (also the sandbox store's); kinds outside stay under their own name
_KEYS = {
    "Namespace": "namespaces", "PriorityClass": "priorityclasses.scheduling.k8s.io", "Node": "nodes",
    "CustomResourceDefinition": "customresourcedefinitions.apiextensions.k8s.io",
    "Deployment": "deployments.apps", "ReplicaSet": "replicasets.apps", "StatefulSet": "statefulsets.apps",
    "DaemonSet": "daemonsets.apps", "Job": "jobs.batch", "ReplicationController": "replicationcontrollers",
    "PodDisruptionBudget": "poddisruptionbudgets.policy", "Service": "services", "Endpoints": "endpoints",
    "EndpointSlice": "endpointslices.discovery.k8s.io", "Lease": "leases.coordination.k8s.io", "Pod": "pods",
}
_API_VERSIONS = {
    "Namespace": "v1", "Node": "v1", "Pod": "v1", "Service": "v1", "Endpoints": "v1", "ReplicationController": "v1",
    "Event": "v1", "PriorityClass": "scheduling.k8s.io/v1", "Deployment": "apps/v1", "ReplicaSet": "apps/v1",
    "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1", "PodDisruptionBudget": "policy/v1",
    "EndpointSlice": "discovery.k8s.io/v1", "Lease": "coordination.k8s.io/v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
}


def take(settings: Settings, *, namespaces: list[str] | None = None, aws: bool = True,
         path: str | Path | None = None) -> Obj:
    """A snapshot of `settings.cluster`: Kubernetes reads, then Auto Scaling describes (unless `aws` is off).

    With `path` the objects are streamed to that file page by page (`SnapshotWriter`) and the returned document
    holds only the header and the groups: a 60,000-pod cluster is never held in memory whole."""
    from kubeops.clients.factory import Clients

    clients = Clients(settings)
    count = int(settings.lock.concurrency)
    names = [settings.lock.name] if count == 1 else [f"{settings.lock.name}-{i}" for i in range(count)]
    lock = (settings.lock.namespace, *names)  # the leases `kubeops.engine.lock.ClusterLock` uses
    writer = SnapshotWriter(path) if path is not None else None
    try:
        aws_client = None
        aws_error = None
        if aws:
            try:
                aws_client = clients.aws
            except (AwsError, InputError) as exc:
                aws_error = str(exc)
        sink = writer.add if writer is not None else None
        try:
            doc = take_snapshot(clients.kube, aws_client, cluster=settings.cluster, namespaces=namespaces,
                                lock=lock, sink=sink)
        except AwsError as exc:  # Kubernetes was read; Auto Scaling was not: say so, keep the rest
            if writer is not None:
                writer.abort()
                writer = SnapshotWriter(path)  # type: ignore[arg-type]
                sink = writer.add
            aws_error = str(exc)
            doc = take_snapshot(clients.kube, None, cluster=settings.cluster, namespaces=namespaces, lock=lock,
                                sink=sink)
        if aws_error:
            doc["header"]["autoscaling_not_read"] = aws_error
        if writer is not None:
            writer.finish(doc)
            writer = None
        return doc
    finally:
        if writer is not None:
            writer.abort()
        clients.close()


class SnapshotWriter:
    """Writes a snapshot document object by object: ``add(resource, items)`` any number of times (a resource's
    pages one after the other), then ``finish(rest)`` with the header and groups; gzip when the name ends in
    ``.gz``; the file appears atomically (temporary name, then rename), readable by the owner only. Each object
    is encoded by the C encoder on its own, so no whole-file string or compressed copy is ever built."""

    def __init__(self, path: str | Path) -> None:
        import os

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._raw = open(self._tmp, "wb")  # noqa: SIM115 - closed by finish/abort
        os.chmod(self._tmp, 0o600)
        self._fh: Any = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6) \
            if self.path.suffix == ".gz" else self._raw
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode
        self._key: str | None = None
        self._first = True
        self._fh.write(b'{"objects":{')

    def add(self, key: str, items: list[Obj]) -> None:
        if key != self._key:
            self._fh.write(((("]," if self._key is not None else "") + self._dumps(key)) + ":[").encode())
            self._key = key
            self._first = True
        for obj in items:
            self._fh.write((b"" if self._first else b",") + self._dumps(obj).encode())
            self._first = False

    def finish(self, rest: Obj) -> Path:
        import os

        self._fh.write(b"]}" if self._key is not None else b"}")
        for key, value in rest.items():
            if key != "objects":
                self._fh.write(("," + self._dumps(key) + ":" + self._dumps(value)).encode())
        self._fh.write(b"}")
        self._close()
        os.replace(self._tmp, self.path)
        return self.path

    def _close(self) -> None:
        if self._fh is not self._raw:
            self._fh.close()
        self._raw.close()

    def abort(self) -> None:
        import contextlib

        self._close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()


def write(doc: Obj, path: str | Path) -> Path:
    """Write a whole document (see `SnapshotWriter`)."""
    writer = SnapshotWriter(path)
    try:
        for key, items in (doc.get("objects") or {}).items():
            writer.add(key, items)
    except BaseException:
        writer.abort()
        raise
    return writer.finish(doc)


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return json.loads(raw)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not readable as JSON ({exc})") from None


def _items(data: Any, path: Path) -> list[Obj]:
    """The objects of a List (``List`` or ``<Kind>List``) or a single object, with kind and apiVersion set."""
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a Kubernetes object or List, got {type(data).__name__}")
    kind = str(data.get("kind") or "")
    if "items" in data and (kind == "List" or kind.endswith("List") or not kind):
        item_kind = kind[:-4] if kind.endswith("List") and kind != "List" else None
        out = []
        for i, item in enumerate(data.get("items") or ()):
            if not isinstance(item, dict):
                raise InputError(f"{path}: items[{i}]: expected an object")
            if item_kind:
                item.setdefault("kind", item_kind)
            if not item.get("kind"):
                raise InputError(f"{path}: items[{i}].kind: missing (cannot tell what the object is)")
            item.setdefault("apiVersion", data.get("apiVersion") if item_kind else _API_VERSIONS.get(item["kind"]))
            out.append(item)
        return out
    if kind and "metadata" in data:
        data.setdefault("apiVersion", _API_VERSIONS.get(kind, "v1"))
        return [data]
    raise InputError(f"{path}: kind: expected a List or a Kubernetes object")


def _document(objects: list[Obj], *, source: str, cluster: str) -> Obj:
    grouped: dict[str, list[Obj]] = {}
    seen: set[tuple[str, str, str]] = set()
    for obj in objects:
        kind = str(obj.get("kind"))
        if kind in _NEVER or kind == "Event":
            continue
        meta = obj.get("metadata") or {}
        ident = (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if ident in seen:
            continue
        seen.add(ident)
        obj.setdefault("apiVersion", _API_VERSIONS.get(kind, "v1"))
        grouped.setdefault(_KEYS.get(kind, kind), []).append(sanitize(obj))
    namespaces = sorted({str(o["metadata"]["namespace"]) for items in grouped.values() for o in items
                         if (o.get("metadata") or {}).get("namespace")})
    known = {n["metadata"]["name"] for n in grouped.get("namespaces", ())}
    for ns in namespaces:  # a dump has no Namespace objects: make the ones its objects live in
        if ns not in known:
            grouped.setdefault("namespaces", []).append({"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": ns}, "status": {"phase": "Active"}})
    return {
        "header": {"format": SNAPSHOT_FORMAT, "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "cluster": cluster, "server_version": "", "namespaces": namespaces, "dropped": dict(DROPPED),
                   "source": source, "counts": {k: len(v) for k, v in grouped.items()}},
        "objects": grouped,
        "autoscaling_groups": [],
    }


def load_input(ref: str | Path) -> Obj:
    """The snapshot document for `ref`: a snapshot file, a cluster-info dump folder, or List files (a,b,c)."""
    text = str(ref)
    paths = [Path(p) for p in text.split(",") if p] if "," in text else [Path(text)]
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder", hint="take a snapshot with `invoke snapshot`")
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        files = sorted(f for f in folder.rglob("*.json") if f.is_file())
        if not files:
            raise InputError(f"{folder}: no .json files (expected `kubectl cluster-info dump --output-directory`)")
        objects = [o for f in files for o in _items(_read_json(f), f)]
        return _document(objects, source=f"kubectl cluster-info dump {folder}", cluster=folder.name)
    if len(paths) == 1:
        data = _read_json(paths[0])
        if isinstance(data, dict) and (data.get("header") or {}).get("format") == SNAPSHOT_FORMAT:
            return data
    objects = [o for p in paths for o in _items(_read_json(p), p)]
    return _document(objects, source="kubectl get -o json " + ",".join(str(p) for p in paths),
                     cluster=paths[0].stem)
