"""Run records: one JSON document per run, written atomically whenever a step starts, ends or records intent.

The record is the single source of truth for resume. `CheckpointStore` is the seam for other backends (a
ConfigMap store for in-cluster runs); `FileCheckpointStore` keeps ``<state_dir>/runs/<run_id>.json``, mode 0600,
replaced atomically (temp file in the same folder, fsync, rename, fsync the folder), so a crash at any instant
leaves either the previous record or the new one, never a torn file.

Record shape (a JSON-able dict, see `RunRecord`); step statuses: pending, running, done, failed, skipped.
Run statuses: running, done, failed, paused (stopped by a maintenance window), rejected (invalid input found
before any mutation; not picked up by a bare `resume`).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypedDict

from kubeops.errors import InputError

RECORD_VERSION = 1
RUN_STATUSES = ("running", "done", "failed", "paused", "rejected")
STEP_STATUSES = ("pending", "running", "done", "failed", "skipped")
UNFINISHED = ("running", "failed", "paused")


class StepRecord(TypedDict, total=False):
    name: str
    action: str
    phase: str  # "main" or "cleanup"
    status: str
    attempts: int
    outputs: dict[str, Any] | None
    intent: dict[str, Any] | None
    plan: dict[str, Any] | None  # dry run: {"summary", "details"}
    started: str | None
    finished: str | None
    error: str | None
    source: str | None


class RunRecord(TypedDict, total=False):
    version: int
    id: str
    playbook: dict[str, str]  # name, path, hash
    params: dict[str, Any]
    cluster: str
    dry_run: bool
    status: str
    started: str
    finished: str | None
    error: str | None
    failed_step: str | None
    host: str
    pid: int
    steps: list[StepRecord]


def now_iso() -> str:
    """UTC timestamp with milliseconds, as stored in records."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    """Sortable by start time: ``20261129T174500Z-ab12``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


class CheckpointStore(Protocol):
    """Where run records live. Implementations must make `save` atomic."""

    def load(self, *, run_id: str) -> RunRecord | None:
        """The record of `run_id`, or None when there is none."""
        ...

    def save(self, *, record: RunRecord) -> None:
        """Replace the record `record["id"]` atomically."""
        ...

    def list(self, *, cluster: str | None = None) -> list[RunRecord]:
        """All records (of `cluster` when given), oldest first."""
        ...


class MemoryCheckpointStore:
    """Keeps records in memory: used for dry runs (which must leave no resumable record) and tests."""

    def __init__(self) -> None:
        self._records: dict[str, str] = {}

    def load(self, *, run_id: str) -> RunRecord | None:
        text = self._records.get(run_id)
        return json.loads(text) if text is not None else None

    def save(self, *, record: RunRecord) -> None:
        self._records[record["id"]] = json.dumps(record)

    def list(self, *, cluster: str | None = None) -> list[RunRecord]:
        records = [json.loads(t) for _, t in sorted(self._records.items())]
        return [r for r in records if cluster is None or r.get("cluster") == cluster]


class FileCheckpointStore:
    """One file per run under ``<state_dir>/runs``."""

    def __init__(self, state_dir: Path | str, *, fsync: bool = True) -> None:
        self.folder = Path(state_dir) / "runs"
        self.fsync = fsync
        self._ready = False
        self._encoded: dict[str, list[tuple[Any, str]]] = {}  # run id -> per-step (copy, JSON) of the last save

    def _encode(self, record: RunRecord) -> bytes:
        """JSON of the record, re-encoding only the steps that changed since the last save (long playbooks)."""
        cache = self._encoded.setdefault(record["id"], [])
        parts: list[str] = []
        for index, step in enumerate(record.get("steps", [])):
            if index < len(cache) and cache[index][0] == step:
                parts.append(cache[index][1])
                continue
            text = json.dumps(step, separators=(",", ":"), default=str)
            item = (json.loads(text), text)
            if index < len(cache):
                cache[index] = item
            else:
                cache.append(item)
            parts.append(text)
        del cache[len(parts) :]
        head = {k: v for k, v in record.items() if k != "steps"}
        text = json.dumps(head, separators=(",", ":"), default=str)
        sep = "," if head else ""
        return (text[:-1] + sep + '"steps":[' + ",".join(parts) + "]}").encode()

    def _path(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise InputError(f"invalid run id {run_id!r}")
        return self.folder / f"{run_id}.json"

    def load(self, *, run_id: str) -> RunRecord | None:
        path = self._path(run_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"run record {path} is not valid JSON: {exc}") from None

    def save(self, *, record: RunRecord) -> None:
        if not self._ready:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._ready = True
        path = self._path(record["id"])
        data = self._encode(record)
        fd, tmp = tempfile.mkstemp(prefix=f".{record['id']}.", suffix=".tmp", dir=self.folder)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, path)
        if self.fsync:
            dir_fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def list(self, *, cluster: str | None = None) -> list[RunRecord]:
        if not self.folder.is_dir():
            return []
        out: list[RunRecord] = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if cluster is None or record.get("cluster") == cluster:
                out.append(record)
        return out


def store_for(settings: Any) -> CheckpointStore:
    """The store named by `settings.checkpoint_store` ("file"; "configmap" is provided by the scheduling module)."""
    kind = getattr(settings, "checkpoint_store", "file")
    if kind == "file":
        return FileCheckpointStore(settings.state_dir)
    try:
        from kubeops.engine import configmap_store  # type: ignore[attr-defined]
    except ImportError:
        raise InputError(f"checkpoint store {kind!r} is not available in this build") from None
    return configmap_store.ConfigMapCheckpointStore.from_settings(settings)  # type: ignore[no-any-return]


def latest_unfinished(
    store: CheckpointStore, *, cluster: str, where: Callable[[RunRecord], bool] | None = None
) -> RunRecord | None:
    """The newest run of `cluster` that is running, failed or paused (what a bare `resume` continues).

    `where` narrows the candidates further (a schedule continues only its own playbook and parameters)."""
    candidates = [
        r
        for r in store.list(cluster=cluster)
        if r.get("status") in UNFINISHED and not r.get("dry_run") and (where is None or where(r))
    ]
    return max(candidates, key=lambda r: r["id"]) if candidates else None
