"""How the console writes numbers and times (pure)."""

from __future__ import annotations

from kubeops.console import filters


def test_durations_read_like_people_write_them() -> None:
    assert filters.duration(None) == "-"
    assert filters.duration(2.54) == "2.5s"
    assert filters.duration(754) == "12m34s"
    assert filters.duration(7325) == "2h02m"


def test_step_duration_from_record_timestamps() -> None:
    step = {"started": "2026-01-01T00:00:00.000Z", "finished": "2026-01-01T00:01:30.250Z"}
    assert filters.step_duration(step) == 90.25
    assert filters.step_duration({"started": "2026-01-01T00:00:00.000Z", "finished": None}) is None


def test_usage_cells() -> None:
    assert filters.cpu(None) == "-" and filters.pct(12.6) == "13%" and filters.size(None) == "-"
    assert filters.cpu(0.25) == "250m"
