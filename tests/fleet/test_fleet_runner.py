"""`FleetRunner` in this process on a playbook that touches no cluster (`hello`, which waits a moment): the order
canaries and parallel runs really happen in, read back from the run records the engine wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeops.actions.registry import default_registry
from kubeops.engine.file_store import FileCheckpointStore
from kubeops.engine.runner import NullGuard
from kubeops.errors import InputError
from kubeops.fleet.record import FleetStore
from kubeops.fleet.runner import FleetPlan, FleetRunner
from kubeops.settings import Settings


def _runner(state: Path) -> FleetRunner:
    return FleetRunner(
        state_dir=state,
        registry=default_registry(),
        settings_for=lambda name: Settings(cluster=name, state_dir=state),
        guard_for=lambda settings: NullGuard(),
    )


def _intervals(state: Path, record: dict) -> dict[str, tuple[str, str]]:
    store = FileCheckpointStore(state)
    out = {}
    for cluster, member in record["members"].items():
        run = store.load(run_id=member["run_id"])
        assert run is not None and run["cluster"] == cluster and run["status"] == "done"
        out[cluster] = (run["started"], run["finished"])
    return out


def test_canaries_run_alone_in_order_then_the_rest_n_at_a_time(tmp_path: Path) -> None:
    names = ("a", "b", "c", "d", "e", "f")
    plan = FleetPlan(clusters=names, playbook="hello", params={"wait_s": 0.3}, canary=2, parallel=2)

    result = _runner(tmp_path).start(plan)

    assert result.record["status"] == "done"
    spans = _intervals(tmp_path, result.record)
    assert spans["a"][1] <= spans["b"][0]  # canaries one after another, in order
    assert all(spans["b"][1] <= spans[c][0] for c in names[2:])  # the rest only after the last canary
    moments = sorted({t for c in names[2:] for t in spans[c]})
    in_flight = [sum(1 for c in names[2:] if spans[c][0] <= m < spans[c][1]) for m in moments]
    assert max(in_flight) == 2  # really two at a time, never more
    assert FleetStore(tmp_path).get(result.record["id"])["members"] == result.record["members"]


def test_a_dry_fleet_keeps_no_record_anywhere(tmp_path: Path) -> None:
    plan = FleetPlan(clusters=("a", "b"), playbook="hello", parallel=2, dry_run=True)
    result = _runner(tmp_path).start(plan)
    assert [m["status"] for m in result.record["members"].values()] == ["done", "done"]
    assert set(result.runs) == {"a", "b"} and all(r["dry_run"] for r in result.runs.values())
    assert FleetStore(tmp_path).list() == [] and FileCheckpointStore(tmp_path).list() == []


GATE = """\
name: gate
params:
  ok: {type: boolean, default: false}
  api_token: {type: string, default: ""}
steps:
  - name: check
    action: assert
    args: {that: "${params.ok}"}
"""


def test_a_secret_parameter_is_never_stored_so_unstarted_clusters_are_not_started_blind(tmp_path: Path) -> None:
    playbook = tmp_path / "gate.yaml"
    playbook.write_text(GATE)
    plan = FleetPlan(clusters=("a", "b"), playbook=str(playbook), params={"api_token": "s3cr3t-value"}, canary=1)

    result = _runner(tmp_path).start(plan)

    record = result.record
    assert [record["members"][c]["status"] for c in ("a", "b")] == ["failed", "pending"]
    stored = (tmp_path / "fleets" / f"{record['id']}.json").read_text()
    assert "s3cr3t-value" not in stored and record["params_redacted"] is True
    with pytest.raises(InputError, match="clusters b never started and the fleet's parameters held a secret"):
        _runner(tmp_path).resume(record["id"])
