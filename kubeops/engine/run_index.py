"""Run summaries, filtered and paginated, for screens that list thousands of runs (the console's Runs page).

Why: `api.list_runs` parses every record in full, which is right for `invoke runs` once, and too slow for a
page a browser reloads over 10,000 records. `RunIndex` keeps one small summary per record file, re-reading
only files whose size or modification time changed; other stores (ConfigMaps) are summarised from `list`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubeops.engine.checkpoints import CheckpointStore, RunRecord, UnreadableRecord, decode_record
from kubeops.engine.file_store import FileCheckpointStore
from kubeops.engine.stores import store_for
from kubeops.settings import Settings


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a list of runs shows: playbook, cluster, status, start, duration, the failed (or current) step."""

    id: str
    playbook: str
    cluster: str
    status: str
    dry_run: bool
    started: str
    finished: str | None
    failed_step: str | None
    step: str  # the running/failed step, else the first pending one, else "-"
    error: str | None
    params: dict[str, Any]  # as recorded (secrets already masked)

    @property
    def duration_s(self) -> float | None:
        try:
            start = datetime.fromisoformat(self.started.replace("Z", "+00:00"))
            end = datetime.fromisoformat(self.finished.replace("Z", "+00:00")) if self.finished else None
        except (AttributeError, ValueError):
            return None
        return (end - start).total_seconds() if end else None


@dataclass(frozen=True, slots=True)
class RunPage:
    items: list[RunSummary]
    total: int  # matching the filter
    offset: int
    limit: int


def current_step(record: RunRecord) -> str:
    steps = record.get("steps") or []
    for s in steps:
        if s.get("status") in ("running", "failed"):
            return str(s.get("name"))
    for s in steps:
        if s.get("status") == "pending":
            return str(s.get("name"))
    return "-"


def summarise(record: RunRecord) -> RunSummary:
    return RunSummary(
        id=str(record.get("id")),
        playbook=str((record.get("playbook") or {}).get("name", "?")),
        cluster=str(record.get("cluster", "?")),
        status=str(record.get("status", "?")),
        dry_run=bool(record.get("dry_run")),
        started=str(record.get("started") or ""),
        finished=record.get("finished"),
        failed_step=record.get("failed_step"),
        step=current_step(record),
        error=record.get("error"),
        params=dict(record.get("params") or {}),
    )


def summarise_unreadable(broken: UnreadableRecord) -> RunSummary:
    """A record that cannot be decoded still gets a row (status ``unreadable``, the reason as its error): a
    half-done maintenance run must not vanish from the list because its file was cut short."""
    return RunSummary(
        id=broken.run_id, playbook="?", cluster="?", status="unreadable", dry_run=False, started="",
        finished=None, failed_step=None, step="-", error=f"{broken.where}: {broken.reason}", params={},
    )


def _newest_first(summary: RunSummary) -> tuple[bool, str, str]:
    """Sort key (reversed): unreadable records on top, where someone will see them, then by start time."""
    return (summary.status == "unreadable", summary.started, summary.id)


class RunIndex:
    """Summaries of the runs in `settings`' store, refreshed incrementally on each query."""

    def __init__(self, settings: Settings, *, store: CheckpointStore | None = None) -> None:
        self.store = store or store_for(settings)
        self._cache: dict[str, tuple[tuple[int, int], RunSummary]] = {}  # file name -> ((mtime_ns, size), summary)
        self._sorted: list[RunSummary] = []
        self._folder_mtime_ns: int | None = None  # of the last full scan
        self._mutex = threading.Lock()

    def summaries(self) -> list[RunSummary]:
        """Every run, unreadable records first, then newest first (by start time, not id: two ids of the same
        second sort by their random tail)."""
        if not isinstance(self.store, FileCheckpointStore):
            found = [summarise(r) for r in self.store.list()]
            finder = getattr(self.store, "unreadable", None)
            found += [summarise_unreadable(u) for u in (finder() if finder else ())]
            return sorted(found, key=_newest_first, reverse=True)
        folder = self.store.folder
        with self._mutex:
            # Every save renames a temp file into the folder, so an unchanged folder mtime means unchanged
            # records; trusted only when it is over a second old (coarse timestamps could hide a fresh save).
            try:
                folder_mtime = folder.stat().st_mtime_ns
            except FileNotFoundError:
                folder_mtime = None
            if (folder_mtime is not None and folder_mtime == self._folder_mtime_ns
                    and time.time_ns() - folder_mtime > 1_000_000_000):
                return list(self._sorted)
            seen: dict[str, tuple[tuple[int, int], RunSummary]] = {}
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                entries = []
            for entry in entries:
                if not entry.name.endswith(".json") or entry.name.startswith("."):
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                key = (st.st_mtime_ns, st.st_size)
                cached = self._cache.get(entry.name)
                if cached is not None and cached[0] == key:
                    seen[entry.name] = cached
                    continue
                try:
                    with open(entry.path, "rb") as fh:
                        decoded = decode_record(fh.read(), run_id=entry.name[: -len(".json")])
                except OSError as exc:
                    decoded = f"cannot be read: {exc.strerror}"
                if isinstance(decoded, str):
                    broken = UnreadableRecord(run_id=entry.name[: -len(".json")], where=entry.path, reason=decoded,
                                              hint="")
                    seen[entry.name] = (key, summarise_unreadable(broken))
                else:
                    seen[entry.name] = (key, summarise(decoded))
            self._cache = seen
            self._sorted = sorted((s for _, s in seen.values()), key=_newest_first, reverse=True)
            self._folder_mtime_ns = folder_mtime
            return list(self._sorted)

    def page(
        self,
        *,
        status: str | None = None,
        playbook: str | None = None,
        cluster: str | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> RunPage:
        """Runs matching every filter given (`text`: part of the id, playbook or failed step), newest first."""
        def keep(s: RunSummary) -> bool:
            return (
                (not status or s.status == status)
                and (not playbook or s.playbook == playbook)
                and (not cluster or s.cluster == cluster or s.status == "unreadable")  # its cluster is unknown
                and (not text or any(text in (v or "") for v in (s.id, s.playbook, s.failed_step)))
            )

        matching = [s for s in self.summaries() if keep(s)]
        offset = max(0, offset)
        return RunPage(matching[offset: offset + limit], len(matching), offset, limit)

    def playbooks(self) -> list[str]:
        return sorted({s.playbook for s in self.summaries()})


def summary_fields(summary: RunSummary) -> dict[str, Any]:
    """JSON-able form (the console's JSON view)."""
    return {f: getattr(summary, f) for f in RunSummary.__slots__} | {"duration_s": summary.duration_s}
