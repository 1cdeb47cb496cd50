"""`rehearse`: run a playbook for real on a private sandbox loaded from a snapshot, and report.

Order, and why:
1. The playbook is loaded and its parameters bound first: a bad playbook or parameter is an input error (exit 2)
   before any sandbox starts, exactly as the real run would refuse it.
2. The snapshot (a file, a dump folder, List files, or a document) goes into a temporary folder, and a private
   sandbox plus moto load it (`PrivateSandbox`); its settings reach nothing else: kubeconfig and AWS endpoint
   are the private ones, the checkpoint store is in the temporary folder. The real cluster's lock settings and
   inventory parameter defaults are kept so the run is the one that would happen.
3. State is read, the run goes through the engine API (`kubeops.engine.api.run_playbook`) with the real run's
   guard (`kubeops.engine.guard.Guard`: the same window and lock decisions, not a copy of them) minus its side
   effects (no notification, no textfile metrics). Its window clock starts at rehearsal time (or `at`, "what if
   I run at 03:00") and runs `speed` times faster, so a window closing mid-run pauses the rehearsal where it
   would pause the run; its lock is the private sandbox's copy of kubeops' Lease, judged by a clock that starts
   at the time the snapshot was taken (a lease live then belongs to a run that is still going, as far as
   anyone can tell). Outside the window: outcome "outside window", exit 0, nothing done; lock held: outcome
   "locked", exit 3, naming the holder. The cluster is given a moment to settle (controllers replace what was
   evicted), and state is read again.
4. The private sandbox is stopped and its folder removed, whatever happened (``with``).

Speed: the sandbox divides grace periods, probe delays, minReadySeconds and node joins by ``speed``; parameters
whose name ends in ``timeout_s`` are divided too (so a budget that would block a drain until its timeout blocks
it in the rehearsal), and the report multiplies durations back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from kubeops.actions.registry import Registry, default_registry
from kubeops.engine.api import load_playbook, run_playbook
from kubeops.engine.guard import Guard, lock_for, window_from_settings
from kubeops.engine.lock import parse_time
from kubeops.errors import LockHeld, OutsideWindow
from kubeops.model.params import bind_params
from kubeops.rehearse.observe import State, capture, evictions, log_offset
from kubeops.rehearse.private import PrivateSandbox
from kubeops.rehearse.remote import RehearsalClients
from kubeops.rehearse.report import Report, StepTiming
from kubeops.rehearse.snapshot import load_input, write
from kubeops.settings import Settings

__all__ = ["EXIT_BY_STATUS", "rehearse"]

EXIT_BY_STATUS = {"done": 0, "paused": 0, "outside window": 0, "failed": 1, "rejected": 2, "locked": 3}
Obj = dict[str, Any]


def _seconds(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    a = datetime.fromisoformat(start.replace("Z", "+00:00"))
    b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return max(0.0, (b - a).total_seconds())


def scale_timeouts(params: Mapping[str, Any], speed: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params with every numeric ``*timeout_s`` divided by speed, the ones changed); never below one second."""
    out = dict(params)
    changed: dict[str, Any] = {}
    if speed == 1:
        return out, changed
    for name, value in params.items():
        if name.endswith("timeout_s") and isinstance(value, int | float) and not isinstance(value, bool) and value:
            scaled = max(1, math.ceil(value / speed)) if isinstance(value, int) else max(1.0, value / speed)
            out[name] = scaled
            changed[name] = f"{value} -> {scaled}"
    return out, changed


def _running_clock(start: datetime, speed: float) -> Callable[[], datetime]:
    """A clock that reads `start` now and runs `speed` times faster than real time (the rehearsal's time)."""
    t0 = time.monotonic()
    return lambda: datetime.fromtimestamp(start.timestamp() + (time.monotonic() - t0) * speed, UTC)


def _settle(settings: Settings, groups: list[str], *, timeout_s: float = 5.0) -> State:
    """State once the controllers have caught up: after a second (replacements created), read until no pod is
    still starting on its node (or `timeout_s`). Reads of a 60,000-pod cluster take seconds: read few times."""
    deadline = time.monotonic() + timeout_s
    time.sleep(1.0)
    current = capture(settings, groups=groups)
    while time.monotonic() < deadline and any(p.phase == "Pending" and p.node for p in current.pods.values()):
        time.sleep(0.5)
        current = capture(settings, groups=groups)
    return current


