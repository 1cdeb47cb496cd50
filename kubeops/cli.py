"""The `kubeops` console script: the same tasks as `invoke`, without needing a tasks.py in the current folder."""

from __future__ import annotations

from invoke import Program

from kubeops import __version__
from kubeops.tasks import ns

program = Program(namespace=ns, name="kubeops", binary="kubeops", version=__version__)


def main() -> None:
    """Entry point declared in pyproject.toml."""
    program.run()
