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


@task(
    help={
        "dry_run": "measure and plan for real, send evictions with dryRun=All: nothing is evicted",
        "high_cpu": "a node above this CPU % of allocatable sheds pods (default 50)",
        "high_memory": "a node above this memory % sheds pods (default 50)",
        "low_cpu": "a node below this CPU % (and the memory %) may receive pods (default 20)",
        "low_memory": "a node below this memory % (and the CPU %) may receive pods (default 20)",
        "max_evictions": "cap on evictions in this run (default 5)",
        "interval": "seconds between the two cAdvisor samples (default 5)",
        "cluster": "inventory/<cluster>.yaml to use (default sandbox)",
    }
)
def redistribute(
    c: Context,
    dry_run: bool = False,
    high_cpu: float = 50.0,
    high_memory: float = 50.0,
    low_cpu: float = 20.0,
    low_memory: float = 20.0,
    max_evictions: int = 5,
    interval: float = 5.0,
    cluster: str = "sandbox",
) -> None:
    """Evict pods from nodes using more than the high band onto nodes below the low band (playbook `redistribute`)."""
    from kubeops.engine.api import run_playbook
    from kubeops.errors import KubeopsError
    from kubeops.settings import load_settings

    params = {
        "high_cpu_pct": float(high_cpu),
        "high_memory_pct": float(high_memory),
        "low_cpu_pct": float(low_cpu),
        "low_memory_pct": float(low_memory),
        "max_evictions": int(max_evictions),
        "interval_s": float(interval),
    }
    try:
        record = run_playbook("redistribute", settings=load_settings(cluster), params=params, dry_run=dry_run)
    except KubeopsError as err:
        raise _exit(err) from None
    print(summarize(record))


def summarize(record: dict) -> str:  # type: ignore[type-arg]
    """The run in a few lines: each step's plan (dry run) or what it evicted."""
    lines = [f"run {record.get('id')} ({'dry run' if record.get('dry_run') else 'applied'}): {record.get('status')}"]
    for step in record.get("steps") or []:
        plan = step.get("plan") or {}
        outputs = step.get("outputs") or {}
        if plan:
            lines.append(f"  {step.get('name')}: {plan.get('summary')}")
            lines += [f"    {d}" for d in plan.get("details") or []]
        elif "evicted" in outputs:
            evicted = [e["pod"] for e in outputs["evicted"]]
            lines.append(f"  {step.get('name')}: evicted {len(evicted)}: {', '.join(evicted) or outputs.get('reason')}")
            lines += [f"    blocked by a budget: {k}" for k in outputs.get("blocked") or {}]
    return "\n".join(lines)
