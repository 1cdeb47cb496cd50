"""The fleet's pure parts: naming clusters, plan checks, exit-code precedence, the summary table, the record file."""

from __future__ import annotations

import re
import stat

import pytest

from kubeops.durations import format_duration
from kubeops.errors import InputError
from kubeops.fleet.limits import failure_limit
from kubeops.fleet.record import FleetStore, fleet_status, new_fleet_id
from kubeops.fleet.runner import FleetPlan
from kubeops.fleet.table import summary_lines
from kubeops.tasks._common import cluster_names, fleet_exit_code, is_fleet, max_failures_flag, whole_number


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    folder = tmp_path / "inventory"
    (folder / "apps").mkdir(parents=True)
    for name in ("staging", "prod-eu", "prod-us", "prod-ap", "dev"):
        (folder / f"{name}.yaml").write_text(f"name: {name}\n")
    (folder / "apps" / "prod-x.yaml").write_text("name: app\n")  # apps are not clusters
    monkeypatch.setenv("KUBEOPS_INVENTORY_DIR", str(folder))
    return folder


class TestClusterNames:
    def test_a_list_keeps_the_order_given(self, inventory) -> None:
        assert cluster_names("staging,prod-eu,prod-us", None) == ["staging", "prod-eu", "prod-us"]
        assert is_fleet("staging,prod-eu", None) and not is_fleet("staging", None)

    def test_globs_match_inventory_files_sorted_each_in_the_order_given(self, inventory) -> None:
        assert cluster_names(None, "prod-*") == ["prod-ap", "prod-eu", "prod-us"]
        assert cluster_names(None, "staging,prod-*") == ["staging", "prod-ap", "prod-eu", "prod-us"]
        assert cluster_names(None, "prod-eu,prod-*") == ["prod-eu", "prod-ap", "prod-us"]  # no cluster twice
        assert is_fleet(None, "dev")

    def test_a_glob_matching_nothing_names_the_known_clusters(self, inventory) -> None:
        with pytest.raises(InputError, match=r"--clusters=qa-\* matches no inventory file") as info:
            cluster_names(None, "qa-*")
        assert "dev, prod-ap, prod-eu, prod-us, staging" in str(info.value)

    @pytest.mark.parametrize(
        ("cluster", "clusters", "message"),
        [
            ("a,,b", None, "empty name"),
            ("a,b,a", None, "names 'a' twice"),
            ("a", "prod-*", "not both"),
        ],
    )
    def test_bad_names_are_input_errors(self, inventory, cluster, clusters, message) -> None:
        with pytest.raises(InputError, match=message):
            cluster_names(cluster, clusters)


class TestMaxFailures:
    @pytest.mark.parametrize(("given", "clusters", "limit"), [
        ("30%", 10, 4),  # Ansible's max_fail_percentage: stop once MORE than 30% (3 of 10) failed
        ("0%", 10, 1),  # the first failure stops new starts
        ("100%", 10, 11),  # never
        ("25%", 5, 2),  # 1.25 clusters: the second failure is more than 25%
        ("50%", 1, 1),
        (3, 10, 3),
        (None, 10, None),
    ])
    def test_a_count_or_a_share_of_the_clusters(self, given, clusters, limit) -> None:
        assert failure_limit(given, clusters) == limit

    @pytest.mark.parametrize("given", ["101%", "-5%", "x%", "%", "2.5%", 0, "3"])
    def test_bad_values_are_input_errors(self, given) -> None:
        with pytest.raises(InputError, match="--max-failures must be"):
            failure_limit(given, 10)

    def test_the_flag_accepts_a_count_or_a_percentage_and_names_itself_otherwise(self) -> None:
        assert max_failures_flag("25%") == "25%" and max_failures_flag(" 07% ") == "7%"
        assert max_failures_flag("2") == 2 and max_failures_flag(None) is None
        for bad, message in (("150%", "percentage from 0% to 100%, got '150%'"), ("a%", "got 'a%'"),
                             ("0", "at least 1, got '0'")):
            with pytest.raises(InputError, match=re.escape(message)):
                max_failures_flag(bad)


class TestPlan:
    def test_canary_and_parallel_are_checked(self) -> None:
        with pytest.raises(InputError, match="--canary must be between 0 and the number of clusters"):
            FleetPlan(clusters=("a", "b"), playbook="hello", canary=3)
        with pytest.raises(InputError, match="--parallel must be at least 1"):
            FleetPlan(clusters=("a", "b"), playbook="hello", parallel=0)
        with pytest.raises(InputError, match="--max-failures must be at least 1"):
            FleetPlan(clusters=("a", "b"), playbook="hello", max_failures=0)
        assert FleetPlan(clusters=("a", "b"), playbook="hello", max_failures=5).max_failures == 5  # > clusters: fine
        with pytest.raises(InputError, match="--parallel expects a whole number, got 'two'"):
            whole_number("two", "--parallel", default=1)
        assert whole_number("4", "--parallel", default=1) == 4 and whole_number(None, "--canary", default=0) == 0


class TestExitCodes:
    @pytest.mark.parametrize(
        ("statuses", "code"),
        [
            (["done", "done"], 0),
            (["done", "paused"], 0),
            (["done", "locked"], 3),
            (["rejected", "locked"], 2),
            (["locked", "failed", "rejected"], 1),
            (["failed", "pending", "pending"], 1),
        ],
    )
    def test_failed_over_rejected_over_locked(self, statuses, code) -> None:
        assert fleet_exit_code(statuses) == code

    def test_the_fleet_status_is_its_worst_member(self) -> None:
        assert fleet_status({"a": {"status": "done"}, "b": {"status": "locked"}}) == "locked"
        assert fleet_status({"a": {"status": "failed"}, "b": {"status": "pending"}}) == "failed"
        assert fleet_status({"a": {"status": "done"}}) == "done"


