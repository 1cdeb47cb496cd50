"""The fleet summary as text: one row per cluster, in fleet order (the order the clusters were given)."""

from __future__ import annotations

from kubeops.durations import format_duration
from kubeops.fleet.limits import failure_limit
from kubeops.fleet.record import FleetRecord, MemberRecord

HEADER = ("CLUSTER", "RUN", "STATUS", "DURATION", "STEP / MESSAGE")
_MESSAGE_LIMIT = 100


def member_message(record: FleetRecord, member: MemberRecord) -> str:
    """What a person needs on the row: the failed step and why, or why the cluster did not start."""
    status = member.get("status")
    if status == "pending" and record.get("stopped_by"):
        return f"not started: canary {record['stopped_by']} did not finish"
    if status == "pending" and record.get("stopped_by_failures"):
        failed = ", ".join(f"{c} {record['members'][c].get('status')}" for c in record["stopped_by_failures"])
        return f"not started: --max-failures={limit_text(record)} reached: {failed}"
    if status == "pending":
        return "not started"
    text = member.get("error") or ""
    step = member.get("failed_step")
    if step:
        text = f"{step}: {text}" if text else step
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def summary_lines(record: FleetRecord, *, dry_run: bool = False) -> list[str]:
    """The title line and the aligned table (a dry run's says nothing changed and keeps no fleet record)."""
    rows = [HEADER]
    for cluster in record["clusters"]:
        member = record["members"][cluster]
        rows.append(
            (
                cluster,
                member.get("run_id") or "-",
                member.get("status", "pending"),
                format_duration(member.get("duration_s") or None),  # 0: never ran
                member_message(record, member) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    title = (
        ("dry run (nothing changed): fleet" if dry_run else f"fleet {record['id']}:")
        + f" {record.get('task', 'run')} ({record['playbook']}) on {len(record['clusters'])} "
        f"clusters, canary {record.get('canary', 0)}, parallel {record.get('parallel', 1)}"
        + (f", max failures {limit_text(record)}" if record.get("max_failures") else "")
        + f": {record.get('status')}"
    )
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return [title, *body]


def limit_text(record: FleetRecord) -> str:
    """The --max-failures as given, with the count it means for a percentage ("25% = 3 of 10 clusters")."""
    given = record.get("max_failures")
    if isinstance(given, str):
        return f"{given} = {failure_limit(given, len(record['clusters']))} of {len(record['clusters'])} clusters"
    return str(given)
