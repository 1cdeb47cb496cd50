"""`kubeops.progress`: long waits report at most once per interval, with the keys the console line draws."""

from __future__ import annotations

import pytest
import structlog
import structlog.testing

from kubeops.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reports_at_once_then_at_most_once_per_second() -> None:
    clock = Clock()
    with structlog.testing.capture_logs() as events:
        progress = Progress(structlog.get_logger(), "drain.progress", timeout_s=60, clock=clock)
        assert progress.emit("3 pods left")
        clock.now += 0.6
        assert not progress.emit("2 pods left")
        clock.now += 0.4
        assert progress.emit("1 pod left")
    assert [(e["message"], e["elapsed_s"], e["timeout_s"]) for e in events] == [
        ("3 pods left", 0.0, 60), ("1 pod left", 1.0, 60)]


def test_without_a_logger_nothing_is_reported_and_names_must_end_in_progress() -> None:
    assert not Progress(None, "x.progress", timeout_s=None).emit("quiet")
    with pytest.raises(ValueError, match=r"\*\.progress"):
        Progress(None, "drain.waiting", timeout_s=None)
