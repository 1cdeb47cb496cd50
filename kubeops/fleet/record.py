"""The fleet record: which run belongs to which cluster, in which order, and how each ended.

One JSON document per fleet, ``<state_dir>/fleets/<fleet_id>.json`` (mode 0600), replaced atomically on every
change. A member's run id is written BEFORE its run starts, so a crash at any instant leaves either no run (the
resume starts it under that id) or a run record the resume continues: no cluster is ever run twice.

Member statuses: ``pending`` (not started yet), ``running`` (started; after a crash: unfinished), ``done``,
``failed`` (a step failed; resumable), ``rejected`` (bad input found before any change; nothing changed),
``locked`` (another run held the cluster lock), ``paused`` (outside the maintenance window).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from kubeops.engine.file_store import atomic_write
from kubeops.errors import InputError

FLEET_RECORD_VERSION = 1
MEMBER_STATUSES = ("pending", "running", "done", "failed", "rejected", "locked", "paused")
# The fleet's own status is its worst member's, in this order (worst first).
SEVERITY = ("failed", "rejected", "locked", "paused", "running", "pending", "done")


class MemberRecord(TypedDict, total=False):
    cluster: str
    run_id: str | None
    status: str
    started: str | None
    finished: str | None
    duration_s: float  # wall time of every attempt together
    failed_step: str | None
    error: str | None
    attempts: int  # 1 for a run started once; +1 for each resume or fresh restart


class FleetRecord(TypedDict, total=False):
    version: int
    id: str
    playbook: str  # what the fleet started: a playbook name or absolute path (loaded again for unstarted clusters)
    playbook_hash: str  # its content hash: a resume refuses to start clusters on a changed playbook unless forced
    task: str  # the task that started it ("deploy", "run", "decommission", ...), for people reading `fleets`
    params: dict[str, Any]
    params_redacted: bool  # a parameter looked like a secret and was masked: unstarted clusters cannot start
    clusters: list[str]  # the order
    canary: int
    parallel: int
    max_failures: int | str | None  # after the canaries, no further start once this many failed; "P%": more than
    # that share of the clusters (None: no limit)
    status: str
    started: str
    finished: str | None
    host: str
    pid: int
    members: dict[str, MemberRecord]
    stopped_by: str | None  # the canary cluster whose failure stopped the fleet
    stopped_by_failures: list[str] | None  # the clusters whose failures reached max_failures, when one was left


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_fleet_id() -> str:
    """Sortable by start time, and never mistaken for a run id: ``fleet-20261204T050000Z-ab12``."""
    import secrets

    return "fleet-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def fleet_status(members: dict[str, MemberRecord]) -> str:
    """The worst member status (see `SEVERITY`); ``done`` only when every cluster is done."""
    statuses = {m.get("status", "pending") for m in members.values()}
    return next((s for s in SEVERITY if s in statuses), "done")


class FleetStore:
    """Fleet records as files under ``<state_dir>/fleets``."""

    def __init__(self, state_dir: Path | str) -> None:
        self.folder = Path(state_dir) / "fleets"

    def _path(self, fleet_id: str) -> Path:
        if not fleet_id or "/" in fleet_id or fleet_id.startswith("."):
            raise InputError(f"invalid fleet id {fleet_id!r}")
        return self.folder / f"{fleet_id}.json"

    def load(self, fleet_id: str) -> FleetRecord | None:
        path = self._path(fleet_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return json.loads(text)  # type: ignore[no-any-return]
        except json.JSONDecodeError as exc:
            raise InputError(f"fleet record {path} is not valid JSON: {exc}") from None

    def get(self, fleet_id: str) -> FleetRecord:
        """The record of `fleet_id`; an unknown id is an input error."""
        record = self.load(fleet_id)
        if record is None:
            raise InputError(f"no fleet {fleet_id!r} in {self.folder}", hint="list fleets with `invoke fleets`")
        return record

    def save(self, record: FleetRecord) -> None:
        """Atomically replace the record (temp file, fsync, rename, fsync the folder)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(record["id"])
        data = json.dumps(record, indent=1, default=str).encode()
        atomic_write(path, data)

    def list(self) -> list[FleetRecord]:
        """Every readable fleet record, oldest first."""
        if not self.folder.is_dir():
            return []
        out: list[FleetRecord] = []
        for path in sorted(self.folder.glob("fleet-*.json")):
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError):
                continue
        return out
