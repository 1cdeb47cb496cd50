"""The sandbox's object store: etcd plus the generic registry logic of kube-apiserver, in memory.

One `Store` holds every object, keyed by resource key (``"pods"``, ``"nodes"``, ``"deployments.apps"``; see
`kubeops.sandbox.discovery`), namespace ("" for cluster-scoped) and name. One re-entrant lock guards it all.

Guarantees (the server and the semantics helper's reconcilers rely on them):
- A global, monotonically increasing resourceVersion; every committed write bumps it, stamps
  ``metadata.resourceVersion`` (a string) and appends a `WatchEvent` (ADDED / MODIFIED / DELETED) to the log.
  A write that changes nothing commits nothing (no bump, no event), like the real server.
- Committed objects are never mutated in place: each write stores a new dict. Objects handed out with
  ``copy=False`` may therefore be read without the lock, but must never be mutated.
- ``create`` fills uid, creationTimestamp, resourceVersion, generation (for resources with
  ``ResourceInfo.has_generation``), apiVersion/kind; runs `defaulters` then `validators`.
- ``update`` (PUT semantics) checks ``metadata.resourceVersion`` when set (stale -> 409 Conflict), keeps
  uid/creationTimestamp; on the main resource of a resource with a status subresource it keeps the old ``status``;
  with ``subresource="status"`` it keeps everything but ``status`` (and labels/annotations may change).
  generation bumps when anything outside metadata/status changed.
- ``dry_run=True`` on every mutating method runs defaulting/validation/conflict checks and returns what would be
  stored, changing nothing and bumping nothing.

Deletion:
- An object with ``metadata.finalizers`` gets ``deletionTimestamp`` (MODIFIED) and stays until an update empties
  its finalizers; then it is removed (DELETED).
- Pods with a grace period > 0 (query/DeleteOptions ``gracePeriodSeconds``, else
  ``spec.terminationGracePeriodSeconds``, else 30) that are bound to a node and not Succeeded/Failed get
  ``deletionTimestamp = now + grace`` and ``deletionGracePeriodSeconds = grace`` (MODIFIED) and are then removed by
  whoever registered ``store.deletion_handlers["pods"]`` (the kubelet simulation): the handler is called as
  ``handler(pod_copy)`` right after the MODIFIED commit and must later call
  ``store.finish_deletion("pods", ns, name, uid=uid)``. With no handler registered, pods are removed at once.
  A second delete may shorten the grace; grace 0 removes at once (``--force``).
- Garbage collection: removing an object deletes its dependents (``metadata.ownerReferences[].uid``) with default
  grace, unless ``propagation_policy="Orphan"`` (dependents lose that ownerReference).
- Namespaces (the namespace registry's rules): a namespace's ``spec.finalizers`` count as finalizers, so deleting
  one gets ``deletionTimestamp`` and ``status.phase: Terminating`` and it stays until both lists are empty. Only
  the ``finalize`` subresource (``update(..., subresource="finalize")``) changes ``spec.finalizers``; a PUT/PATCH
  of the namespace keeps them, as upstream's strategy does. ``default``, ``kube-system`` and ``kube-public`` may
  not be deleted (403). Emptying out a terminating namespace is the namespace controller's job
  (`kubeops.sandbox.namespaces`); a namespace removed while content remains (a forced finalize) leaves that
  content behind, as etcd does.
- Creating a namespaced object needs its namespace (404 otherwise) and refuses a Terminating one with the
  NamespaceLifecycle admission plug-in's 403; updates and deletes there stay allowed. `load` checks neither.

Hooks for other code (keep them quick; they run under the store lock on the writer's thread and may call the store
again, which is re-entrant):
- ``store.subscribe(fn)``: ``fn(event: WatchEvent)`` after every commit.
- ``store.defaulters[resource_key].append(fn)``: ``fn(obj, old_or_None)`` mutates ``obj`` before validation.
- ``store.validators[resource_key].append(fn)``: ``fn(obj, old_or_None) -> list[(reason, field, message)]``;
  any cause turns into 422 Invalid.
- ``store.deletion_handlers["pods"] = fn`` (see above).

Internal writers (controllers, the kubelet simulation) use ``modify(resource, ns, name, fn)``: ``fn`` receives a
private copy and mutates it (or returns a replacement, or returns False to skip); no resourceVersion check, no
status/spec split. ``load(resource, objs)`` bulk-inserts prepared objects (scenario loading; no validation).
"""