def _diff(before: State, after: State) -> dict[str, Any]:
    nodes_cordoned = sorted(n for n, v in after.nodes.items()
                            if v["unschedulable"] and not (before.nodes.get(n) or {}).get("unschedulable", False))
    nodes_uncordoned = sorted(n for n, v in after.nodes.items()
                              if not v["unschedulable"] and (before.nodes.get(n) or {}).get("unschedulable"))
    nodes_deleted = sorted(set(before.nodes) - set(after.nodes))
    nodes_added = sorted(set(after.nodes) - set(before.nodes))
    gone = {u: p for u, p in before.pods.items() if u not in after.pods}
    new = {u: p for u, p in after.pods.items() if u not in before.pods}
    by_owner: dict[str | None, list[Any]] = {}
    for p in sorted(new.values(), key=lambda p: p.name):
        by_owner.setdefault(p.owner, []).append(p)
    moved, removed = [], []
    for p in sorted(gone.values(), key=lambda p: p.name):
        pool = by_owner.get(p.owner) if p.owner else None
        # a Deployment's new pod has the same ReplicaSet owner; a StatefulSet's keeps its name
        match = next((q for q in pool or () if q.name == p.name), None) or (pool[0] if pool else None)
        if match is not None:
            pool.remove(match)  # type: ignore[union-attr]
            moved.append({"owner": p.owner, "pod": p.name, "new_pod": match.name, "from": p.node,
                          "to": match.node or "(pending)"})
        else:
            removed.append({"pod": p.name, "node": p.node, "owner": p.owner})
    node_of_instance = {v["instance"]: n for n, v in before.nodes.items()}
    node_of_instance.update({v["instance"]: n for n, v in after.nodes.items()})
    launched = [{"id": i, "group": g, "node": node_of_instance.get(i)}
                for i, (g, _) in sorted(after.instances.items()) if i not in before.instances]
    terminated = [{"id": i, "group": g, "node": node_of_instance.get(i)}
                  for i, (g, _) in sorted(before.instances.items())
                  if i not in after.instances or after.instances[i][1].startswith("Terminat")]
    not_fit = [{"pod": p.name, "owner": p.owner, "reason": p.reason}
               for p in sorted(after.pods.values(), key=lambda p: p.name) if p.phase == "Pending" and not p.node]
    return {"nodes_cordoned": nodes_cordoned, "nodes_uncordoned": nodes_uncordoned, "nodes_deleted": nodes_deleted,
            "nodes_added": nodes_added, "pods_moved": moved, "pods_removed": removed,
            "instances_launched": launched, "instances_terminated": terminated, "would_not_fit": not_fit}


