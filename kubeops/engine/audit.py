"""The audit trail: who (role, token name) did what (launch, resume, cancel, lock break) to what, and when.

Two homes, for two readers: an append-only ``<state_dir>/audit.jsonl`` (mode 0600) that the console's Activity
page reads newest first, and the run record itself (``record["audit"]``), so `invoke show --json` tells who
launched, resumed or cancelled a run even when the state folder's log is gone. `AuditedStore` puts entries into
the record on the runner's own next save, because the runner rewrites the whole record from memory each time.
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubeops.engine.checkpoints import CheckpointStore, RunRecord, now_iso
from kubeops.engine.logging import redact_text


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a token's name and its role (never the token itself)."""

    name: str
    role: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action; `target` is a run id, a playbook or a lease; `detail` a short human sentence."""

    when: str
    role: str
    token_name: str
    action: str  # launch, resume, cancel, lock.break
    target: str
    run_id: str | None = None
    detail: str = ""

    @classmethod
    def make(cls, actor: Actor, action: str, target: str, *, run_id: str | None = None, detail: str = "") -> AuditEntry:
        return cls(when=now_iso(), role=actor.role, token_name=actor.name, action=action, target=target,
                   run_id=run_id, detail=redact_text(detail))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    """Append-only JSON lines under the state folder; each append is one `write` (O_APPEND), so lines never mix."""

    def __init__(self, state_dir: Path | str) -> None:
        self.path = Path(state_dir) / "audit.jsonl"

    def append(self, entry: AuditEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        line = (json.dumps(entry.to_dict(), sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def recent(self, *, limit: int = 200) -> list[dict[str, Any]]:
        """The last `limit` entries, newest first (a torn or foreign line is skipped, never fatal)."""
        if not self.path.is_file():
            return []
        tail: deque[str] = deque(maxlen=limit)
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            tail.extend(fh)
        out = []
        for line in reversed(tail):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


class AuditedStore:
    """A `CheckpointStore` that adds queued audit entries to the record on its next save."""

    def __init__(self, inner: CheckpointStore) -> None:
        self.inner = inner
        self._pending: list[dict[str, Any]] = []

    def note(self, entry: AuditEntry) -> None:
        """Queue `entry` for the record; the runner's next save (at the latest, the final one) writes it."""
        self._pending.append(entry.to_dict())

    def load(self, *, run_id: str) -> RunRecord | None:
        return self.inner.load(run_id=run_id)

    def save(self, *, record: RunRecord) -> None:
        if self._pending:
            trail = record.setdefault("audit", [])  # type: ignore[typeddict-item]
            trail.extend(self._pending)
            self._pending = []
        self.inner.save(record=record)

    def list(self, *, cluster: str | None = None) -> list[RunRecord]:
        return self.inner.list(cluster=cluster)
