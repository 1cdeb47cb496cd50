"""Fixtures for client tests: the real sshd lives in tests/ssh_fixture.py so action tests can share it."""

from __future__ import annotations

from tests.ssh_fixture import sshd  # noqa: F401  (a pytest fixture, found by name)
