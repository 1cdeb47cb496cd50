"""Shared fixtures: every test gets its own KUBEOPS_STATE_DIR; sandbox fixtures start real sandbox processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeops.sandbox.testing import SandboxProcess


@pytest.fixture(autouse=True)
def _isolated_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test writes to ~/.local/state: KUBEOPS_STATE_DIR points at a fresh temporary folder."""
    state = tmp_path_factory.mktemp("kubeops-state")
    monkeypatch.setenv("KUBEOPS_STATE_DIR", str(state))
    return state


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> Iterator[Callable[..., SandboxProcess]]:
    """``sandbox_factory(scenario, aws=False, params=None, faults=None)`` -> a started SandboxProcess;
    every sandbox it started is stopped when the test ends."""
    started: list[SandboxProcess] = []

    def make(scenario: str | Path | dict[str, Any] = "default", *, aws: bool = False,
             params: dict[str, Any] | None = None, faults: dict[str, Any] | None = None) -> SandboxProcess:
        sb = SandboxProcess(scenario, state_dir=tmp_path / f"sandbox-{len(started)}", aws=aws, params=params,
                            faults=faults)
        started.append(sb)
        return sb.start()

    yield make
    for sb in started:
        sb.stop()


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., SandboxProcess]) -> SandboxProcess:
    """The default scenario, without AWS."""
    return sandbox_factory("default")
