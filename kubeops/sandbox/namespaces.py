"""Namespace life: what kube-controller-manager's namespace, ServiceAccount and root-CA-publisher controllers do.

Why: a real user (or our own playbooks) creates a namespace and finds ``serviceaccount/default`` and
``configmap/kube-root-ca.crt`` in it; deletes one and sees it ``Terminating`` while its pods shut down gracefully,
stuck there while some object keeps a finalizer, and gone once it is empty. The sandbox must not be quicker or
kinder than that, or a rehearsal would pass where the cluster does not.

- ServiceAccount controller: every namespace that is not terminating gets ``serviceaccount/default``, again
  whenever it is deleted.
- Root CA publisher: every such namespace gets ``configmap/kube-root-ca.crt`` (``data["ca.crt"]``: the PEM of one
  self-signed EC P-256 CA made for this sandbox with `cryptography`; its ``kubernetes.io/description`` annotation
  is upstream's), again whenever it is deleted. A kube-root-ca.crt that is already there (a snapshot's, say) is
  left as it is. Without `cryptography` nothing is published.
- Namespace controller (``pkg/controller/namespace/deletion``): for a namespace with ``deletionTimestamp`` it
  deletes every namespaced object in it through the store's ordinary delete (pods with their own grace period,
  so the kubelet simulation terminates them; dependents by garbage collection), then writes the five deletion
  conditions with upstream's types, reasons and messages, and, once nothing is left, removes the ``kubernetes``
  finalizer through the finalize subresource, upon which the store removes the namespace. Objects with
  ``metadata.finalizers`` stay until those are removed, and so does the namespace (NamespaceFinalizersRemaining).
  Pods still there after the longest grace period of the namespace's pods, counted from the namespace's deletion,
  give NamespaceDeletionContentFailure, as upstream.

The API-server half (Terminating phase on delete, finalize subresource, the 403 on creates in a terminating
namespace, undeletable system namespaces) lives in `kubeops.sandbox.store`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubeops.sandbox.status import ApiError
from kubeops.sandbox.store import clone, parse_time, rfc3339

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster
    from kubeops.sandbox.store import Store, WatchEvent

__all__ = ["ROOT_CA_CONFIGMAP", "NamespaceController", "deletion_conditions", "install", "make_root_ca"]

log = logging.getLogger("kubeops.sandbox.namespaces")
Obj = dict[str, Any]

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")
FINALIZER = "kubernetes"
SWEEP_S = 1.0  # terminating namespaces are looked at again this often even when nothing in them changed

# type -> (reason, message) when all is well, in upstream's order
_OK = {
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": ("ContentDeleted",
                                        "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}


def make_root_ca(now: float) -> str | None:
    """A fresh self-signed CA certificate (PEM), or None when `cryptography` is not installed.

    EC P-256 takes ~5 ms to make; the key is thrown away, since the sandbox serves plain HTTP and nothing signs."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return None
    from datetime import UTC, datetime, timedelta

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    start = datetime.fromtimestamp(now, UTC) - timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def deletion_conditions(old: list[Obj], failures: list[str], remaining: dict[str, int],
                        finalizers: dict[str, int], now: float) -> list[Obj]:
    """The namespace's new ``status.conditions`` (upstream's status_condition_utils): the five deletion
    conditions, True with what is wrong or False with the all-clear, lastTransitionTime kept unless the status
    flips. ``remaining`` counts objects left by ``"<plural>.<group>"``; ``failures`` are content errors."""
    found: dict[str, tuple[str, str]] = {}
    if failures:
        found["NamespaceDeletionContentFailure"] = (
            "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(failures)} remaining: {', '.join(sorted(failures))}")
    if remaining:
        parts = sorted(f"{gr} has {n} resource instances" for gr, n in remaining.items())
        found["NamespaceContentRemaining"] = ("SomeResourcesRemain",
                                              f"Some resources are remaining: {', '.join(parts)}")
    if finalizers:
        parts = sorted(f"{f} in {n} resource instances" for f, n in finalizers.items())
        found["NamespaceFinalizersRemaining"] = (
            "SomeFinalizersRemain", f"Some content in the namespace has finalizers remaining: {', '.join(parts)}")
    out = [clone(c) for c in old]
    by_type = {c.get("type"): c for c in out}
    for ctype, ok in _OK.items():
        status = "True" if ctype in found else "False"
        reason, message = found.get(ctype, ok)
        current = by_type.get(ctype)
        if current is None:
            out.append({"type": ctype, "status": status, "lastTransitionTime": rfc3339(now), "reason": reason,
                        "message": message})
        elif (current.get("status"), current.get("reason"), current.get("message")) != (status, reason, message):
            if current.get("status") != status:
                current["lastTransitionTime"] = rfc3339(now)
            current.update(status=status, reason=reason, message=message)
    return out


