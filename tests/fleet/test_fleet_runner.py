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
from kubeops.fleet.table import summary_lines
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


def _gated_runner(state: Path, bad: set[str]) -> FleetRunner:
    """Clusters in `bad` fail the GATE playbook's assert (their inventory default `ok` is false)."""
    return FleetRunner(
        state_dir=state,
        registry=default_registry(),
        settings_for=lambda name: Settings(cluster=name, state_dir=state, params={"ok": name not in bad}),
        guard_for=lambda settings: NullGuard(),
    )


def test_without_max_failures_a_failure_after_the_canaries_stops_nothing(tmp_path: Path) -> None:
    playbook = tmp_path / "gate.yaml"
    playbook.write_text(GATE)
    plan = FleetPlan(clusters=("a", "b", "c", "d"), playbook=str(playbook), canary=1)

    record = _gated_runner(tmp_path, bad={"b", "c"}).start(plan).record

    assert [record["members"][c]["status"] for c in "abcd"] == ["done", "failed", "failed", "done"]
    assert record["max_failures"] is None and record["stopped_by_failures"] is None


def test_max_failures_starts_no_further_cluster_and_resume_honours_the_stored_limit(tmp_path: Path) -> None:
    playbook = tmp_path / "gate.yaml"
    playbook.write_text(GATE)
    plan = FleetPlan(clusters=("a", "b", "c", "d", "e"), playbook=str(playbook), canary=1, max_failures=2)

    record = _gated_runner(tmp_path, bad={"b", "c", "d"}).start(plan).record

    assert [record["members"][c]["status"] for c in "abcde"] == ["done", "failed", "failed", "pending", "pending"]
    assert record["members"]["d"]["run_id"] is None  # never started, not even a run id
    assert FleetStore(tmp_path).get(record["id"])["max_failures"] == 2
    assert FleetStore(tmp_path).get(record["id"])["stopped_by_failures"] == ["b", "c"]
    assert "not started: --max-failures=2 reached: b failed, c failed" in "\n".join(summary_lines(record))

    # d and e would pass now, but b and c resume with the parameters their runs were bound to and fail again:
    # two failures in this resume, so d and e still do not start
    again = _gated_runner(tmp_path, bad=set()).resume(record["id"]).record
    assert [again["members"][c]["status"] for c in "abcde"] == ["done", "failed", "failed", "pending", "pending"]
    assert again["members"]["a"]["attempts"] == 1  # the done canary was not run again
    assert again["members"]["b"]["attempts"] == 2

    final = _gated_runner(tmp_path, bad=set()).resume(record["id"], max_failures=3).record  # a higher limit
    assert [final["members"][c]["status"] for c in "abcde"] == ["done", "failed", "failed", "done", "done"]
    assert final["max_failures"] == 3 and final["stopped_by_failures"] is None


def test_runs_in_flight_finish_when_the_limit_is_reached(tmp_path: Path) -> None:
    playbook = tmp_path / "slow-gate.yaml"
    playbook.write_text(GATE + "  - name: wait\n    action: sleep\n    args: {seconds: 0.3}\n")  # check, then wait
    plan = FleetPlan(clusters=("a", "b", "c", "d"), playbook=str(playbook), parallel=2, max_failures=1)

    record = _gated_runner(tmp_path, bad={"a"}).start(plan).record

    # a and b start together; a fails at once, reaching the limit while b is in flight: b finishes, c and d never
    # start (a's worker counts the failure before it takes the next cluster)
    assert [record["members"][c]["status"] for c in "abcd"] == ["failed", "done", "pending", "pending"]


def test_max_failures_as_a_percentage_of_the_clusters(tmp_path: Path) -> None:
    playbook = tmp_path / "gate.yaml"
    playbook.write_text(GATE)
    # 5 clusters, "25%": stop once more than 1.25 clusters failed, i.e. at the second failure
    plan = FleetPlan(clusters=("a", "b", "c", "d", "e"), playbook=str(playbook), max_failures="25%")

    record = _gated_runner(tmp_path, bad={"a", "c", "d"}).start(plan).record

    assert [record["members"][c]["status"] for c in "abcde"] == ["failed", "done", "failed", "pending", "pending"]
    assert FleetStore(tmp_path).get(record["id"])["max_failures"] == "25%"  # as given: a resume re-reads the share
    text = "\n".join(summary_lines(record))
    assert "not started: --max-failures=25% = 2 of 5 clusters reached: a failed, c failed" in text
    with pytest.raises(InputError, match="percentage from 0% to 100%"):
        _gated_runner(tmp_path, bad=set()).resume(record["id"], max_failures="120%")
    assert FleetStore(tmp_path).get(record["id"])["max_failures"] == "25%"  # a refused value changes nothing
    final = _gated_runner(tmp_path, bad=set()).resume(record["id"], max_failures="100%").record
    assert [final["members"][c]["status"] for c in "abcde"] == ["failed", "done", "failed", "done", "done"]
