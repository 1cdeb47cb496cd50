"""Run records: one JSON document per run, written atomically whenever a step starts, ends or records intent.

The record is the single source of truth for resume. This module holds what every backend shares: the record
shapes, the `CheckpointStore` protocol, an in-memory store for dry runs, and the query a bare `resume` makes.
The backends live beside it, one a module (`file_store`, `configmap_store`), and `stores.store_for` is the one
place that chooses between them, so no backend imports another.

Record shape (a JSON-able dict, see `RunRecord`); step statuses: pending, running, done, failed, skipped.
Run statuses: running, done, failed, paused (stopped by a maintenance window), rejected (invalid input found
before any mutation; not picked up by a bare `resume`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict

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
