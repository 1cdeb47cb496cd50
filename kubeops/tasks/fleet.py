"""Task `fleets`: list fleets, or show one fleet's clusters (run id, status, duration, failed step).

Starting a fleet is not a task of its own: every playbook task (declared with `_common.playbook_task`) takes
``--cluster=a,b,c`` or ``--clusters=GLOB`` with ``--parallel``, ``--canary`` and ``--max-failures``, and
`resume --fleet=ID` continues one.
"""

from __future__ import annotations

import json

from kubeops.tasks import _common
from kubeops.tasks._common import task


def show_fleet(fleet_id: str, *, as_json: bool = False) -> None:
    """One fleet's summary table (or record as JSON)."""
    with _common.exit_codes():
        from kubeops.fleet.record import FleetStore
        from kubeops.fleet.runner import refresh_members
        from kubeops.fleet.table import summary_lines
        from kubeops.settings import default_state_dir

        record = refresh_members(FleetStore(default_state_dir()).get(fleet_id), _common.build_settings)
        if as_json:
            print(json.dumps(record, indent=1))
            return
        for line in summary_lines(record):
            print(line)
        if record.get("status") != "done":
            print(f"continue with: invoke resume --fleet={record['id']}")


@task(help={"fleet": "show this fleet, one row per cluster", "json": "print records as JSON"})
def fleets(c, fleet=None, json_=False):  # type: ignore[no-untyped-def]
    """List fleets (id, task, clusters, status, started), or show one with --fleet=ID."""
    if fleet:
        show_fleet(fleet, as_json=json_)
        return
    with _common.exit_codes():
        from kubeops.fleet.record import FleetStore
        from kubeops.settings import default_state_dir

        records = FleetStore(default_state_dir()).list()
        if json_:
            print(json.dumps(records, indent=1))
            return
        rows = [("ID", "TASK", "PLAYBOOK", "CLUSTERS", "STATUS", "STARTED")]
        for r in records:
            done = sum(1 for m in r["members"].values() if m.get("status") == "done")
            clusters = f"{done}/{len(r['clusters'])} done: {','.join(r['clusters'])}"
            rows.append((r["id"], r.get("task", "run"), r["playbook"], clusters, r.get("status", "?"), r["started"]))
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
