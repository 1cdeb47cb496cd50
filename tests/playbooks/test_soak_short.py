"""The short soak: one replace-node on a fresh sandbox with ~10 % API faults and SIGKILLs at random moments,
resumed until done, then every invariant of tests/soak_harness.py holds. The long version (all four playbooks,
>= 100 kills) is benchmarks/soak.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.soak_harness import soak_one, table


@pytest.mark.timeout(300)
def test_replace_node_survives_kills_and_faults_with_no_violation(tmp_path: Path) -> None:
    outcome = soak_one("replace-node", tmp_path, seed=3, kills=4, kill_window_s=2.5,
                       deadline=time.monotonic() + 200)
    print(table([outcome]))
    assert outcome.violations == []
    assert outcome.kills >= 2  # kills land within 2.5 s of each try; a replace takes longer than that
    assert outcome.resumes >= 1  # a kill before the record exists restarts the command instead
    assert outcome.faults > 0
    assert outcome.ready_samples > 10 and outcome.lowest_ready >= 2  # the budget held through kills and faults
