"""Maintenance windows through the real CLI: outside (exit 0, nothing done), inside, across midnight, and a window
closing mid-run (paused, resumable) finished by the next scheduled invocation."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from tests.engine.schedule_harness import Harness, finish, wait_for

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _set_window(h: Harness, window: dict) -> None:
    path = h.inventory_dir / "sb.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["window"] = window
    path.write_text(yaml.safe_dump(doc))


def test_outside_the_window_a_run_does_not_start_and_exits_0(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    h = Harness(tmp_path, None)
    _set_window(h, {"days": [DAYS[(now + timedelta(days=2)).weekday()]], "start": "01:00", "end": "02:00",
                    "timezone": "UTC"})
    h.open_gates("a")
    proc = h.call("run", f"--playbook={h.playbook(['a'])}")
    assert proc.returncode == 0, proc.stderr
    assert "outside window: maintenance window" in proc.stderr and "is closed; next opens" in proc.stderr
    assert h.records() == [] and h.effects_done() == []
    again = h.call("run-scheduled", f"--playbook={h.playbook(['a'])}")
    assert again.returncode == 0 and "outside window" in again.stderr and h.records() == []


def test_inside_a_window_crossing_midnight_the_run_goes_ahead(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    offset = -now.hour if now.hour <= 12 else 24 - now.hour  # a zone where it is now between 00:00 and 00:59
    zone = "Etc/GMT" if offset == 0 else (f"Etc/GMT-{offset}" if offset > 0 else f"Etc/GMT+{-offset}")
    local = now + timedelta(hours=offset)
    assert local.hour == 0
    yesterday = DAYS[(local - timedelta(days=1)).weekday()]
    h = Harness(tmp_path, None)
    _set_window(h, {"days": [yesterday], "start": "23:00", "end": "02:00", "timezone": zone})
    h.open_gates("a")
    proc = h.call("run", f"--playbook={h.playbook(['a'])}")
    assert proc.returncode == 0, proc.stderr
    assert h.effects_done() == ["a"] and [r["status"] for r in h.records()] == ["done"]


def test_a_window_closing_mid_run_pauses_before_the_next_step_and_the_next_invocation_finishes(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, None)
    closes = datetime.now(UTC) + timedelta(seconds=6)
    _set_window(h, {"start": "00:00:00", "end": closes.strftime("%H:%M:%S"), "timezone": "UTC"})
    if closes.date() != datetime.now(UTC).date():  # the few seconds around midnight: shift rather than skip
        _set_window(h, {"start": "23:59:00", "end": closes.strftime("%H:%M:%S"), "timezone": "UTC"})
    pb = h.playbook(["a", "b"])
    proc = h.start("run-scheduled", f"--playbook={pb}")
    wait_for(lambda: (h.gates / "a.entered").exists(), proc)
    time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()) + 0.5)
    h.open_gates("a", "b")  # step a finishes after the window closed: b must not start
    code, _, err = finish(proc)
    assert code == 0, err
    assert "outside window" in err and "paused" in err
    (record,) = h.records()
    assert record["status"] == "paused" and h.effects_done() == ["a"]
    assert [s["status"] for s in record["steps"]] == ["done", "pending"]
    assert "the run pauses and continues in the next window" in record["error"]
    paused = [json.loads(line) for line in err.splitlines() if '"run.paused"' in line]
    assert paused and paused[0]["status"] == "paused"
    # still closed: the next invocation leaves it paused and does nothing
    again = h.call("run-scheduled", f"--playbook={pb}")
    assert again.returncode == 0 and "outside window" in again.stderr and h.effects_done() == ["a"]
    # the window opens again: the next invocation resumes the paused run instead of starting over
    _set_window(h, {"start": "00:00", "end": "00:00", "timezone": "UTC"})
    resumed = h.call("run-scheduled", f"--playbook={pb}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {record['id']}" in resumed.stdout
    (final,) = h.records()
    assert final["status"] == "done" and h.effects_done() == ["a", "b"]
    # the textfile tells the monitoring system
    prom = (h.state / "metrics" / "kubeops_sb.prom").read_text()
    assert 'kubeops_last_run_success{cluster="sb",playbook="gated"} 1' in prom


def test_a_bad_window_names_the_inventory_field_and_line(tmp_path: Path) -> None:
    h = Harness(tmp_path, None)
    _set_window(h, {"days": ["mon"], "start": "22:00", "end": "04:00", "timezone": "Europe/Berlinn"})
    proc = h.call("run", f"--playbook={h.playbook(['a'])}")
    assert proc.returncode == 2
    assert f"{h.inventory_dir / 'sb.yaml'}:" in proc.stderr and "window.timezone" in proc.stderr
    assert "Europe/Berlinn" in proc.stderr and h.effects_done() == []
