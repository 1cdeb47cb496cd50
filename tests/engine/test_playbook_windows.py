"""A playbook's own maintenance window: the guard applies it with the inventory's (a run must be inside both: the
stricter wins), and through the real CLI a playbook whose window is closed does not start, and a bad playbook
window exits 2 naming the playbook file, line and field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from kubeops.engine.guard import Guard
from kubeops.errors import OutsideWindow
from kubeops.model.playbook import Playbook, Step
from kubeops.model.windows import Window
from tests.engine.schedule_harness import Harness

MONDAY_NOON = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a Monday
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STEP = Step(name="a", action="noop")


def _window(days: tuple[str, ...] = (), start: str | None = None, end: str | None = None) -> Window:
    return Window.parse(days=days, start=start, end=end, timezone="UTC")


def _guard(inventory: Window | None, playbook: Window | None, now: datetime) -> Guard:
    guard = Guard(cluster="c", window=inventory, clock=lambda: now)
    pb = Playbook(name="nightly", path="nightly.yaml", steps=(STEP,), windows=(playbook,) if playbook else ())
    guard.acquire(run_id="r1", playbook=pb, resumed=False)
    return guard


def test_the_playbook_window_alone_decides_when_the_inventory_sets_none() -> None:
    with pytest.raises(OutsideWindow) as err:
        _guard(None, _window(start="01:00", end="05:00"), MONDAY_NOON)
    assert "(set in playbook nightly)" in str(err.value) and "next opens 2026-12-01T01:00" in str(err.value)
    _guard(None, _window(start="11:00", end="13:00"), MONDAY_NOON)  # inside: no error


def test_both_windows_set_the_stricter_wins() -> None:
    always = _window()
    noon = _window(start="11:00", end="13:00")
    night = _window(start="01:00", end="05:00")
    _guard(always, noon, MONDAY_NOON)  # both open
    with pytest.raises(OutsideWindow, match=r"\(set in playbook nightly\) is closed"):
        _guard(always, night, MONDAY_NOON)  # the inventory allows it, the playbook does not
    with pytest.raises(OutsideWindow, match=r"\(set in inventory\) is closed"):
        _guard(night, always, MONDAY_NOON)  # the playbook allows it, the inventory does not


def test_a_window_closing_is_checked_before_each_step_against_both() -> None:
    now = [MONDAY_NOON]
    guard = Guard(cluster="c", window=_window(), clock=lambda: now[0])
    pb = Playbook(name="nightly", path="p", steps=(STEP,), windows=(_window(start="11:00", end="12:30"),))
    guard.acquire(run_id="r1", playbook=pb, resumed=False)
    guard.before_step(run_id="r1", step=STEP)
    now[0] = MONDAY_NOON + timedelta(minutes=45)
    with pytest.raises(OutsideWindow, match="the run pauses and continues in the next window"):
        guard.before_step(run_id="r1", step=STEP)


def test_the_message_says_when_both_windows_are_next_open_together() -> None:
    inventory = _window(days=("mon-fri",), start="22:00", end="04:00")  # Mon 22:00 - Tue 04:00, ...
    playbook = _window(start="03:00", end="05:00")  # every day 03:00 - 05:00
    with pytest.raises(OutsideWindow) as err:
        _guard(inventory, playbook, MONDAY_NOON)
    # Monday 22:00 the playbook's is shut; Tuesday 03:00 both are open
    assert "next open together 2026-12-01T03:00" in str(err.value)


def _playbook_with_window(h: Harness, window: dict) -> Path:
    path = h.playbook(["a"])
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({"name": doc["name"], "window": window, "steps": doc["steps"]}, sort_keys=False))
    return path


def _set_inventory_window(h: Harness, window: dict) -> None:
    path = h.inventory_dir / "sb.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["window"] = window
    path.write_text(yaml.safe_dump(doc))


def _closed_now() -> dict:
    return {"days": [DAYS[(datetime.now(UTC) + timedelta(days=2)).weekday()]], "start": "01:00", "end": "02:00"}


def test_cli_a_playbook_whose_window_is_closed_does_not_start_even_if_the_inventory_allows_it(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, None)
    _set_inventory_window(h, {"start": "00:00", "end": "00:00", "timezone": "UTC"})  # always open
    pb = _playbook_with_window(h, _closed_now())
    h.open_gates("a")
    proc = h.call("run", f"--playbook={pb}")
    assert proc.returncode == 0, proc.stderr
    assert "outside window: maintenance window" in proc.stderr and "(set in playbook gated)" in proc.stderr
    assert h.records() == [] and h.effects_done() == []
    # the same playbook with a window open now runs
    pb = _playbook_with_window(h, {"start": "00:00", "end": "00:00"})
    proc = h.call("run", f"--playbook={pb}")
    assert proc.returncode == 0, proc.stderr
    assert h.effects_done() == ["a"] and [r["status"] for r in h.records()] == ["done"]


def test_cli_a_bad_playbook_window_exits_2_naming_the_playbook_file_line_and_field(tmp_path: Path) -> None:
    h = Harness(tmp_path, None)
    pb = _playbook_with_window(h, {"days": ["mon"], "start": "22:00", "end": "04:00", "timezone": "Europe/Berlinn"})
    line = next(i for i, text in enumerate(pb.read_text().splitlines(), 1) if "timezone:" in text)
    h.open_gates("a")
    proc = h.call("run", f"--playbook={pb}")
    assert proc.returncode == 2, proc.stderr
    assert f"{pb}:{line}" in proc.stderr and "window.timezone" in proc.stderr and "Europe/Berlinn" in proc.stderr
    assert h.records() == [] and h.effects_done() == []
