"""A CheckpointStore backed by ConfigMaps, for in-cluster runs (CronJob pods have no lasting disk).

Selected with ``checkpoint_store: configmap`` in the inventory. Each run is one ConfigMap
``kubeops-run-<run id, lower case>`` in the lock's namespace, labelled ``app.kubernetes.io/managed-by=kubeops``
and ``kubeops.io/cluster=<cluster>``, holding the record as JSON under ``record.json``. The API server writes
an object atomically, so a pod killed at any instant leaves the previous record or the new one; the next pod
lists the cluster's records and resumes the unfinished one like the file store would.

Writes are PUTs carrying the resourceVersion of our last write: if another process wrote the same record
meanwhile (two pods resuming one run, which the cluster lock already prevents), the conflict is an error
rather than a silent overwrite. Records are redacted by the runner before they get here; a record is well
under the 1 MiB object limit (steps keep outputs, not logs).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from kubeops.clients import leases
from kubeops.engine.checkpoints import CorruptRecord, RunRecord, UnreadableRecord, decode_record
from kubeops.errors import Conflict, InputError

if TYPE_CHECKING:
    from kubeops.clients.kube import KubeClient
    from kubeops.settings import Settings

MANAGED_BY = "app.kubernetes.io/managed-by"
CLUSTER_LABEL = "kubeops.io/cluster"
RUN_LABEL = "kubeops.io/run-id"
KEY = "record.json"
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def label_value(value: str) -> str:
    """A valid label value (63 chars, alphanumeric at both ends) standing for `value`."""
    text = _LABEL_UNSAFE.sub("_", value)[:63].strip("_.-")
    return text or "none"


def configmap_name(run_id: str) -> str:
    """``kubeops-run-20261129t174500z-ab12``: a DNS-1123 name derived from the run id."""
    if not run_id or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", run_id):
        raise InputError(f"invalid run id {run_id!r}")
    return f"kubeops-run-{run_id.lower()}"[:253]


class ConfigMapCheckpointStore:
    """Run records as ConfigMaps in `namespace`."""

    def __init__(self, kube: KubeClient, *, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._versions: dict[str, str] = {}  # run id -> resourceVersion of our last read or write

    @classmethod
    def from_settings(cls, settings: Settings) -> ConfigMapCheckpointStore:
        """A store in the lock's namespace, through a client that never dry-runs (records must be real)."""
        from kubeops.clients.kube import KubeClient

        return cls(KubeClient.from_settings(settings.kube, dry_run=False), namespace=settings.lock.namespace)

    def load(self, *, run_id: str) -> RunRecord | None:
        obj = leases.get_configmap(self.kube, self.namespace, configmap_name(run_id))
        if obj is None:
            return None
        self._versions[run_id] = obj["metadata"].get("resourceVersion", "")
        return self._decode(obj)

    def save(self, *, record: RunRecord) -> None:
        rid = record["id"]
        name = configmap_name(rid)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {
                    MANAGED_BY: "kubeops",
                    CLUSTER_LABEL: label_value(str(record.get("cluster") or "")),
                    RUN_LABEL: label_value(rid),
                },
                "annotations": {"kubeops.io/status": str(record.get("status"))},
            },
            "data": {KEY: json.dumps(record, separators=(",", ":"), default=str)},
        }
        version = self._versions.get(rid)
        if version is None:
            try:
                created = leases.create_configmap(self.kube, self.namespace, body)
                self._versions[rid] = created["metadata"].get("resourceVersion", "")
                return
            except Conflict:
                current = leases.get_configmap(self.kube, self.namespace, name)  # a resume by a new pod
                version = (current or {}).get("metadata", {}).get("resourceVersion")
        if version:
            body["metadata"]["resourceVersion"] = version
        try:
            written = leases.replace_configmap(self.kube, self.namespace, body)
        except Conflict:
            raise Conflict(
                f"run record {self.namespace}/{name} was changed by another process while this run wrote it",
                status=409,
                hint="two processes are running the same run; check `invoke lock` and `invoke runs`",
            ) from None
        self._versions[rid] = written["metadata"].get("resourceVersion", "")

    def _list_objects(self, cluster: str | None) -> list[dict[str, Any]]:
        selector = f"{MANAGED_BY}=kubeops,{RUN_LABEL}"
        if cluster is not None:
            selector += f",{CLUSTER_LABEL}={label_value(cluster)}"
        return list(leases.list_configmaps(self.kube, self.namespace, label_selector=selector))

    def list(self, *, cluster: str | None = None) -> list[RunRecord]:
        out: list[RunRecord] = []
        for obj in self._list_objects(cluster):
            record = self._decode_or_reason(obj)
            if isinstance(record, str) or (cluster is not None and record.get("cluster") != cluster):
                continue
            out.append(record)
        return sorted(out, key=lambda r: r.get("id", ""))

    def unreadable(self, *, cluster: str | None = None) -> list[UnreadableRecord]:
        out = []
        for obj in self._list_objects(cluster):
            reason = self._decode_or_reason(obj)
            if isinstance(reason, str):
                out.append(self._unreadable(obj, reason))
        return sorted(out, key=lambda u: u.run_id)

    def _run_id(self, obj: dict[str, Any]) -> str:
        labels = obj.get("metadata", {}).get("labels") or {}
        name = str(obj.get("metadata", {}).get("name", ""))
        return str(labels.get(RUN_LABEL) or name.removeprefix("kubeops-run-"))

    def _decode_or_reason(self, obj: dict[str, Any]) -> RunRecord | str:
        text = (obj.get("data") or {}).get(KEY)
        if text is None:
            return f"no {KEY} key in the ConfigMap"
        return decode_record(text, run_id=None)  # names are lower-cased and labels sanitised: no exact id to match

    def _unreadable(self, obj: dict[str, Any], reason: str) -> UnreadableRecord:
        name = obj.get("metadata", {}).get("name")
        where = f"configmap {self.namespace}/{name}"
        return UnreadableRecord(
            run_id=self._run_id(obj),
            where=where,
            reason=reason,
            hint=(
                f"inspect it with `kubectl -n {self.namespace} get configmap {name} -o yaml`; check by hand what "
                f"the run had done, then remove it: `kubectl -n {self.namespace} delete configmap {name}`"
            ),
        )

    def _decode(self, obj: dict[str, Any]) -> RunRecord | None:
        decoded = self._decode_or_reason(obj)
        if isinstance(decoded, str):
            raise CorruptRecord(self._unreadable(obj, decoded))
        return decoded
