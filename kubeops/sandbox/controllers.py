"""Workload controllers of the sandbox: what kube-controller-manager does for Deployments, ReplicaSets,
ReplicationControllers, StatefulSets and DaemonSets, plus pod garbage collection of deleted nodes.

Why they matter: a drain is only useful if evicted pods come back elsewhere, and ``kubectl rollout status`` and
our own rolling deploys read exactly these status fields. Behaviour follows upstream where a client can see it:
- Deployment -> ReplicaSet ``<name>-<pod-template-hash>`` -> pods ``<rs>-<5 chars>``; RollingUpdate honours
  maxSurge (rounded up) and maxUnavailable (rounded down; both 0 means 1) against *available* pods, Recreate
  waits for old pods to be gone; revisions in ``deployment.kubernetes.io/revision``; Available/Progressing
  conditions and observedGeneration/replicas/updatedReplicas/readyReplicas/availableReplicas.
- ReplicaSet/ReplicationController keep ``spec.replicas`` active pods, deleting the least useful first
  (unscheduled, then pending, then not ready, then the newest).
- StatefulSet pods ``<name>-<ordinal>``, created in order (OrderedReady waits for Running and Ready), a deleted
  one recreated with the same name once the old pod is gone, rolling update from the highest ordinal down to the
  partition, ``controller-revision-hash`` labels and current/update revisions.
- DaemonSet: one pod per node whose taints (with the DaemonSet tolerations, ``unschedulable`` included) and
  selector allow it, pinned with a ``metadata.name`` node affinity; rolling update by maxUnavailable.
Every pod gets an ownerReference with ``controller: true``; the store's garbage collector deletes dependents of
deleted owners. Nothing new is created in a namespace being deleted (the API server refuses it; see
`kubeops.sandbox.namespaces`). The endpoints controller is installed with these (see `kubeops.sandbox.endpoints`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING, Any

from kubeops.sandbox import endpoints, events
from kubeops.sandbox.managedfields import Manager
from kubeops.sandbox.pdb import is_pod_ready, scaled_value
from kubeops.sandbox.scheduler import placement_reason
from kubeops.sandbox.status import ApiError
from kubeops.sandbox.store import clone, parse_time, random_suffix, rfc3339
from kubeops.sandbox.timing import Timing
from kubeops.sandbox.tracker import Tracker, controller_ref, tracker_for

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster
    from kubeops.sandbox.store import Store

__all__ = ["Controllers", "install", "template_hash"]

Obj = dict[str, Any]
Key = tuple[str, str]
HASH_LABEL = "pod-template-hash"
REVISION_LABEL = "controller-revision-hash"
REVISION_ANN = "deployment.kubernetes.io/revision"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
DAEMONSET_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


def template_hash(template: Any, collision_count: int = 0) -> str:
    """A stable, DNS-safe hash of a pod template, shaped like upstream's (FNV-32a, safe-encoded)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    h = 0x811C9DC5
    for b in hashlib.sha256(data).digest():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(h))