from __future__ import annotations

import bisect
import contextlib
import random
import re
import threading
import time
from collections import ChainMap, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubeops.sandbox import apply as ssa
from kubeops.sandbox import managedfields as mf
from kubeops.sandbox import patch as patching
from kubeops.sandbox import status as st
from kubeops.sandbox.discovery import Catalog, ResourceInfo
from kubeops.sandbox.selectors import (
    FieldRequirement,
    Requirement,
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

Obj = dict[str, Any]
Cause = tuple[str, str, str]
Key = tuple[str, str]  # (namespace, name)


def clone(o: Any) -> Any:
    """Deep copy of JSON-shaped data; about twice as fast as copy.deepcopy on pods."""
    if type(o) is dict:
        return {k: clone(v) for k, v in o.items()}
    if type(o) is list:
        return [clone(v) for v in o]
    return o


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One committed change. ``obj`` is the object after the change (for DELETED: its last state, stamped with
    the deletion's resourceVersion); ``old`` the object before (None for ADDED)."""

    rv: int
    type: str
    resource: str
    namespace: str
    name: str
    obj: Obj
    old: Obj | None


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[Obj]
    resource_version: str
    continue_token: str | None
    remaining: int | None


_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GEN_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def new_uid() -> str:
    """A random (version 4) UUID string; several times faster than str(uuid.uuid4()) for bulk loads."""
    h = "%032x" % (random.getrandbits(128) & ~(0xF << 76) & ~(0x3 << 62) | (0x4 << 76) | (0x2 << 62))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_GEN_CHARS) for _ in range(n))


def _encode_continue(rv: int, ns: str, name: str) -> str:
    import base64
    import json

    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{ns}/{name}\x00"}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, Key]:
    import base64
    import json

    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ns, _, name = data["start"].rstrip("\x00").partition("/")
        return int(data["rv"]), (ns, name)
    except Exception:
        raise st.bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                             "(version meta.k8s.io/v1)") from None


