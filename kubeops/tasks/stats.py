"""Tasks `stats` (what pods and nodes really use) and `redistribute` (move load off overheated nodes).

Thin on purpose: flags in, one call, text out; errors become an exit code here and nowhere below.
"""

from __future__ import annotations

from invoke import Context, task


@task(
    help={
        "node": "show the pods of this node; without it, one line per node",
        "sort": "cpu (default), memory or name",
        "output": "table (default) or json",
        "interval": "seconds between the two cAdvisor samples (default 5)",
        "cluster": "inventory/<cluster>.yaml to use (default sandbox)",
    }
)
def stats(
    c: Context,
    node: str | None = None,
    sort: str = "cpu",
    output: str = "table",
    interval: float = 5.0,
    cluster: str = "sandbox",
) -> None:
    """Measured CPU and memory per pod of a node (or per node), beside requests, limits and allocatable."""
    from kubeops.actions.cadvisor import render_stats
    from kubeops.clients.factory import Clients
    from kubeops.errors import KubeopsError
    from kubeops.settings import load_settings

    clients = None
    try:
        clients = Clients(load_settings(cluster))
        text = render_stats(clients.kube, node=node, sort=sort, output=output, interval_s=float(interval))
    except KubeopsError as err:
        raise _exit(err) from None
    finally:
        if clients is not None:
            clients.close()
    print(text)


def _exit(err: Exception) -> Exception:
    from invoke import Exit

    from kubeops.errors import InputError

    return Exit(f"error: {err}", code=2 if isinstance(err, InputError) else 1)
