"""Fixtures for client tests: a real sshd (tests/ssh_fixture.py) and a real moto_server (tests/aws_fixtures.py)."""

from __future__ import annotations

from tests.aws_fixtures import moto, moto_session  # noqa: F401  (pytest fixtures: a real moto_server)
from tests.ssh_fixture import sshd_server  # noqa: F401  (provides the `sshd` fixture)
