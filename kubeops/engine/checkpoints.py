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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """A stored run record that cannot be decoded (disk full mid-write on another filesystem, a hand edit).

    Listed beside the readable runs instead of vanishing: a half-done maintenance run must stay visible."""

    run_id: str
    where: str  # a file path, or namespace/name of a ConfigMap
    reason: str
    hint: str


class CorruptRecord(InputError):
    """`show`/`resume` of a run whose record cannot be decoded: says where it is and what to do."""

    def __init__(self, unreadable: UnreadableRecord) -> None:
        super().__init__(
            f"run {unreadable.run_id}: record {unreadable.where} is unreadable ({unreadable.reason}); "
            "it can be neither shown nor resumed",
            hint=unreadable.hint,
        )
        self.unreadable = unreadable


def decode_record(text: str | bytes, *, run_id: str | None) -> RunRecord | str:
    """The record in `text`, or a short reason it is not one (empty, truncated, not JSON, wrong shape).

    `run_id` is the id the record must carry (its file name); None where the store cannot tell exactly."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"not UTF-8 text (byte {exc.start})"
    if not text.strip():
        return "empty (0 bytes of JSON)"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        body = text.strip()
        if exc.pos >= len(text.rstrip()) or (body.startswith("{") and not body.endswith("}")):
            return f"truncated: the JSON stops after {len(text.encode())} bytes"
        return f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    if not isinstance(record, dict):
        return f"not a run record: a JSON {type(record).__name__}, not an object"
    missing = [key for key in ("id", "status", "steps") if key not in record]
    if missing:
        return f"not a run record: no {', '.join(repr(k) for k in missing)}"
    if not isinstance(record["steps"], list) or not isinstance(record.get("playbook", {}), dict):
        return "not a run record: 'steps' must be a list and 'playbook' an object"
    if not all(isinstance(step, dict) for step in record["steps"]):
        return "not a run record: every step must be an object"
    if run_id is not None and record["id"] != run_id:
        return f"holds run {record['id']!r}, not {run_id!r}"
    return record  # type: ignore[no-any-return]


class CheckpointStore(Protocol):
    """Where run records live. Implementations must make `save` atomic."""

    def load(self, *, run_id: str) -> RunRecord | None:
        """The record of `run_id`, or None when there is none."""
        ...

    def save(self, *, record: RunRecord) -> None:
        """Replace the record `record["id"]` atomically."""
        ...

    def list(self, *, cluster: str | None = None) -> list[RunRecord]:
        """All readable records (of `cluster` when given), oldest first."""
        ...

    def unreadable(self, *, cluster: str | None = None) -> list[UnreadableRecord]:
        """Stored records that cannot be decoded (of `cluster` when the store can tell), oldest first."""
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

    def unreadable(self, *, cluster: str | None = None) -> list[UnreadableRecord]:
        return []


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
    return max(candidates, key=start_order) if candidates else None


def start_order(record: Mapping[str, Any]) -> tuple[str, str]:
    """Sort key, oldest first: the start time (milliseconds), then the id.

    Why not the id alone: ids carry the start second and a random tail, so two runs started in the same second
    would be ordered by chance, and a bare `resume` could pick the older one."""
    return str(record.get("started") or ""), str(record.get("id") or "")
