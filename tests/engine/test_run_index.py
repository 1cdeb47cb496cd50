"""`RunIndex`: the Runs page's summaries follow the store as records are written, changed and removed."""

from __future__ import annotations

import os
from pathlib import Path

from kubeops.engine.file_store import FileCheckpointStore
from kubeops.engine.run_index import RunIndex


class _Settings:
    checkpoint_store = "file"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir


def _record(run_id: str, status: str, **extra: object) -> dict[str, object]:
    return {"id": run_id, "playbook": {"name": "drain-node"}, "cluster": "c1", "status": status,
            "started": "2026-01-01T00:00:00.000Z", "finished": None, "steps": [
                {"name": "cordon", "status": "done"}, {"name": "drain", "status": "running"}], **extra}


def test_summaries_follow_changes_newest_first(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path, fsync=False)
    index = RunIndex(_Settings(tmp_path), store=store)  # type: ignore[arg-type]
    assert index.page().items == []
    store.save(record=_record("20260101T000001Z-a", "running"))  # type: ignore[arg-type]
    store.save(record=_record("20260101T000002Z-b", "done", cluster="c2"))  # type: ignore[arg-type]
    page = index.page()
    assert [s.id for s in page.items] == ["20260101T000002Z-b", "20260101T000001Z-a"]
    assert page.items[1].step == "drain"
    store.save(record=_record("20260101T000001Z-a", "failed", failed_step="drain",  # type: ignore[arg-type]
                              finished="2026-01-01T00:01:30.000Z"))
    failed = index.page(status="failed").items
    assert [s.id for s in failed] == ["20260101T000001Z-a"] and failed[0].duration_s == 90.0
    assert index.page(cluster="c2").total == 1 and index.page(text="000002").total == 1
    os.unlink(store.folder / "20260101T000002Z-b.json")
    assert index.page().total == 1
    assert index.page(offset=1, limit=10).items == []


def test_a_settled_folder_is_not_rescanned_and_a_new_save_is_still_seen(tmp_path: Path) -> None:
    import time

    store = FileCheckpointStore(tmp_path, fsync=False)
    index = RunIndex(_Settings(tmp_path), store=store)  # type: ignore[arg-type]
    store.save(record=_record("20260101T000001Z-a", "running"))  # type: ignore[arg-type]
    time.sleep(1.1)
    assert index.page().total == 1  # full scan; the folder has settled
    os.utime(store.folder / "20260101T000001Z-a.json", ns=(1, 1))  # a change no rename announced...
    assert index.page().items[0].status == "running"  # ...is not looked for: the cached summaries answer
    store.save(record=_record("20260101T000001Z-a", "done"))  # type: ignore[arg-type]
    store.save(record=_record("20260101T000002Z-b", "failed"))  # type: ignore[arg-type]
    page = index.page()
    assert page.total == 2 and page.items[1].status == "done"
    time.sleep(1.1)
    assert [s.status for s in index.page().items] == ["failed", "done"]


def test_a_truncated_record_is_listed_as_unreadable_on_top(tmp_path: Path) -> None:
    """A record cut short by a full disk stays visible on the Runs page, with its path and why."""
    store = FileCheckpointStore(tmp_path, fsync=False)
    store.save(record=_record("20261201T000000Z-aaaa", "done", started="2026-12-01T00:00:00.000Z"))
    store.save(record=_record("20261202T000000Z-bbbb", "failed", started="2026-12-02T00:00:00.000Z"))
    broken = store.folder / "20261130T000000Z-cccc.json"
    broken.write_text('{"version": 1, "id": "20261130T000000Z-cccc", "status": "running", "ste')
    rows = RunIndex(_Settings(tmp_path), store=store).summaries()  # type: ignore[arg-type]
    assert [r.id for r in rows] == ["20261130T000000Z-cccc", "20261202T000000Z-bbbb", "20261201T000000Z-aaaa"]
    assert rows[0].status == "unreadable"
    assert str(broken) in (rows[0].error or "") and "truncated" in (rows[0].error or "")