class Store:
    """See the module docstring; every public method is thread-safe."""

    def __init__(self, catalog: Catalog, *, clock: Callable[[], float] = time.time, history: int = 200_000) -> None:
        self.catalog = catalog
        self.clock = clock
        self.lock = threading.RLock()
        self._cond = threading.Condition(self.lock)
        self._rv = 1
        self._objects: dict[str, dict[Key, Obj]] = defaultdict(dict)
        self._sorted: dict[str, list[Key] | None] = {}
        self._events: list[WatchEvent] = []
        # (resource, list rv) -> (rv read up to, changed keys' state at list rv, keys added since, keys deleted
        # since): what paginated lists undo; see _as_of
        self._snapshots: dict[tuple[str, int], tuple[int, dict[Key, Obj], set[Key], set[Key]]] = {}
        self._event_rvs: list[int] = []
        self._oldest_rv = 1  # events with rv > _oldest_rv are all in the log
        self._history = history
        self._dependents: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
        # pods by spec.nodeName: drains, the kubelet simulation and kubectl filter on it constantly.
        self._pods_by_node: dict[str, set[Key]] = defaultdict(set)
        self._subscribers: list[Callable[[WatchEvent], None]] = []
        self.defaulters: dict[str, list[Callable[[Obj, Obj | None], None]]] = defaultdict(list)
        self.validators: dict[str, list[Callable[[Obj, Obj | None], list[Cause]]]] = defaultdict(list)
        self.deletion_handlers: dict[str, Callable[[Obj], None]] = {}

    # ---- basics -------------------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def oldest_resource_version(self) -> int:
        """Watches may resume from any resourceVersion >= this; older ones get 410 Gone."""
        return self._oldest_rv

    def subscribe(self, fn: Callable[[WatchEvent], None]) -> None:
        self._subscribers.append(fn)

    def info(self, resource: str) -> ResourceInfo:
        return self.catalog.by_key(resource)

    def now(self) -> float:
        return self.clock()

    def _nf(self, resource: str, name: str) -> st.ApiError:
        info = self.info(resource)
        return st.not_found(info.group, info.plural, name)

    def _ns_key(self, resource: str, namespace: str | None, name: str) -> Key:
        return ((namespace or "") if self.info(resource).namespaced else "", name)

    # ---- reads --------------------------------------------------------------------------------------------

    def get(self, resource: str, namespace: str | None, name: str, *, copy: bool = True) -> Obj:
        with self.lock:
            obj = self._objects[resource].get(self._ns_key(resource, namespace, name))
            if obj is None:
                raise self._nf(resource, name)
            return clone(obj) if copy else obj

    def try_get(self, resource: str, namespace: str | None, name: str, *, copy: bool = True) -> Obj | None:
        with self.lock:
            obj = self._objects[resource].get(self._ns_key(resource, namespace, name))
            return None if obj is None else (clone(obj) if copy else obj)

    def count(self, resource: str) -> int:
        return len(self._objects[resource])

    def _sorted_keys(self, resource: str) -> list[Key]:
        keys = self._sorted.get(resource)
        if keys is None:
            keys = sorted(self._objects[resource])
            self._sorted[resource] = keys
        return keys

    def iter(self, resource: str, namespace: str | None = None) -> Iterator[Obj]:
        """Snapshot iteration (read-only objects) for reconcilers; safe against concurrent writes."""
        with self.lock:
            objs = list(self._objects[resource].items())
        for (ns, _), obj in objs:
            if namespace is None or ns == namespace:
                yield obj

    def parse_selectors(self, resource: str, label_selector: str | None, field_selector: str | None
                        ) -> tuple[tuple[Requirement, ...], tuple[FieldRequirement, ...]]:
        info = self.info(resource)
        try:
            labels = parse_label_selector(label_selector)
            fields = parse_field_selector(field_selector, resource)
        except SelectorError as exc:
            gr = info.plural if not info.group else f"{info.group}/{info.versions[0]}, Resource={info.plural}"
            if not info.group:
                gr = f"/{info.versions[0]}, Resource={info.plural}"
            raise st.bad_request(
                f'Unable to find "{gr}" that match label selector "{label_selector or ""}", field selector '
                f'"{field_selector or ""}": {exc}') from None
        return labels, fields

    def list(self, resource: str, *, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None, limit: int = 0, continue_token: str | None = None,
             copy: bool = True) -> ListResult:
        labels, fields = self.parse_selectors(resource, label_selector, field_selector)
        with self.lock:
            objects = self._objects[resource]
            node_req = next((f for f in fields if f.field == "spec.nodeName" and f.op == "=" and f.value), None) \
                if resource == "pods" else None
            if node_req is not None:
                keys = sorted(self._pods_by_node.get(node_req.value, ()))
            else:
                keys = self._sorted_keys(resource)
            list_rv = self._rv
            start = 0
            if continue_token:
                token_rv, after = _decode_continue(continue_token)
                if token_rv < self._oldest_rv:
                    raise st.ApiError(410, "Expired", "The provided continue parameter is too old to display a "
                                      "consistent list result. You can start a new list without the continue "
                                      "parameter, or use the continue token in this response to retrieve the "
                                      "remainder of the results. Continuing with the provided token results in "
                                      "an inconsistent list - objects that were created, modified, or deleted "
                                      "between the time the first chunk was returned and now may show up in "
                                      "the list.")
                list_rv = token_rv
                if token_rv < self._rv:
                    if node_req is not None:
                        keys = self._sorted_keys(resource)  # the node index is current, not as of token_rv
                    objects, keys = self._as_of(resource, token_rv, objects, keys)
                start = bisect.bisect_right(keys, after)
            if namespace:
                lo = bisect.bisect_left(keys, (namespace, ""), lo=start)
                hi = bisect.bisect_left(keys, (namespace + "\x00", ""), lo=lo)
                start, stop = lo, hi
            else:
                stop = len(keys)
            items: list[Obj] = []
            next_token = None
            remaining = None
            i = start
            while i < stop:
                obj = objects[keys[i]]
                i += 1
                if (not labels or labels_match(labels, obj)) and (not fields or fields_match(fields, obj)):
                    if limit and len(items) >= limit:
                        last = keys[i - 2]
                        next_token = _encode_continue(list_rv, last[0], last[1])
                        if not labels and not fields:
                            remaining = stop - i + 1
                        break
                    items.append(clone(obj) if copy else obj)
            return ListResult(items, str(list_rv), next_token, remaining)

    def _as_of(self, resource: str, rv: int, objects: dict[Key, Obj], keys: list[Key]
               ) -> tuple[Mapping[Key, Obj], list[Key]]:
        """The resource's objects and sorted keys as they were at `rv`, undoing the logged changes since.

        Why: a continue token pins its list to the first page's resourceVersion, like kube-apiserver reading
        etcd at that revision, so later pages neither show objects created since nor lose ones deleted since.
        The caller has checked that the event log still reaches back to `rv`."""
        # The first change of each key after `rv` holds its state at `rv`. Pages of one list share the work: what
        # was read for an earlier page is kept, and only newer changes are read for the next.
        cached = self._snapshots.pop((resource, rv), None)
        seen_rv, overlay, added, deleted = cached if cached is not None else (rv, {}, set(), set())
        i = bisect.bisect_right(self._event_rvs, seen_rv)
        for ev in self._events[i:]:
            if ev.resource != resource:
                continue
            key = (ev.namespace, ev.name)
            if ev.type == "DELETED":
                deleted.add(key)
            if key in overlay or key in added:
                continue
            if ev.type == "ADDED":
                added.add(key)  # did not exist at rv
            else:
                overlay[key] = ev.old if ev.old is not None else ev.obj
        self._snapshots[(resource, rv)] = (self._rv, overlay, added, deleted)
        while len(self._snapshots) > _SNAPSHOTS_KEPT:
            self._snapshots.pop(next(iter(self._snapshots)))
        if not overlay and not added:
            return objects, keys
        view = ChainMap(overlay, objects)
        gone = [k for k in added if k in objects]
        extra = [k for k in deleted if k in overlay and k not in objects]
        if not gone and not extra:  # only changes: the keys are the same
            return view, keys
        merged = list(keys)  # a C-level copy; then a few memmoves, instead of a Python-level merge of them all
        for k in gone:
            j = bisect.bisect_left(merged, k)
            if j < len(merged) and merged[j] == k:
                del merged[j]
        for k in extra:
            bisect.insort(merged, k)
        return view, merged

    # ---- commit machinery ---------------------------------------------------------------------------------

    def _commit(self, resource: str, key: Key, etype: str, obj: Obj, old: Obj | None) -> Obj:
        self._rv += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._rv)
        objects = self._objects[resource]
        keys = self._sorted.get(resource)
        if etype == "DELETED":
            if objects.pop(key, None) is not None and keys is not None:
                # keep the sorted key list current (O(n) memmove) instead of re-sorting 60,000 keys per list
                i = bisect.bisect_left(keys, key)
                if i < len(keys) and keys[i] == key:
                    del keys[i]
                else:
                    self._sorted[resource] = None
        else:
            if key not in objects and keys is not None:
                bisect.insort(keys, key)
            objects[key] = obj
        self._index_owners(resource, key, old, None if etype == "DELETED" else obj)
        if resource == "pods":
            old_node = (old or {}).get("spec", {}).get("nodeName") if old else None
            new_node = None if etype == "DELETED" else obj.get("spec", {}).get("nodeName")
            if (old_node != new_node or etype == "DELETED") and old_node:
                self._pods_by_node[old_node].discard(key)
                if not self._pods_by_node[old_node]:
                    del self._pods_by_node[old_node]
            if new_node:
                self._pods_by_node[new_node].add(key)
        event = WatchEvent(self._rv, etype, resource, key[0], key[1], obj, old)
        self._events.append(event)
        self._event_rvs.append(self._rv)
        if len(self._events) > self._history * 5 // 4:
            drop = len(self._events) - self._history
            self._oldest_rv = self._event_rvs[drop - 1]
            del self._events[:drop]
            del self._event_rvs[:drop]
        for fn in self._subscribers:
            fn(event)
        self._cond.notify_all()
        return obj

    def _index_owners(self, resource: str, key: Key, old: Obj | None, new: Obj | None) -> None:
        ref = (resource, key[0], key[1])
        old_uids = {r.get("uid") for r in (old or {}).get("metadata", {}).get("ownerReferences") or []}
        new_uids = {r.get("uid") for r in (new or {}).get("metadata", {}).get("ownerReferences") or []}
        for uid in old_uids - new_uids:
            self._dependents[uid].discard(ref)
        for uid in new_uids - old_uids:
            self._dependents[uid].add(ref)

    def _validate(self, resource: str, obj: Obj, old: Obj | None) -> None:
        info = self.info(resource)
        meta = obj.get("metadata") or {}
        name = meta.get("name") or ""
        causes: list[Cause] = []
        if old is None and name:
            if info.plural == "namespaces" or info.plural == "services":
                if len(name) > 63 or not _LABEL_NAME_RE.match(name):
                    causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {_LABEL_MSG}'))
            elif len(name) > 253 or not _NAME_RE.match(name):
                causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {_SUBDOMAIN_MSG}'))
        for fn in self.validators.get(resource, ()):
            causes.extend(fn(obj, old))
        if causes:
            raise st.invalid(info.group, info.kind, name, causes)

    def _prepare_create(self, resource: str, obj: Obj, namespace: str | None) -> tuple[Key, Obj]:
        info = self.info(resource)
        obj = clone(obj)
        meta = obj.setdefault("metadata", {})
        if info.namespaced:
            ns = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise st.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
            meta["namespace"] = ns
            ns_obj = self.try_get("namespaces", None, ns, copy=False)
            if ns_obj is None:
                raise st.not_found("", "namespaces", ns)
            if (ns_obj.get("status") or {}).get("phase") == "Terminating":
                raise st.namespace_terminating(info.group, info.plural,
                                               meta.get("name") or meta.get("generateName") or "Unknown", ns)
        else:
            ns = ""
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                for _ in range(20):
                    meta["name"] = meta["generateName"] + random_suffix()
                    if (ns, meta["name"]) not in self._objects[resource]:
                        break
            else:
                raise st.invalid(info.group, info.kind, "", [(
                    "FieldValueRequired", "metadata.name", "Required value: name or generateName is required")])
        obj["apiVersion"] = info.api_version()
        obj["kind"] = info.kind
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = rfc3339(self.now())
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        if info.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        for fn in self.defaulters.get(resource, ()):
            fn(obj, None)
        self._validate(resource, obj, None)
        return (ns, meta["name"]), obj

    # ---- writes -------------------------------------------------------------------------------------------

    def create(self, resource: str, obj: Obj, *, namespace: str | None = None, dry_run: bool = False,
               manager: mf.Manager | None = None) -> Obj:
        """POST semantics; `manager` (API writes only) records its fields in metadata.managedFields."""
        with self.lock:
            key, new = self._prepare_create(resource, obj, namespace)
            if manager is not None:
                mf.record_update(None, new, manager, rfc3339(self.now()))
            if key in self._objects[resource]:
                info = self.info(resource)
                raise st.already_exists(info.group, info.plural, key[1])
            if dry_run:
                return new
            return clone(self._commit(resource, key, "ADDED", new, None))

    def load(self, resource: str, objs: Iterable[Obj], *, defaulted: bool = False) -> int:
        """Bulk insert prepared objects (scenario loading): fills metadata, no validation, no copies.

        Objects must carry metadata.name (and namespace when namespaced); existing names are replaced.
        ``defaulted=True`` skips the defaulters (the caller defaulted a shared template). Loaded objects may
        share nested values with each other: like every committed object they must never be mutated."""
        info = self.info(resource)
        now = rfc3339(self.now())
        n = 0
        with self.lock:
            for obj in objs:
                meta = obj.setdefault("metadata", {})
                obj["apiVersion"] = info.api_version()
                obj["kind"] = info.kind
                if "uid" not in meta:
                    meta["uid"] = new_uid()
                meta.setdefault("creationTimestamp", now)
                if info.has_generation:
                    meta.setdefault("generation", 1)
                key = (meta.get("namespace", "") if info.namespaced else "", meta["name"])
                if not defaulted:
                    for fn in self.defaulters.get(resource, ()):
                        fn(obj, None)
                old = self._objects[resource].get(key)
                self._commit(resource, key, "ADDED" if old is None else "MODIFIED", obj, old)
                n += 1
        return n

    def _finish_update(self, resource: str, key: Key, new: Obj, old: Obj, dry_run: bool,
                       manager: mf.Manager | None = None) -> Obj:
        info = self.info(resource)
        meta = new.setdefault("metadata", {})
        ometa = old["metadata"]
        for f in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if f in ometa:
                meta[f] = ometa[f]
            else:
                meta.pop(f, None)
        meta["name"], meta["resourceVersion"] = key[1], ometa.get("resourceVersion")
        if info.namespaced:
            meta["namespace"] = key[0]
        else:
            meta.pop("namespace", None)
        new["apiVersion"] = info.api_version()
        new["kind"] = info.kind
        for fn in self.defaulters.get(resource, ()):
            fn(new, old)
        if info.has_generation:  # after defaulting: a pruned or defaulted field is no change (as upstream)
            def body(o: Obj) -> dict[str, Any]:
                return {k: v for k, v in o.items() if k not in ("metadata", "status", "apiVersion", "kind")}
            if body(new) != body(old):
                meta["generation"] = int(ometa.get("generation", 1)) + 1
        self._validate(resource, new, old)
        if manager is not None:
            mf.record_update(old, new, manager, rfc3339(self.now()))
        elif "managedFields" in ometa and "managedFields" not in meta:
            meta["managedFields"] = ometa["managedFields"]
        if new == old:
            return clone(old)
        if dry_run:
            return new
        # Finalizers emptied on a terminating object: the object goes now.
        if ometa.get("deletionTimestamp") and not _finalizers(resource, new) and \
                not (resource in self.deletion_handlers and not _grace_done(old, self.now())):
            return clone(self._remove(resource, key, new, old, propagation=None))
        return clone(self._commit(resource, key, "MODIFIED", new, old))

    def update(self, resource: str, obj: Obj, *, namespace: str | None = None, subresource: str | None = None,
               dry_run: bool = False, manager: mf.Manager | None = None) -> Obj:
        """PUT semantics; see the module docstring for the status/spec split."""
        info = self.info(resource)
        meta = obj.get("metadata") or {}
        name = meta.get("name") or ""
        with self.lock:
            key = self._ns_key(resource, namespace or meta.get("namespace"), name)
            old = self._objects[resource].get(key)
            if old is None:
                raise self._nf(resource, name)
            expect = meta.get("resourceVersion")
            if expect and expect != old["metadata"].get("resourceVersion"):
                raise st.conflict(info.group, info.plural, name)
            new = self._split(info, clone(obj), old, subresource)
            return self._finish_update(resource, key, new, old, dry_run, manager)

    def _split(self, info: ResourceInfo, new: Obj, old: Obj, subresource: str | None) -> Obj:
        if info.key == "namespaces":
            # upstream's namespace strategies: only the finalize subresource writes spec.finalizers (and only them)
            finalizers = ((new if subresource == "finalize" else old).get("spec") or {}).get("finalizers")
            if subresource == "finalize":
                new, subresource = clone(old), None
            spec = new.setdefault("spec", {})
            if not finalizers:  # an empty list is left out, as Go's omitempty does
                spec.pop("finalizers", None)
            else:
                spec["finalizers"] = finalizers
        if subresource == "status":
            out = {k: v for k, v in old.items() if k != "status"}
            out["metadata"] = dict(old["metadata"])
            for f in ("labels", "annotations"):
                if f in new.get("metadata", {}):
                    out["metadata"][f] = new["metadata"][f]
            if "status" in new:
                out["status"] = new["status"]
            return out
        if info.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        return new

    def patch(self, resource: str, namespace: str | None, name: str, patch: Any, content_type: str, *,
              subresource: str | None = None, dry_run: bool = False, manager: mf.Manager | None = None) -> Obj:
        info = self.info(resource)
        with self.lock:
            key = self._ns_key(resource, namespace, name)
            old = self._objects[resource].get(key)
            if old is None:
                raise self._nf(resource, name)
            try:
                patched = patching.apply_patch(old, patch, content_type)
            except patching.PatchError as exc:
                if exc.code == 415:
                    raise st.unsupported_media_type(content_type) from None
                if exc.code == 400:
                    raise st.bad_request(str(exc)) from None
                raise st.ApiError(422, "Invalid", str(exc)) from None
            expect = (patched.get("metadata") or {}).get("resourceVersion")
            if expect and expect != old["metadata"].get("resourceVersion"):
                raise st.conflict(info.group, info.plural, name)
            if (patched.get("metadata") or {}).get("uid") not in (None, old["metadata"]["uid"]):
                raise st.conflict(info.group, info.plural, name,
                                  f"Precondition failed: UID in precondition: {patched['metadata']['uid']}, "
                                  f"UID in object meta: {old['metadata']['uid']}")
            new = self._split(info, patched, old, subresource)
            return self._finish_update(resource, key, new, old, dry_run, manager)

    def apply(self, resource: str, namespace: str | None, name: str, config: Any, manager: mf.Manager, *,
              force: bool = False, subresource: str | None = None, dry_run: bool = False) -> tuple[Obj, bool]:
        """Server-side apply (`kubeops.sandbox.apply`); creates the object when absent. Returns (object, created)."""
        info = self.info(resource)
        with self.lock:
            key = self._ns_key(resource, namespace, name)
            old = self._objects[resource].get(key)
            if old is None and subresource:
                raise self._nf(resource, name)
            try:
                new = ssa.apply(old, config, manager, force=force, now=rfc3339(self.now()))
            except ssa.ApplyConflict as exc:
                raise st.ApiError(409, "Conflict", exc.message, details={"causes": exc.causes}) from None
            except patching.PatchError as exc:
                raise (st.bad_request(str(exc)) if exc.code == 400 else st.ApiError(422, "Invalid", str(exc))) \
                    from None
            if old is None:
                if info.has_status and info.plural != "nodes":  # a create starts without status, as via POST
                    new.pop("status", None)
                return self.create(resource, new, namespace=namespace, dry_run=dry_run), True
            expect = new["metadata"].get("resourceVersion")
            if expect and expect != old["metadata"].get("resourceVersion"):
                raise st.conflict(info.group, info.plural, name)
            fields = new["metadata"].get("managedFields")
            new = self._split(info, new, old, subresource)
            new["metadata"]["managedFields"] = fields
            return self._finish_update(resource, key, new, old, dry_run), False

    def modify(self, resource: str, namespace: str | None, name: str, fn: Callable[[Obj], Obj | bool | None],
               *, manager: mf.Manager | None = None) -> Obj | None:
        """Internal read-modify-write without conflict checks; returns the stored object (None if absent).

        managedFields are kept as they are unless a `manager` is named (a controller's status write)."""
        with self.lock:
            key = self._ns_key(resource, namespace, name)
            old = self._objects[resource].get(key)
            if old is None:
                return None
            work = clone(old)
            result = fn(work)
            if result is False:
                return old
            new = result if isinstance(result, dict) else work
            return self._finish_update(resource, key, new, old, dry_run=False, manager=manager)

    # ---- deletion -----------------------------------------------------------------------------------------

    def delete(self, resource: str, namespace: str | None, name: str, *, grace_period_s: int | None = None,
               propagation_policy: str | None = None, preconditions: dict[str, Any] | None = None,
               dry_run: bool = False) -> tuple[Obj, bool]:
        """Delete per the module docstring. Returns (object as the client sees it, removed_now)."""
        info = self.info(resource)
        with self.lock:
            key = self._ns_key(resource, namespace, name)
            old = self._objects[resource].get(key)
            if old is None:
                raise self._nf(resource, name)
            ometa = old["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != ometa.get("uid"):
                raise st.conflict(info.group, info.plural, name,
                                  f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                                  f"{ometa.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != ometa.get("resourceVersion"):
                raise st.conflict(info.group, info.plural, name,
                                  f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                                  f"ResourceVersion in object meta: {ometa.get('resourceVersion')}")
            if resource == "namespaces" and name in IMMORTAL_NAMESPACES:
                raise st.forbidden_named("", "namespaces", name, "this namespace may not be deleted")
            grace = self._grace(resource, old, grace_period_s)
            finalizers = _finalizers(resource, old)
            graceful = grace > 0 and resource in self.deletion_handlers
            if ometa.get("deletionTimestamp"):
                # Already terminating: only a shorter grace (0 = force) changes anything.
                current = int(ometa.get("deletionGracePeriodSeconds") or 0)
                if finalizers or (graceful and grace >= current):
                    return clone(old), False
                if not graceful:
                    if dry_run:
                        return clone(old), True
                    return clone(self._remove(resource, key, clone(old), old, propagation_policy)), True
            elif not graceful and not finalizers:
                if dry_run:
                    return clone(old), True
                return clone(self._remove(resource, key, clone(old), old, propagation_policy)), True
            new = clone(old)
            new["metadata"]["deletionTimestamp"] = rfc3339(self.now() + (grace if graceful else 0))
            new["metadata"]["deletionGracePeriodSeconds"] = grace if graceful else 0
            if resource == "namespaces":  # the namespace registry: no grace period, the phase turns at once
                del new["metadata"]["deletionGracePeriodSeconds"]
                new.setdefault("status", {})["phase"] = "Terminating"
            if dry_run:
                return new, False
            committed = self._commit(resource, key, "MODIFIED", new, old)
            if graceful:
                self.deletion_handlers[resource](clone(committed))
            return clone(committed), False

    def _grace(self, resource: str, obj: Obj, requested: int | None) -> int:
        if resource != "pods":
            return 0
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if requested is not None and requested >= 0:
            return int(requested)
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def finish_deletion(self, resource: str, namespace: str | None, name: str, *, uid: str | None = None) -> bool:
        """Remove a terminating object now (the kubelet simulation calls this). False if gone, replaced
        (uid differs) or held by finalizers."""
        with self.lock:
            key = self._ns_key(resource, namespace, name)
            old = self._objects[resource].get(key)
            if old is None or (uid and old["metadata"].get("uid") != uid):
                return False
            if _finalizers(resource, old):
                return False
            self._remove(resource, key, clone(old), old, None)
            return True

    def _remove(self, resource: str, key: Key, last: Obj, old: Obj, propagation: str | None) -> Obj:
        committed = self._commit(resource, key, "DELETED", last, old)
        uid = old["metadata"].get("uid")
        dependents = sorted(self._dependents.pop(uid, set())) if uid else []
        for dep_resource, dep_ns, dep_name in dependents:
            if propagation == "Orphan":
                def drop_ref(o: Obj, uid: str | None = uid) -> None:
                    refs = [r for r in o["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                    if refs:
                        o["metadata"]["ownerReferences"] = refs
                    else:
                        o["metadata"].pop("ownerReferences", None)
                self.modify(dep_resource, dep_ns, dep_name, drop_ref)
            else:
                with contextlib.suppress(st.ApiError):
                    self.delete(dep_resource, dep_ns, dep_name)
        return committed

    # ---- watch --------------------------------------------------------------------------------------------

    def events_since(self, rv: int) -> list[WatchEvent]:
        """Events with resourceVersion > rv; raises 410 Gone if rv predates the retained history."""
        with self.lock:
            if rv < self._oldest_rv:
                raise st.gone(f"too old resource version: {rv} ({self._oldest_rv})")
            i = bisect.bisect_right(self._event_rvs, rv)
            return self._events[i:]

    def wait_for_events(self, rv: int, timeout_s: float) -> list[WatchEvent]:
        """Block until there are events after rv (or the timeout passes)."""
        with self.lock:
            if self._rv <= rv:
                self._cond.wait(timeout_s)
            return self.events_since(rv)


_SNAPSHOTS_KEPT = 32  # paginated lists in flight whose undo work is kept


IMMORTAL_NAMESPACES = frozenset(("default", "kube-system", "kube-public"))


def _finalizers(resource: str, obj: Obj) -> list[str]:
    """What holds a terminating object: ``metadata.finalizers``, plus ``spec.finalizers`` for a namespace."""
    found = list((obj.get("metadata") or {}).get("finalizers") or [])
    if resource == "namespaces":
        found.extend((obj.get("spec") or {}).get("finalizers") or [])
    return found


def _grace_done(obj: Obj, now: float) -> bool:
    ts = (obj.get("metadata") or {}).get("deletionTimestamp")
    return bool(ts) and parse_time(ts) <= now
