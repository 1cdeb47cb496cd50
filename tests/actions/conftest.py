"""Fixtures for action tests: a real moto_server (tests/aws_fixtures.py)."""

from __future__ import annotations

from tests.aws_fixtures import moto, moto_session  # noqa: F401  (pytest fixtures, found by name)