class NamespaceController:
    """The three controllers of the module docstring, driven by store events and a slow sweep."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.store: Store = cluster.store
        self.root_ca = make_root_ca(cluster.clock.now())
        if self.root_ca is None:
            log.warning("cryptography is not installed: no kube-root-ca.crt ConfigMaps are published")
        self.dirty: set[str] = set()  # namespaces to look at on the next tick
        self.terminating: set[str] = set()
        self._next_sweep = 0.0
        with self.store.lock:
            self.store.subscribe(self._on_event)
            for ns in self.store.iter("namespaces"):
                self._note_namespace(ns)

    def _note_namespace(self, ns: Obj) -> None:
        name = ns["metadata"]["name"]
        self.dirty.add(name)
        if ns["metadata"].get("deletionTimestamp"):
            self.terminating.add(name)

    def _on_event(self, event: WatchEvent) -> None:
        """Under the store lock on the writer's thread: only set membership, nothing slow."""
        if event.resource == "namespaces":
            if event.type == "DELETED":
                self.terminating.discard(event.name)
                self.dirty.discard(event.name)
            else:
                self._note_namespace(event.obj)
        elif event.namespace in self.terminating or (event.type == "DELETED" and (
                (event.resource == "serviceaccounts" and event.name == "default")
                or (event.resource == "configmaps" and event.name == ROOT_CA_CONFIGMAP))):
            self.dirty.add(event.namespace)

    def reconcile(self, cluster: Any, now: float) -> None:
        with self.store.lock:
            if now >= self._next_sweep:
                self._next_sweep = now + SWEEP_S
                self.dirty |= self.terminating
            todo, self.dirty = self.dirty, set()
        for name in sorted(todo):
            try:
                self.sync(name, now)
            except ApiError as exc:  # a conflicting write meanwhile: look again next tick
                log.debug("namespace %s: %s", name, exc.message)
                with self.store.lock:
                    self.dirty.add(name)

    def sync(self, name: str, now: float) -> None:
        ns = self.store.try_get("namespaces", None, name, copy=False)
        if ns is None:
            return
        if ns["metadata"].get("deletionTimestamp"):
            self._terminate(ns, now)
        else:
            self._publish(name)

    # ---- ServiceAccount controller and root CA publisher ------------------------------------------------------

    def _publish(self, ns: str) -> None:
        wanted: list[tuple[str, Obj]] = [("serviceaccounts", {"metadata": {"name": "default"}})]
        if self.root_ca is not None:
            wanted.append(("configmaps", {"metadata": {"name": ROOT_CA_CONFIGMAP,
                                                       "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                                          "data": {"ca.crt": self.root_ca}}))
        for resource, obj in wanted:
            if self.store.try_get(resource, ns, obj["metadata"]["name"], copy=False) is not None:
                continue
            # 409: created meanwhile; 403/404: the namespace is terminating or gone; upstream gives up on those too
            with contextlib.suppress(ApiError):
                self.store.create(resource, obj, namespace=ns)

    # ---- namespace controller ---------------------------------------------------------------------------------

    def _terminate(self, ns: Obj, now: float) -> None:
        name = ns["metadata"]["name"]
        if (ns.get("status") or {}).get("phase") != "Terminating":  # loaded that way: upstream fixes it first
            def terminating(status: Obj) -> None:
                status["phase"] = "Terminating"

            ns = self._write_status(name, terminating) or ns
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return  # finalized already; the store removes it when the last finalizer goes
        deleted_at = parse_time(ns["metadata"]["deletionTimestamp"])
        resources = [i for i in self.cluster.catalog.resources
                     if i.namespaced and "delete" in i.verbs and i.key not in self.cluster.group_handlers]
        # owners (workloads, listed after pods) first: their pods then go by garbage collection, each deleted once
        for info in reversed(resources):
            for obj in self.store.list(info.key, namespace=name, copy=False).items:
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                with contextlib.suppress(ApiError):  # gone or changed meanwhile: counted below either way
                    self.store.delete(info.key, name, obj["metadata"]["name"], propagation_policy="Background")
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        failures: list[str] = []
        for info in resources:
            items = self.store.list(info.key, namespace=name, copy=False).items
            if not items:
                continue
            remaining[f"{info.plural}.{info.group}"] = len(items)
            held = 0
            for obj in items:
                for f in obj["metadata"].get("finalizers") or ():
                    finalizers[f] = finalizers.get(f, 0) + 1
                held += bool(obj["metadata"].get("finalizers"))
            if not held and not (info.key == "pods" and now - deleted_at < _pod_grace_estimate(items)):
                failures.append(f"unexpected items still remain in namespace: {name} for gvr: "
                                f"{info.group}/{info.versions[0]}, Resource={info.plural}")

        def conditions(status: Obj) -> None:
            status["conditions"] = deletion_conditions(status.get("conditions") or [], failures, remaining,
                                                       finalizers, now)

        self._write_status(name, conditions)
        if remaining:
            return
        fresh = self.store.try_get("namespaces", None, name)
        if fresh is None or fresh["metadata"].get("uid") != ns["metadata"].get("uid"):
            return
        spec = fresh.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
        self.store.update("namespaces", fresh, subresource="finalize")

    def _write_status(self, name: str, change: Callable[[Obj], None]) -> Obj | None:
        """Apply ``change`` to the namespace's status; no write when it changes nothing."""

        def write(o: Obj) -> Obj | bool:
            before = clone(o.get("status") or {})
            status = o.setdefault("status", {})
            change(status)
            return o if status != before else False

        return self.store.modify("namespaces", None, name, write)


def _pod_grace_estimate(pods: list[Obj]) -> float:
    """Upstream's estimate for pods: the longest terminationGracePeriodSeconds of those not finished."""
    return max((float((p.get("spec") or {}).get("terminationGracePeriodSeconds") or 0) for p in pods
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")), default=0.0)


def install(cluster: Cluster) -> None:
    """Register the namespace, ServiceAccount and root-CA-publisher controllers; fill namespaces before serving."""
    controller = NamespaceController(cluster)
    cluster.add_reconciler(controller)
    cluster.on_prepare.append(lambda c: controller.reconcile(c, c.clock.now()))
