"""Applications: a compact per-app config, and the versioned controllers and role Service rendered from it.

Pure code only (no client, no I/O beyond reading the config file): the actions in `kubeops.actions.apps` and the
client in `kubeops.clients.workloads` do the talking to the cluster.
"""
