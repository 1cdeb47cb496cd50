"""kubeops: declarative, checkpointed, resumable Kubernetes node and application operations."""

__version__ = "0.1.0"
