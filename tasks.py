"""invoke entry point: the tasks live in kubeops.tasks so the `kubeops` console script shares them."""

from kubeops.tasks import ns

__all__ = ["ns"]