def rehearse(
    snapshot: str | Path | Obj,
    playbook: str | Path,
    *,
    params: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    speed: float = 1.0,
    join_s: float = 120.0,
    exit_s: float | str | None = None,
    registry: Registry | None = None,
    keep: bool = False,
    at: datetime | None = None,
    wait_for_lock_s: float = 0.0,
    reboot_s: float = 60.0,
) -> Report:
    """Rehearse `playbook` with `params` on `snapshot`; see the module docstring. Raises InputError (exit 2) for
    a bad playbook, parameter, window or snapshot before anything starts; any run outcome is in the report.

    `at`: the time the real run would start (default now), for the maintenance windows. `wait_for_lock_s`: the
    real run's ``--wait-for-lock``; a rehearsal never waits (nobody renews or releases the copied Lease, so
    waiting would only predict a dead holder) and reports what the wait depends on instead. `reboot_s`: how long
    a node takes to reboot in real life (SSH commands are recorded, never sent; `kubeops.rehearse.remote`)."""
    from kubeops.errors import InputError

    if speed <= 0:
        raise InputError(f"--speed must be > 0, got {speed:g}")
    reg = registry or default_registry()
    pb = load_playbook(playbook, registry=reg)
    base = settings or Settings()
    bound = bind_params(pb, dict(params or {}), defaults=base.params)
    run_params, scaled = scale_timeouts(bound, speed)
    window = window_from_settings(base)  # a bad inventory window is bad input, as for the real run
    doc = snapshot if isinstance(snapshot, dict) else load_input(snapshot)
    header = dict(doc.get("header") or {})
    groups = [g["name"] for g in doc.get("autoscaling_groups") or ()]
    notes = []
    if header.get("autoscaling_not_read"):
        notes.append(f"Auto Scaling groups were not read at snapshot time: {header['autoscaling_not_read']}")
    t_start = time.perf_counter()
    sandbox = PrivateSandbox(speed=speed, join_s=join_s, exit_s=exit_s, keep=keep)
    try:
        as_is = not isinstance(snapshot, dict) and Path(str(snapshot)).is_file() and "," not in str(snapshot) \
            and doc.get("header", {}).get("source", "api") == "api"
        # a snapshot file is loaded as it is; anything else is written out in the snapshot format first
        sandbox.snapshot_path = Path(str(snapshot)).resolve() if as_is else write(doc, sandbox.root / "snapshot.json")
        sandbox.start()
        for what, why in sorted((header.get("not_served") or {}).items()):
            notes.append(f"not in the snapshot: {what} ({why})")
        for what, count in sorted((sandbox.info.get("not_loaded") or {}).items()):
            notes.append(f"not in the rehearsal: {count} {what} (the sandbox does not hold them)")
        private = sandbox.settings(base)
        before = capture(private, groups=groups)
        offset = log_offset(sandbox.requests_path)
        taken = parse_time(header.get("taken_at")) or datetime.now(UTC)
        lock_clock = _running_clock(taken, speed)
        guard = Guard(cluster=base.cluster, window=window, clock=_running_clock(at or datetime.now(UTC), speed),
                      lock_factory=lambda: lock_for(private, required=True, clock=lock_clock))
        t0 = time.time()
        refused: tuple[str, str] | None = None
        sent: list[dict[str, Any]] = []
        # every log line of the run says it is a rehearsal: the cluster name is the real one (for app overrides
        # and ${run.cluster}), and a reader of the logs must never take these evictions for real ones
        with structlog.contextvars.bound_contextvars(rehearsal=True):
            try:
                clients = RehearsalClients(private, reboot_s=reboot_s / speed, pace=speed)
                try:
                    record = run_playbook(pb, settings=private, params=run_params, registry=reg, check=False,
                                          guard=guard, clients=clients)
                finally:
                    sent = list(clients.ssh.sent)
                    clients.close()
            except OutsideWindow as exc:
                refused, record = ("outside window", str(exc)), {"steps": []}
            except LockHeld as exc:
                refused, record = ("locked", str(exc)), {"steps": []}
                if wait_for_lock_s > 0:
                    notes.append(f"the real run waits up to {wait_for_lock_s:g}s for the lock: it starts only if "
                                 "the holder releases it in time or stops renewing it (the rehearsal cannot know "
                                 "which, so it reports the lock as held)")
        after = _settle(private, groups) if refused is None else before
        evs = evictions(sandbox.requests_path, offset=offset, t0=t0)
    finally:
        sandbox.stop()
    steps = [StepTiming(name=s["name"], action=s["action"], phase=s.get("phase") or "main", status=s["status"],
                        rehearsal_s=round(d := _seconds(s.get("started"), s.get("finished")), 3),
                        predicted_s=round(d * speed, 1), error=s.get("error"))
             for s in record["steps"]]
    node_of_host = {(st.get("outputs") or {}).get("host"): (st.get("outputs") or {}).get("node")
                    for st in record["steps"] if str(st.get("action", "")).startswith("ssh.")}
    ssh = [{"node": c.get("node") or node_of_host.get(c["host"]), "host": c["host"], "command": c["command"],
            "reboot": bool(c.get("reboot"))} for c in sent]
    status = refused[0] if refused else str(record.get("status"))
    error = refused[1] if refused else record.get("error")
    return Report(
        playbook=pb.name, params={k: v for k, v in bound.items()}, snapshot=header, speed=speed, status=status,
        exit_code=EXIT_BY_STATUS.get(status, 1), failed_step=record.get("failed_step"), error=error,
        steps=steps,
        evictions=[{"pod": e.pod, "at_s": round(e.at_s * speed, 1), "budget_waits": e.budget_waits,
                    "waited_s": round(e.waited_s * speed, 1), "evicted": e.evicted} for e in evs],
        predicted_total_s=round(sum(s.predicted_s for s in steps), 1), startup_s=round(sandbox.started_s, 2),
        rehearsal_s=round(time.perf_counter() - t_start, 2), scaled_params=scaled, notes=notes, ssh_commands=ssh,
        **_diff(before, after),
    )