def _active(pod: Obj) -> bool:
    """Counts towards replicas: not finished and not terminating (controller.FilterActivePods)."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _ready_since(pod: Obj) -> float | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "True":
            ts = c.get("lastTransitionTime")
            return parse_time(ts) if ts else 0.0
    return None


def _available(pod: Obj, min_ready_s: float, now: float) -> bool:
    since = _ready_since(pod)
    return since is not None and (min_ready_s <= 0 or since + min_ready_s <= now)


def _delete_rank(pod: Obj) -> tuple[Any, ...]:
    """Sort key: pods to delete first come first (kubectl's ActivePods ordering, simplified)."""
    status = pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase") or "Pending", 0)
    created = pod["metadata"].get("creationTimestamp") or ""
    return (bool((pod.get("spec") or {}).get("nodeName")), phase_rank, is_pod_ready(pod),
            _neg(created), _neg(pod["metadata"]["name"]))


def _neg(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def _owner_ref(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _pod_from_template(owner: Obj, template: Obj, name: str, *, labels: dict[str, str] | None = None) -> Obj:
    tmeta = template.get("metadata") or {}
    meta: Obj = {
        "name": name,
        "namespace": owner["metadata"]["namespace"],
        "labels": {**(tmeta.get("labels") or {}), **(labels or {})},
        "ownerReferences": [_owner_ref(owner)],
    }
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    meta["generateName"] = owner["metadata"]["name"] + "-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": clone(template.get("spec") or {})}


def _condition(old_status: Obj, ctype: str, status: str, reason: str, message: str, now: float) -> Obj:
    previous = next((c for c in old_status.get("conditions") or () if c.get("type") == ctype), None)
    stamp = rfc3339(now)
    transition = stamp
    if previous is not None and previous.get("status") == status:
        transition = previous.get("lastTransitionTime") or stamp
    update = stamp
    if previous is not None and previous.get("status") == status and previous.get("reason") == reason \
            and previous.get("message") == message:
        update = previous.get("lastUpdateTime") or stamp
    return {"type": ctype, "status": status, "lastUpdateTime": update, "lastTransitionTime": transition,
            "reason": reason, "message": message}


class Controllers:
    """One reconciler running every workload controller on its dirty keys."""

    def __init__(self, tracker: Tracker, timing: Timing | None = None) -> None:
        self.t = tracker
        self.store: Store = tracker.store
        self.timing = timing or Timing()

    # -- plumbing ---------------------------------------------------------------------------------------
    def reconcile(self, cluster: Cluster, now: float) -> None:
        t = self.t
        t.fire_timers(now)
        for key in t.take("__orphans__"):
            self._collect_orphans(key[1])
        for key in t.take("deployments.apps"):
            self._guard("deployments.apps", self._deployment, key, now)
        for resource in ("replicasets.apps", "replicationcontrollers"):
            for key in t.take(resource):
                self._guard(resource, self._replicaset, key, now, resource)
        for key in t.take("statefulsets.apps"):
            self._guard("statefulsets.apps", self._statefulset, key, now)
        for key in t.take("jobs.batch"):
            self._guard("jobs.batch", self._job, key, now)
        ds_keys = t.take("daemonsets.apps")
        if t.take("__daemonsets__"):
            ds_keys |= {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in self.store.iter("daemonsets.apps")}
        for key in ds_keys:
            self._guard("daemonsets.apps", self._daemonset, key, now)

    def _guard(self, resource: str, fn: Any, key: Key, now: float, *args: Any) -> None:
        try:
            fn(key, now, *args)
        except ApiError:  # a concurrent change (deleted namespace, conflict): the next event retries
            self.t.later(now + 0.5, resource, key)

    def _set_status(self, resource: str, obj: Obj, status: Obj, annotations: dict[str, str] | None = None) -> None:
        meta = obj["metadata"]
        old_ann = meta.get("annotations") or {}
        same_ann = not annotations or all(old_ann.get(k) == v for k, v in annotations.items())
        if obj.get("status") == status and same_ann:
            return

        def write(o: Obj) -> None:
            o["status"] = status
            if annotations:
                o["metadata"].setdefault("annotations", {}).update(annotations)

        who = Manager("kube-controller-manager", "Update", self.store.info(resource).api_version(), "status")
        self.store.modify(resource, meta.get("namespace"), meta["name"], write, manager=who)

    def _create_pods(self, pods: list[Obj]) -> None:
        """Bulk-create pods whose names the caller made unique; names taken meanwhile get a new suffix."""
        if not pods:
            return
        with self.store.lock:
            for pod in pods:
                meta = pod["metadata"]
                ns = meta["namespace"]
                fixed = not meta.get("generateName")
                if fixed and self.store.try_get("pods", ns, meta["name"], copy=False) is not None:
                    continue
                while not fixed and self.store.try_get("pods", ns, meta["name"], copy=False) is not None:
                    meta["name"] = meta["generateName"] + random_suffix()
            fresh = [p for p in pods if self.store.try_get("pods", p["metadata"]["namespace"],
                                                           p["metadata"]["name"], copy=False) is None]
            ns = self.store.try_get("namespaces", None, fresh[0]["metadata"]["namespace"],
                                    copy=False) if fresh else None
            # NamespaceLifecycle would refuse these creates: nothing new in a namespace being deleted
            if ns is not None and (ns.get("status") or {}).get("phase") != "Terminating":
                self.store.load("pods", fresh)

    def _delete_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            self.store.delete("pods", meta["namespace"], meta["name"], preconditions={"uid": meta["uid"]})
            events.recorder_for(self.store).controller_deleted_pod(pod)

    def _collect_orphans(self, node: str) -> None:
        """The pod GC: pods bound to a node that no longer exists are removed at once."""
        if self.store.try_get("nodes", None, node, copy=False) is not None:
            return
        for pod in self.t.pods_on(node):
            meta = pod["metadata"]
            with contextlib.suppress(ApiError):
                self.store.delete("pods", meta["namespace"], meta["name"], grace_period_s=0,
                                  preconditions={"uid": meta["uid"]})

    def _owned(self, resource: str, uid: str) -> list[Obj]:
        with self.store.lock:
            keys = list(self.t.by_owner.get(uid, ()))
            out = []
            for ns, name in keys:
                obj = self.store.try_get(resource, ns, name, copy=False)
                if obj is not None and (controller_ref(obj) or {}).get("uid") == uid:
                    out.append(obj)
            return out

    # -- ReplicaSet / ReplicationController -------------------------------------------------------------
    def _replicaset(self, key: Key, now: float, resource: str = "replicasets.apps") -> None:
        rs = self.store.try_get(resource, *key, copy=False)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        spec = rs.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        min_ready = self.timing.min_ready_s(spec)
        pods = self.t.pods_of(rs["metadata"]["uid"])
        active = [p for p in pods if _active(p)]
        diff = len(active) - replicas
        template = spec.get("template") or {}
        if diff < 0:
            base = rs["metadata"]["name"] + "-"
            self._create_pods([_pod_from_template(rs, template, base + random_suffix()) for _ in range(-diff)])
        elif diff > 0:
            for pod in sorted(active, key=_delete_rank)[:diff]:
                self._delete_pod(pod)
            active = sorted(active, key=_delete_rank)[diff:]
        pods = self.t.pods_of(rs["metadata"]["uid"])
        active = [p for p in pods if _active(p)]
        labels = (template.get("metadata") or {}).get("labels") or {}
        ready = [p for p in active if is_pod_ready(p)]
        available = [p for p in ready if _available(p, min_ready, now)]
        if min_ready and len(available) < len(ready):
            self.t.later(now + min_ready, resource, key)
        status: Obj = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1 for p in active if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
            ),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if resource == "replicasets.apps":
            status["terminatingReplicas"] = sum(1 for p in pods if p["metadata"].get("deletionTimestamp"))
        for field in ("readyReplicas", "availableReplicas", "fullyLabeledReplicas", "terminatingReplicas"):
            if status.get(field) == 0:
                del status[field]  # omitempty, as the real server serialises them
        self._set_status(resource, rs, status)

    # -- Deployment --------------------------------------------------------------------------------------
    def _deployment(self, key: Key, now: float) -> None:
        d = self.store.try_get("deployments.apps", *key, copy=False)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        all_rs = self._owned("replicasets.apps", d["metadata"]["uid"])
        collision = int((d.get("status") or {}).get("collisionCount") or 0)
        new_rs = next((rs for rs in all_rs if _equal_ignore_hash((rs.get("spec") or {}).get("template"), template)),
                      None)
        olds = [rs for rs in all_rs if rs is not new_rs]
        revisions = [int((rs["metadata"].get("annotations") or {}).get(REVISION_ANN, "0") or 0) for rs in all_rs]
        strategy = (spec.get("strategy") or {})
        kind = strategy.get("type") or "RollingUpdate"
        rolling = strategy.get("rollingUpdate") or {}
        max_surge = scaled_value(rolling.get("maxSurge", "25%"), replicas, round_up=True)
        max_unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
        if kind == "Recreate":
            max_surge, max_unavailable = 0, replicas
        elif max_surge == 0 and max_unavailable == 0:
            max_unavailable = 1
        if new_rs is None and not spec.get("paused"):
            new_rs = self._create_rs(d, template, collision, max(revisions, default=0) + 1, replicas, max_surge,
                                     0 if (kind == "Recreate" and olds) or olds else replicas)
            if new_rs is None:
                return
            all_rs = [*olds, new_rs]
        if not spec.get("paused") and new_rs is not None:
            if kind == "Recreate":
                self._recreate(new_rs, olds, replicas)
            else:
                self._rolling(d, new_rs, olds, replicas, max_surge, max_unavailable)
            self._cleanup_history(d, olds)
            all_rs = self._owned("replicasets.apps", d["metadata"]["uid"])
            new_rs = next((rs for rs in all_rs if rs["metadata"]["uid"] == new_rs["metadata"]["uid"]), new_rs)
        self._deployment_status(d, new_rs, all_rs, replicas, max_unavailable, now)

    def _create_rs(self, d: Obj, template: Obj, collision: int, revision: int, replicas: int, max_surge: int,
                   initial: int) -> Obj | None:
        h = template_hash(template, collision)
        tmpl = clone(template)
        tmpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = clone((d.get("spec") or {}).get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{h}",
                "namespace": d["metadata"]["namespace"],
                "labels": {**((template.get("metadata") or {}).get("labels") or {}), HASH_LABEL: h},
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                    "deployment.kubernetes.io/max-replicas": str(replicas + max_surge),
                    REVISION_ANN: str(revision),
                },
                "ownerReferences": [_owner_ref(d)],
            },
            "spec": {"replicas": initial, "minReadySeconds": (d.get("spec") or {}).get("minReadySeconds", 0),
                     "selector": selector, "template": tmpl},
        }
        try:
            return self.store.create("replicasets.apps", rs)
        except ApiError as exc:
            if exc.code == 403:  # the namespace is being deleted: nothing new in it
                return None
            if exc.code != 409:
                raise
            existing = self.store.try_get("replicasets.apps", d["metadata"]["namespace"], rs["metadata"]["name"],
                                          copy=False)
            if existing is not None and (controller_ref(existing) or {}).get("uid") == d["metadata"]["uid"]:
                return existing
            # a foreign ReplicaSet holds the name: bump collisionCount like upstream and retry next tick
            self.store.modify("deployments.apps", d["metadata"]["namespace"], d["metadata"]["name"],
                              lambda o: o.setdefault("status", {}).update(collisionCount=collision + 1))
            return None

    def _scale_rs(self, rs: Obj, replicas: int, d_replicas: int | None = None, max_surge: int = 0) -> None:
        if int((rs.get("spec") or {}).get("replicas", 0)) == replicas:
            return

        def write(o: Obj) -> None:
            o["spec"]["replicas"] = replicas
            if d_replicas is not None:
                ann = o["metadata"].setdefault("annotations", {})
                ann["deployment.kubernetes.io/desired-replicas"] = str(d_replicas)
                ann["deployment.kubernetes.io/max-replicas"] = str(d_replicas + max_surge)

        self.store.modify("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"], write)

    def _recreate(self, new_rs: Obj, olds: list[Obj], replicas: int) -> None:
        old_pods = 0
        for rs in olds:
            self._scale_rs(rs, 0)
            old_pods += len(self.t.pods_of(rs["metadata"]["uid"]))
        if old_pods == 0:
            self._scale_rs(new_rs, replicas, replicas)

    def _rolling(self, d: Obj, new_rs: Obj, olds: list[Obj], replicas: int, max_surge: int,
                 max_unavailable: int) -> None:
        def spec_replicas(rs: Obj) -> int:
            return int((rs.get("spec") or {}).get("replicas", 0))

        def available(rs: Obj) -> int:
            return int((rs.get("status") or {}).get("availableReplicas") or 0)

        new_count = spec_replicas(new_rs)
        total = new_count + sum(spec_replicas(rs) for rs in olds)
        max_total = replicas + max_surge
        if new_count > replicas:
            target = replicas
        elif total < max_total:
            target = min(new_count + max_total - total, replicas)
        else:
            target = new_count
        self._scale_rs(new_rs, target, replicas, max_surge)
        active_olds = sorted((rs for rs in olds if spec_replicas(rs) > 0),
                             key=lambda rs: rs["metadata"].get("creationTimestamp") or "")
        if not active_olds:
            return
        min_available = replicas - max_unavailable
        all_pods = new_count + sum(spec_replicas(rs) for rs in olds)
        new_unavailable = new_count - available(new_rs)
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        # first drop old replicas that are not available anyway
        scaled: dict[str, int] = {}
        cleaned = 0
        for rs in active_olds:
            unhealthy = spec_replicas(rs) - available(rs)
            if unhealthy <= 0 or cleaned >= max_scaled_down:
                continue
            n = min(max_scaled_down - cleaned, unhealthy)
            scaled[rs["metadata"]["uid"]] = spec_replicas(rs) - n
            cleaned += n
        # then available ones, keeping minAvailable available in all
        available_total = available(new_rs) + sum(available(rs) for rs in olds)
        budget = min(available_total - min_available, max_scaled_down - cleaned)
        for rs in active_olds:
            if budget <= 0:
                break
            current = scaled.get(rs["metadata"]["uid"], spec_replicas(rs))
            n = min(current, budget)
            scaled[rs["metadata"]["uid"]] = current - n
            budget -= n
        for rs in active_olds:
            if rs["metadata"]["uid"] in scaled:
                self._scale_rs(rs, scaled[rs["metadata"]["uid"]])

    def _cleanup_history(self, d: Obj, olds: list[Obj]) -> None:
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = [rs for rs in olds if int((rs.get("spec") or {}).get("replicas", 0)) == 0
                and not (rs.get("status") or {}).get("replicas")
                and not self.t.pods_of(rs["metadata"]["uid"])]
        idle.sort(key=lambda rs: int((rs["metadata"].get("annotations") or {}).get(REVISION_ANN, "0") or 0))
        for rs in idle[: max(0, len(idle) - limit)]:
            with contextlib.suppress(ApiError):
                self.store.delete("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _deployment_status(self, d: Obj, new_rs: Obj | None, all_rs: list[Obj], replicas: int,
                           max_unavailable: int, now: float) -> None:
        def st(rs: Obj, field: str) -> int:
            return int((rs.get("status") or {}).get(field) or 0)

        spec_total = sum(int((rs.get("spec") or {}).get("replicas", 0)) for rs in all_rs)
        available = sum(st(rs, "availableReplicas") for rs in all_rs)
        updated = st(new_rs, "replicas") if new_rs is not None else 0
        old_status = d.get("status") or {}
        status: Obj = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": sum(st(rs, "replicas") for rs in all_rs),
            "updatedReplicas": updated,
            "readyReplicas": sum(st(rs, "readyReplicas") for rs in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(0, spec_total - available),
        }
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        if available >= replicas - max_unavailable:
            avail = _condition(old_status, "Available", "True", "MinimumReplicasAvailable",
                               "Deployment has minimum availability.", now)
        else:
            avail = _condition(old_status, "Available", "False", "MinimumReplicasUnavailable",
                               "Deployment does not have minimum availability.", now)
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else ""
        complete = (new_rs is not None and updated == replicas and status["replicas"] == replicas
                    and available == replicas)
        if (d.get("spec") or {}).get("paused"):
            prog = _condition(old_status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now)
        elif complete:
            prog = _condition(old_status, "Progressing", "True", "NewReplicaSetAvailable",
                              f'ReplicaSet "{rs_name}" has successfully progressed.', now)
        else:
            prog = _condition(old_status, "Progressing", "True", "ReplicaSetUpdated",
                              f'ReplicaSet "{rs_name}" is progressing.', now)
        status["conditions"] = [avail, prog]
        for field in ("readyReplicas", "availableReplicas", "unavailableReplicas", "updatedReplicas", "replicas"):
            if status[field] == 0:
                del status[field]
        annotations = None
        if new_rs is not None:
            rev = (new_rs["metadata"].get("annotations") or {}).get(REVISION_ANN)
            if rev:
                annotations = {REVISION_ANN: rev}
        self._set_status("deployments.apps", d, status, annotations)

    # -- StatefulSet ---------------------------------------------------------------------------------------
    def _statefulset(self, key: Key, now: float) -> None:
        sts = self.store.try_get("statefulsets.apps", *key, copy=False)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        spec = sts.get("spec") or {}
        name = sts["metadata"]["name"]
        ns = sts["metadata"]["namespace"]
        replicas = int(spec.get("replicas", 1))
        min_ready = self.timing.min_ready_s(spec)
        template = spec.get("template") or {}
        ordered = (spec.get("podManagementPolicy") or "OrderedReady") == "OrderedReady"
        update = spec.get("updateStrategy") or {}
        partition = int((update.get("rollingUpdate") or {}).get("partition") or 0)
        update_rev = f"{name}-{template_hash(template)}"
        old_status = sts.get("status") or {}
        current_rev = old_status.get("currentRevision") or update_rev
        pods = self.t.pods_of(sts["metadata"]["uid"])
        by_ordinal: dict[int, Obj] = {}
        for p in pods:
            head, _, tail = p["metadata"]["name"].rpartition("-")
            if head == name and tail.isdigit():
                by_ordinal[int(tail)] = p

        def healthy(p: Obj | None) -> bool:
            return p is not None and _active(p) and (p.get("status") or {}).get("phase") == "Running" \
                and is_pod_ready(p)

        to_create: list[Obj] = []
        for i in range(replicas):
            p = by_ordinal.get(i)
            if p is None:
                with self.store.lock:
                    taken = self.store.try_get("pods", ns, f"{name}-{i}", copy=False) is not None
                if not taken:
                    rev = update_rev if i >= partition or current_rev == update_rev else current_rev
                    to_create.append(self._sts_pod(sts, template, i, rev))
                if ordered:
                    break
            elif ordered and not healthy(p):
                break
        self._create_pods(to_create)
        # scale down from the highest ordinal
        extra = sorted((i for i in by_ordinal if i >= replicas), reverse=True)
        if extra and not to_create:
            if not ordered:
                for i in extra:
                    if _active(by_ordinal[i]):
                        self._delete_pod(by_ordinal[i])
            elif all(healthy(by_ordinal.get(i)) for i in range(replicas)):
                top = by_ordinal[extra[0]]
                if _active(top):
                    self._delete_pod(top)
        # rolling update, highest ordinal first, one pod at a time once all are healthy
        rolling = (update.get("type") or "RollingUpdate") == "RollingUpdate" and not to_create and not extra
        if rolling and all(healthy(by_ordinal.get(i)) for i in range(replicas)):
            for i in range(replicas - 1, partition - 1, -1):
                p = by_ordinal.get(i)
                if p is not None and (p["metadata"].get("labels") or {}).get(REVISION_LABEL) != update_rev:
                    self._delete_pod(p)
                    break
        pods = [p for p in self.t.pods_of(sts["metadata"]["uid"]) if _active(p)]
        ready = [p for p in pods if is_pod_ready(p)]
        available = [p for p in ready if _available(p, min_ready, now)]
        if min_ready and len(available) < len(ready):
            self.t.later(now + min_ready, "statefulsets.apps", key)
        updated = sum(1 for p in pods if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == update_rev)
        current = sum(1 for p in pods if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == current_rev)
        if updated == replicas and len(pods) == replicas and len(ready) == replicas:
            current_rev, current = update_rev, updated
        status: Obj = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": len(ready),
            "currentReplicas": current,
            "updatedReplicas": updated,
            "availableReplicas": len(available),
            "currentRevision": current_rev,
            "updateRevision": update_rev,
            "collisionCount": 0,
        }
        for field in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if status[field] == 0:
                del status[field]
        self._set_status("statefulsets.apps", sts, status)

    def _sts_pod(self, sts: Obj, template: Obj, ordinal: int, revision: str) -> Obj:
        name = f"{sts['metadata']['name']}-{ordinal}"
        pod = _pod_from_template(sts, template, name, labels={
            REVISION_LABEL: revision,
            "statefulset.kubernetes.io/pod-name": name,
            "apps.kubernetes.io/pod-index": str(ordinal),
        })
        pod["metadata"].pop("generateName", None)
        service = (sts.get("spec") or {}).get("serviceName")
        pod["spec"].setdefault("hostname", name)
        if service:
            pod["spec"].setdefault("subdomain", service)
        return pod

    # -- Job ------------------------------------------------------------------------------------------------
    def _job(self, key: Key, now: float) -> None:
        """Keep ``parallelism`` pods running until ``completions`` pods succeeded (no retries of failures
        beyond ``backoffLimit`` counting)."""
        job = self.store.try_get("jobs.batch", *key, copy=False)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        spec = job.get("spec") or {}
        completions = int(spec.get("completions", 1) if spec.get("completions") is not None else 1)
        parallelism = int(spec.get("parallelism", 1) if spec.get("parallelism") is not None else 1)
        pods = self.t.pods_of(job["metadata"]["uid"])
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
        active = [p for p in pods if _active(p)]
        old = job.get("status") or {}
        done = succeeded >= completions
        want = 0 if done else min(parallelism, completions - succeeded) - len(active)
        if want > 0 and not spec.get("suspend"):
            uid = job["metadata"]["uid"]
            name = job["metadata"]["name"]
            labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                      "controller-uid": uid, "job-name": name}
            self._create_pods([_pod_from_template(job, spec.get("template") or {}, f"{name}-{random_suffix()}",
                                                  labels=labels) for _ in range(want)])
            active = [p for p in self.t.pods_of(uid) if _active(p)]
        status: Obj = {"startTime": old.get("startTime") or rfc3339(now)}
        if active:
            status["active"] = len(active)
            status["ready"] = sum(1 for p in active if is_pod_ready(p))
        if succeeded:
            status["succeeded"] = succeeded
        if failed:
            status["failed"] = failed
        status["terminating"] = 0
        if done:
            stamp = old.get("completionTime") or rfc3339(now)
            status["completionTime"] = stamp
            status["conditions"] = [
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods", "lastProbeTime": stamp,
                 "lastTransitionTime": stamp},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods", "lastProbeTime": stamp,
                 "lastTransitionTime": stamp},
            ]
        self._set_status("jobs.batch", job, status)

    # -- DaemonSet -----------------------------------------------------------------------------------------
    def _daemonset(self, key: Key, now: float) -> None:
        ds = self.store.try_get("daemonsets.apps", *key, copy=False)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        min_ready = self.timing.min_ready_s(spec)
        rev = template_hash(template)
        probe = _daemon_template(template)
        with self.store.lock:
            nodes = dict(self.t.sched.nodes)
        wanted = {n for n, node in nodes.items() if placement_reason(probe, node, not_ready_taint=False) is None}
        pods = [p for p in self.t.pods_of(ds["metadata"]["uid"]) if _active(p)]
        on_node: dict[str, list[Obj]] = {}
        for p in pods:
            on_node.setdefault(_daemon_node(p) or "", []).append(p)
        to_create = []
        for n in sorted(wanted):
            if not on_node.get(n):
                to_create.append(self._daemon_pod(ds, probe, n, rev))
        self._create_pods(to_create)
        for n, ps in on_node.items():
            if n not in wanted:
                for p in ps:
                    self._delete_pod(p)
            else:
                for p in sorted(ps, key=_delete_rank)[:-1]:
                    self._delete_pod(p)
        # rolling update: replace old pods, at most maxUnavailable unavailable at a time
        update = spec.get("updateStrategy") or {}
        desired = len(wanted)
        current = {n: sorted(ps, key=_delete_rank)[-1] for n, ps in on_node.items() if n in wanted}
        avail_nodes = {n for n, p in current.items() if _available(p, min_ready, now)}
        if (update.get("type") or "RollingUpdate") == "RollingUpdate":
            max_unav = scaled_value((update.get("rollingUpdate") or {}).get("maxUnavailable", 1), desired,
                                    round_up=True) or 1
            unavailable = desired - len(avail_nodes)
            old = [p for n, p in current.items() if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) != rev]
            old.sort(key=lambda p: _daemon_node(p) in avail_nodes)  # unavailable old pods go first
            budget = max_unav - unavailable
            for p in old:
                if _daemon_node(p) not in avail_nodes:
                    self._delete_pod(p)
                elif budget > 0:
                    self._delete_pod(p)
                    budget -= 1
        pods = [p for p in self.t.pods_of(ds["metadata"]["uid"]) if _active(p)]
        scheduled = {_daemon_node(p) for p in pods}
        ready = [p for p in pods if is_pod_ready(p) and _daemon_node(p) in wanted]
        available = [p for p in ready if _available(p, min_ready, now)]
        if min_ready and len(available) < len(ready):
            self.t.later(now + min_ready, "daemonsets.apps", key)
        status: Obj = {
            "currentNumberScheduled": len(scheduled & wanted),
            "numberMisscheduled": len(scheduled - wanted),
            "desiredNumberScheduled": desired,
            "numberReady": len(ready),
            "observedGeneration": ds["metadata"].get("generation", 1),
            "updatedNumberScheduled": sum(
                1 for p in pods if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == rev
                and _daemon_node(p) in wanted),
            "numberAvailable": len(available),
            "numberUnavailable": max(0, desired - len(available)),
        }
        for field in ("updatedNumberScheduled", "numberAvailable", "numberUnavailable"):
            if status[field] == 0:
                del status[field]
        self._set_status("daemonsets.apps", ds, status)

    def _daemon_pod(self, ds: Obj, probe: Obj, node: str, rev: str) -> Obj:
        pod = _pod_from_template(ds, probe, ds["metadata"]["name"] + "-" + random_suffix(),
                                 labels={REVISION_LABEL: rev, "pod-template-generation":
                                         str(ds["metadata"].get("generation", 1))})
        affinity = pod["spec"].setdefault("affinity", {})
        affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}
        return pod


def _daemon_template(template: Obj) -> Obj:
    probe = clone(template)
    spec = probe.setdefault("spec", {})
    tolerations = spec.setdefault("tolerations", [])
    for tol in DAEMONSET_TOLERATIONS:
        if not any(t.get("key") == tol["key"] and t.get("effect") == tol["effect"] for t in tolerations):
            tolerations.append(dict(tol))
    return probe


def _daemon_node(pod: Obj) -> str | None:
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    terms = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
              .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
    for term in terms:
        for f in term.get("matchFields") or ():
            if f.get("key") == "metadata.name" and f.get("values"):
                return str(f["values"][0])
    return None


def _equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    def strip(t: Obj | None) -> Obj:
        t = clone(t or {})
        labels = (t.get("metadata") or {}).get("labels")
        if labels:
            labels.pop(HASH_LABEL, None)
        (t.setdefault("metadata", {})).pop("creationTimestamp", None)
        return t

    return strip(a) == strip(b)


def install(cluster: Cluster) -> None:
    """Register the workload controllers and the endpoints controller on the cluster."""
    cluster.add_reconciler(Controllers(tracker_for(cluster), Timing(cluster.settings)))
    endpoints.install(cluster)

