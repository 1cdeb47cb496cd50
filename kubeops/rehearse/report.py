"""The rehearsal report: outcome, evictions, pods that would not fit, instances, predicted durations, diff.

Predicted durations are the rehearsal's own durations multiplied by the speed: grace periods, probe delays,
minReadySeconds and node joins were divided by it, so multiplying back gives real time. kubeops' own polling
and API round trips do not speed up, so the prediction gets rougher as the speed grows (docs/rehearse.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from kubeops.durations import format_duration

__all__ = ["Report", "StepTiming", "render_text"]


@dataclass(frozen=True, slots=True)
class StepTiming:
    name: str
    action: str
    phase: str
    status: str
    rehearsal_s: float
    predicted_s: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    playbook: str
    params: dict[str, Any]
    snapshot: dict[str, Any]  # the header of the snapshot rehearsed on
    speed: float
    status: str  # done, failed, rejected, paused, locked, outside window
    exit_code: int  # what the real run would return (0, 1, 2, 3)
    failed_step: str | None
    error: str | None
    steps: list[StepTiming]
    evictions: list[dict[str, Any]]  # in order: pod, at_s (predicted), budget_waits, waited_s (predicted)
    would_not_fit: list[dict[str, Any]]  # pods left Pending: pod, owner, reason
    instances_launched: list[dict[str, Any]]
    instances_terminated: list[dict[str, Any]]
    nodes_cordoned: list[str]
    nodes_uncordoned: list[str]
    nodes_deleted: list[str]
    nodes_added: list[str]
    pods_moved: list[dict[str, Any]]  # a pod of a controller gone from one node, its replacement on another
    pods_removed: list[dict[str, Any]]  # pods gone and not replaced
    predicted_total_s: float
    startup_s: float  # how long the private sandbox took to load the snapshot
    rehearsal_s: float
    scaled_params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ssh_commands: list[dict[str, Any]] = field(default_factory=list)  # recorded, never sent: node, host, command

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)


def render_text(r: Report) -> str:
    """The human report (stdout of `invoke rehearse`)."""
    head = r.snapshot
    lines = [f"rehearsal of {r.playbook} on a copy of {head.get('cluster', '?')} "
             f"(snapshot {head.get('taken_at', '?')}, speed x{r.speed:g}): nothing real was touched"]
    if r.status == "done":
        lines.append(f"outcome: the run would succeed (exit {r.exit_code})")
    elif r.status == "locked":
        lines.append(f"outcome: the run would not start, another run holds the cluster lock (exit {r.exit_code}): "
                     f"{r.error}")
    elif r.status == "outside window":
        lines.append(f"outcome: the run would not start, outside its maintenance window, nothing changed "
                     f"(exit {r.exit_code}): {r.error}")
    elif r.status == "paused":
        lines.append(f"outcome: the run would pause, its maintenance window closes (exit {r.exit_code}): {r.error}")
    elif r.status == "rejected":
        lines.append(f"outcome: the run would be rejected at step {r.failed_step!r}, nothing changed "
                     f"(exit {r.exit_code}): {r.error}")
    else:
        lines.append(f"outcome: the run would FAIL at step {r.failed_step!r} (exit {r.exit_code}): {r.error}")
    if r.status not in ("locked", "outside window"):  # those runs stop before their first step
        lines.append(f"predicted duration: {format_duration(r.predicted_total_s)}")
        lines.append("steps:")
    for s in r.steps:
        extra = f": {s.error}" if s.error else ""
        prefix = "cleanup " if s.phase == "cleanup" else ""
        lines.append(f"  {prefix}{s.name} [{s.action}] {s.status} ~{format_duration(s.predicted_s)}{extra}")
    if r.evictions:
        lines.append(f"evictions ({len(r.evictions)}, in order):")
        for e in r.evictions:
            waited = format_duration(e["waited_s"])
            wait = f", {e['budget_waits']} budget refusals over {waited}" if e["budget_waits"] else ""
            state = "" if e["evicted"] else " NOT evicted (still blocked)"
            lines.append(f"  +{format_duration(e['at_s'])} {e['pod']}{wait}{state}")
    if r.ssh_commands:
        lines.append(f"SSH commands ({len(r.ssh_commands)}, recorded, not sent):")
        for c in r.ssh_commands:
            then = " (the node reboots: NotReady, then Ready)" if c.get("reboot") else ""
            lines.append(f"  would run over SSH on node {c['node']} ({c['host']}): {c['command']}{then}")
    if r.would_not_fit:
        lines.append(f"pods that would not fit ({len(r.would_not_fit)}):")
        for p in r.would_not_fit:
            lines.append(f"  {p['pod']} ({p.get('owner') or 'no controller'}): {p.get('reason') or 'Pending'}")
    for title, items in (("instances launched", r.instances_launched),
                         ("instances terminated", r.instances_terminated)):
        if items:
            lines.append(f"{title} ({len(items)}): " + ", ".join(
                f"{i['group']}" + (f" ({i['node']})" if i.get("node") else "") for i in items))
    for title, names in (("nodes cordoned", r.nodes_cordoned), ("nodes uncordoned", r.nodes_uncordoned),
                         ("nodes deleted", r.nodes_deleted), ("nodes added", r.nodes_added)):
        if names:
            lines.append(f"{title}: {', '.join(names)}")
    if r.pods_moved:
        lines.append(f"pods moved ({len(r.pods_moved)}):")
        for m in r.pods_moved[:50]:
            lines.append(f"  {m['owner']}: {m['from']} -> {m['to']}")
        if len(r.pods_moved) > 50:
            lines.append(f"  ... and {len(r.pods_moved) - 50} more (--output=json lists all)")
    if r.pods_removed:
        lines.append(f"pods removed, not replaced ({len(r.pods_removed)}): "
                     + ", ".join(p["pod"] for p in r.pods_removed[:20]))
    if r.scaled_params:
        lines.append("timeouts divided by the speed for the rehearsal: "
                     + ", ".join(f"{k}={v}" for k, v in r.scaled_params.items()))
    lines.extend(f"note: {n}" for n in r.notes)
    lines.append(f"(private sandbox loaded in {r.startup_s:.1f}s; rehearsal took {r.rehearsal_s:.1f}s)")
    return "\n".join(lines)
