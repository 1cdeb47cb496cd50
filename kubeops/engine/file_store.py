"""`FileCheckpointStore`: run records as files, ``<state_dir>/runs/<run_id>.json``, mode 0600.

Each save replaces the file atomically (temp file in the same folder, fsync, rename, fsync the folder), so a crash
at any instant leaves either the previous record or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from kubeops.engine.checkpoints import CorruptRecord, RunRecord, UnreadableRecord, decode_record
from kubeops.errors import InputError


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
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CorruptRecord(self._unreadable(path, f"cannot be read: {exc.strerror}")) from None
        decoded = decode_record(raw, run_id=run_id)
        if isinstance(decoded, str):
            raise CorruptRecord(self._unreadable(path, decoded))
        return decoded

    def _unreadable(self, path: Path, reason: str) -> UnreadableRecord:
        return UnreadableRecord(
            run_id=path.stem,
            where=str(path),
            reason=reason,
            hint=(
                f"inspect it with `less {path}`; restore it from a backup if you have one, else check by hand "
                f"what the run had done (`invoke lock`, the nodes and groups it touched) and move it aside: "
                f"`mv {path} {path}.corrupt`"
            ),
        )

    def _read_all(self) -> list[tuple[Path, RunRecord | str]]:
        if not self.folder.is_dir():
            return []
        out: list[tuple[Path, RunRecord | str]] = []
        for path in sorted(self.folder.glob("*.json")):
            if path.name.startswith("."):
                continue  # a temp file of a save in progress (or left by a kill): not a record
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue  # removed between glob and read
            except OSError as exc:
                out.append((path, f"cannot be read: {exc.strerror}"))
                continue
            out.append((path, decode_record(raw, run_id=path.stem)))
        return out

    def save(self, *, record: RunRecord) -> None:
        if not self._ready:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._ready = True
        path = self._path(record["id"])
        data = self._encode(record)
        atomic_write(path, data, fsync=self.fsync)

    def list(self, *, cluster: str | None = None) -> list[RunRecord]:
        return [
            decoded
            for _, decoded in self._read_all()
            if not isinstance(decoded, str) and (cluster is None or decoded.get("cluster") == cluster)
        ]

    def unreadable(self, *, cluster: str | None = None) -> list[UnreadableRecord]:
        """Every undecodable record file: a file cannot say its cluster, so each is listed for every cluster."""
        return [self._unreadable(path, decoded) for path, decoded in self._read_all() if isinstance(decoded, str)]


def atomic_write(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace `path` with `data` so that a crash at any instant leaves the old file or the new one, mode 0600.

    A temp file in the same folder, fsync, rename over `path`, fsync the folder (the rename itself must last)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    if fsync:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
