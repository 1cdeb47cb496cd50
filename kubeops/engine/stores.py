"""The one place that picks a checkpoint backend from the settings, so the backends never import each other."""

from __future__ import annotations

from typing import Any

from kubeops.engine.checkpoints import CheckpointStore
from kubeops.engine.file_store import FileCheckpointStore
from kubeops.errors import InputError


def store_for(settings: Any) -> CheckpointStore:
    """The store named by `settings.checkpoint_store` ("file" or "configmap")."""
    kind = getattr(settings, "checkpoint_store", "file")
    if kind == "file":
        return FileCheckpointStore(settings.state_dir)
    if kind == "configmap":
        from kubeops.engine.configmap_store import ConfigMapCheckpointStore

        return ConfigMapCheckpointStore.from_settings(settings)
    raise InputError(f"unknown checkpoint store {kind!r}; known: file, configmap")
