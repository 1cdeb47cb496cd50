"""Fixtures for engine tests: a fresh registry of toy actions, settings on a temporary state folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeops.actions.registry import Registry
from kubeops.settings import Settings
from tests.engine.toy_actions import make_registry


@pytest.fixture
def registry() -> Registry:
    return make_registry()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(cluster="test", state_dir=tmp_path / "state")


@pytest.fixture
def write_playbook(tmp_path: Path):  # type: ignore[no-untyped-def]
    def write(text: str, name: str = "pb.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
