"""Prometheus node_exporter textfile-collector metrics: each playbook's last run, for alerting on cron runs.

One file per cluster, ``kubeops_<cluster>.prom``, in a folder node_exporter reads
(``--collector.textfile.directory``). Each run rewrites it with every playbook's latest values, kept in a
hidden JSON sidecar (node_exporter reads only ``*.prom``). Writes are atomic (temp file in the same folder,
fsync, rename) so the collector never scrapes half a file, and serialised with an flock so two runs of one
cluster (lock concurrency > 1) do not drop each other's lines.

Metrics (labels ``cluster``, ``playbook``):
- ``kubeops_last_run_timestamp_seconds``: when the last run (invocation) finished;
- ``kubeops_last_run_duration_seconds``: how long that invocation took;
- ``kubeops_last_run_success``: 1 if it finished done, else 0;
- ``kubeops_last_run_status{status=...}``: 1 for the last status (done, failed, paused, rejected), 0 for others;
- ``kubeops_last_success_timestamp_seconds``: when a run last finished done (alert on ``time() - this``).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STATUSES = ("done", "failed", "paused", "rejected")
_NAME_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(entries: Mapping[str, Mapping[str, Any]], *, cluster: str) -> str:
    """The exposition text for `entries` (playbook -> {status, finished, duration_s, last_success})."""
    metrics = [
        ("kubeops_last_run_timestamp_seconds", "Unix time the last kubeops run of the playbook finished.", "finished"),
        ("kubeops_last_run_duration_seconds", "Seconds the last kubeops run of the playbook took.", "duration_s"),
        ("kubeops_last_run_success", "1 if the last kubeops run of the playbook finished done, else 0.", None),
        ("kubeops_last_success_timestamp_seconds", "Unix time a kubeops run of the playbook last succeeded.",
         "last_success"),
    ]
    lines: list[str] = []
    names = sorted(entries)
    for metric, help_text, key in metrics:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for playbook in names:
            entry = entries[playbook]
            if key is None:
                value: Any = 1 if entry.get("status") == "done" else 0
            else:
                value = entry.get(key)
                if value is None:
                    continue
            lines.append(f'{metric}{{cluster="{_label(cluster)}",playbook="{_label(playbook)}"}} {_num(value)}')
    metric = "kubeops_last_run_status"
    lines += [f"# HELP {metric} The status of the last kubeops run of the playbook (1 for that status).",
              f"# TYPE {metric} gauge"]
    for playbook in names:
        for status in STATUSES:
            value = 1 if entries[playbook].get("status") == status else 0
            lines.append(
                f'{metric}{{cluster="{_label(cluster)}",playbook="{_label(playbook)}",status="{status}"}} {value}'
            )
    return "\n".join(lines) + "\n"


def _num(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(round(number, 3))


class TextfileWriter:
    """Records each finished run of one cluster into ``<folder>/kubeops_<cluster>.prom``."""

    def __init__(self, folder: Path | str, *, cluster: str) -> None:
        self.folder = Path(folder)
        self.cluster = cluster
        safe = _NAME_SAFE.sub("_", cluster)
        self.path = self.folder / f"kubeops_{safe}.prom"
        self.state_path = self.folder / f".kubeops_{safe}.json"
        self.lock_path = self.folder / f".kubeops_{safe}.lock"

    def record(self, *, playbook: str, status: str, finished_s: float, duration_s: float) -> None:
        """Update `playbook`'s entry and rewrite the file atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            entries = self._load()
            entry = dict(entries.get(playbook) or {})
            entry.update(status=status, finished=round(finished_s, 3), duration_s=round(max(0.0, duration_s), 3))
            if status == "done":
                entry["last_success"] = round(finished_s, 3)
            entries[playbook] = entry
            _write_atomic(self.state_path, json.dumps(entries, indent=1, sort_keys=True))
            _write_atomic(self.path, render(entries, cluster=self.cluster))

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # node_exporter usually runs as another user
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