def _record(**members):
    return {
        "id": "fleet-x",
        "playbook": "rolling-deploy",
        "task": "deploy",
        "clusters": list(members),
        "canary": 1,
        "parallel": 2,
        "status": "failed",
        "stopped_by": "staging",
        "members": members,
    }


def test_the_table_has_a_row_per_cluster_in_fleet_order() -> None:
    record = _record(
        staging={"run_id": "r1", "status": "failed", "duration_s": 125.0, "failed_step": "roll",
                 "error": "web-v2 not ready in time\n  hint: rolled back"},
        **{"prod-eu": {"run_id": None, "status": "pending", "duration_s": 0.0}},
    )
    title, header, first, second = summary_lines(record)
    assert title.startswith("fleet fleet-x: deploy (rolling-deploy) on 2 clusters, canary 1, parallel 2: failed")
    assert header.split() == ["CLUSTER", "RUN", "STATUS", "DURATION", "STEP", "/", "MESSAGE"]
    assert first.split()[:5] == ["staging", "r1", "failed", "2m05s", "roll:"]
    assert "web-v2 not ready in time hint: rolled back" in first
    assert second.split()[:4] == ["prod-eu", "-", "pending", "-"]
    assert "not started: canary staging did not finish" in second
    assert format_duration(4.25) == "4.2s" and format_duration(3725) == "1h02m" and format_duration(None) == "-"


def test_the_record_file_round_trips_privately(tmp_path) -> None:
    store = FleetStore(tmp_path)
    record = _record(a={"run_id": "r1", "status": "done"})
    record["id"] = new_fleet_id()
    store.save(record)
    assert store.get(record["id"]) == record
    assert [r["id"] for r in store.list()] == [record["id"]]
    path = tmp_path / "fleets" / f"{record['id']}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list((tmp_path / "fleets").glob(".*")) == []  # no temp file left behind
    with pytest.raises(InputError, match="no fleet 'fleet-nope'"):
        store.get("fleet-nope")


PLAYBOOK_TASKS = ("run", "deploy", "decommission", "maintain", "drain", "cordon", "uncordon", "scale-up", "replace",
                  "replace-group", "redistribute")


_FLEET_HELP_SCRIPT = """
import json
from kubeops.tasks import ns
out = {}
for name in ns.task_names:
    args = ns[name].get_arguments()
    helps = {a.name: a.help for a in args}
    out[name] = {f: helps.get(f) for f in ("clusters", "parallel", "canary", "max_failures")}
    out[name]["shorts"] = {a.name: [n for n in a.names if len(n) == 1] for a in args}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fleet_help_by_task() -> dict[str, dict[str, str | None]]:
    """Every task's fleet flags and their help, read in a fresh interpreter: invoke's get_arguments consumes a
    task's help dict, so any earlier test in this process that printed a task's help would blank it here."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _FLEET_HELP_SCRIPT], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", PLAYBOOK_TASKS)
def test_every_playbook_task_takes_the_fleet_flags_with_runs_help(name, fleet_help_by_task) -> None:
    flags = ("clusters", "parallel", "canary", "max_failures")
    assert {f: fleet_help_by_task[name][f] for f in flags} == {f: fleet_help_by_task["run"][f] for f in flags}
    assert "once N have failed" in (fleet_help_by_task[name]["max_failures"] or "")


# Short flags scripts and crontabs already use (as of the release before the fleet flags reached these tasks):
# new flags may take any free letter, never one of these.
SHORT_FLAGS = {
    "decommission": (
        "cluster=c delete_emptydir_data=e delete_node=d dry_run=r force=f grace_period=g "
        "ignore_daemonsets=i log_format=l node=n rehearse=a snapshot=s speed=p terminate=t timeout=m "
        "wait_for_lock=w"
    ),
    "drain": (
        "cluster=c delete_emptydir_data=d dry_run=r force=f grace_period=g ignore_daemonsets=i "
        "log_format=l node=n rehearse=e snapshot=s speed=p timeout=t wait_for_lock=w"
    ),
    "maintain": (
        "cluster=l command=c delete_emptydir_data=d dry_run=y force=f grace_period=g ignore_daemonsets=i "
        "no_sudo=o node=n reboot=r rehearse=e snapshot=s speed=p timeout=t wait_for_lock=w"
    ),
    "replace": (
        "allow_raise_max=a cluster=c dry_run=d log_format=l node=n rehearse=r snapshot=s speed=p "
        "wait_for_lock=w"
    ),
    "replace-group": (
        "allow_raise_max=a batch=b canary=n cluster=c clusters=u dry_run=d group=g log_format=l "
        "parallel=p rehearse=r snapshot=s speed=e wait_for_lock=w"
    ),
    "deploy": (
        "app=a canary=n cluster=c clusters=u dry_run=d log_format=l parallel=p rehearse=r snapshot=o "
        "speed=e step_timeout=t surge=s version=v wait_for_lock=w"
    ),
    "run": (
        "canary=n cluster=c clusters=u dry_run=d log_format=l parallel=r param=a playbook=p "
        "wait_for_lock=w"
    ),
}


@pytest.mark.parametrize("name", sorted(SHORT_FLAGS))
def test_options_keep_their_short_flags(name, fleet_help_by_task) -> None:
    shorts = fleet_help_by_task[name]["shorts"]
    for pair in SHORT_FLAGS[name].split():
        option, letter = pair.split("=")
        assert shorts.get(option) == [letter], (name, option, shorts.get(option))
