"""Tasks `stats` (what pods and nodes really use) and `redistribute` (move load off overheated nodes).

Thin on purpose: flags in, one call, text out; exit codes come from `kubeops.tasks._common`.
"""

from __future__ import annotations

from kubeops.tasks import _common
from kubeops.tasks._common import playbook_task, task

_CLUSTER = "inventory/<cluster>.yaml to use (default: sandbox, or $KUBEOPS_CLUSTER)"
_INTERVAL = "seconds between the two cAdvisor samples (default 5)"


@task(
    help={
        "node": "show the pods of this node; without it, one line per node",
        "sort": "cpu (default), memory or name",
        "output": "table (default) or json",
        "interval": _INTERVAL,
        "concurrency": "cAdvisor scrapes in flight at once (default: kube.scrape_concurrency, 16)",
        "cluster": _CLUSTER,
        "source": "kubelet endpoint: cadvisor (/metrics/cadvisor) or resource (/metrics/resource, ~25x smaller: "
        "the cheaper choice for big clusters); default: kube.stats_source, cadvisor",
    }
)
def stats(c, node=None, sort="cpu", output="table", interval=5.0, concurrency=None, cluster=None, source=None):  # type: ignore[no-untyped-def]
    """Measured CPU and memory per pod of a node (or per node), beside requests, limits and allocatable."""
    from kubeops.actions.cadvisor import render_stats
    from kubeops.clients.factory import Clients

    with _common.exit_codes():
        clients = Clients(_common.build_settings(cluster))
        try:
            text = render_stats(
                clients.kube, node=node, sort=sort, output=output, interval_s=float(interval),
                concurrency=_common.positive_int(concurrency, "--concurrency"), source=source,
            )
        finally:
            clients.close()
    print(text)


@playbook_task(
    help={
        "dry-run": "measure and choose for real, send the evictions with dryRun=All: nothing is evicted",
        "high-cpu": "a node above this CPU % of allocatable sheds pods (default 50)",
        "high-memory": "a node above this memory % sheds pods (default 50)",
        "low-cpu": "a node below this CPU % (and the memory %) may receive pods (default 20)",
        "low-memory": "a node below this memory % (and the CPU %) may receive pods (default 20)",
        "max-evictions": "cap on evictions in this run (default 5)",
        "interval": _INTERVAL,
        "cluster": _CLUSTER,
        "log-format": "auto, console or json",
        "wait-for-lock": _common.WAIT_HELP,
    }
)
def redistribute(  # type: ignore[no-untyped-def]
    c, dry_run=False, high_cpu=None, high_memory=None, low_cpu=None, low_memory=None, max_evictions=None,
    interval=None, cluster=None, log_format=None, wait_for_lock=None, fleet=None,
):
    """Evict pods from nodes above the high usage band so they land on nodes below the low band."""
    params = {
        "high_cpu_pct": high_cpu,
        "high_memory_pct": high_memory,
        "low_cpu_pct": low_cpu,
        "low_memory_pct": low_memory,
        "max_evictions": max_evictions,
        "interval_s": interval,
    }
    _common.run_playbook_task(
        c, "redistribute", params=params, dry_run=dry_run, cluster=cluster, log_format=log_format,
        wait_for_lock=wait_for_lock, fleet=fleet,
    )
