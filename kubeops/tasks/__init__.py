"""The invoke task collection shared by `invoke` (via the top-level tasks.py) and the `kubeops` console script.

Each area keeps its tasks in its own module; this file only gathers them. Task modules import the engine and
clients inside the task bodies, so listing tasks (`invoke --list`, `kubeops --help`) stays fast.
"""

from __future__ import annotations

import importlib

from invoke import Collection, Task

# Area modules, in the order their tasks are listed.
TASK_MODULES: tuple[str, ...] = (
    "kubeops.tasks.engine",
    "kubeops.tasks.nodes",
    "kubeops.tasks.aws",
    "kubeops.tasks.stats",
    "kubeops.tasks.apps",
    "kubeops.tasks.schedule",
    "kubeops.tasks.sandbox",
    "kubeops.tasks.fleet",
    "kubeops.tasks.console",
    "kubeops.tasks.rehearse",
)


def build_collection() -> Collection:
    """Every task of every area module that exists, at the top level (`invoke drain`, not `invoke nodes.drain`)."""
    ns = Collection()
    for name in TASK_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        for value in vars(module).values():
            if isinstance(value, Task) and value.__module__ == module.__name__:
                ns.add_task(value)
    return ns


ns = build_collection()
