"""CronJobs on the sandbox as on a cluster: kubectl creates one, sandbox time passes, Jobs start on schedule.

What a user sees: a Job named ``<cronjob>-<minutes since epoch>`` per scheduled time, owned by the CronJob and
annotated with the scheduled time; ``kubectl get cronjobs,jobs`` columns as kube-apiserver prints them; Forbid
skips while a Job runs, Replace swaps it, suspend starts nothing, finished Jobs beyond the history limit go; an
invalid schedule is refused with the API server's words.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kubeops.sandbox.testing import SandboxProcess, kubectl_binary

try:
    kubectl_binary("1.33")
except FileNotFoundError:  # .ci/run checks kubectl is installed; a dev box without it skips loudly
    pytest.skip("kubectl 1.33 is not installed", allow_module_level=True)

NS = "batchy"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    scenario = {"name": "cron", "settings": {"tick_ms": 50}, "namespaces": [NS], "nodes": [{"name": "worker-0"}]}
    with SandboxProcess(scenario, state_dir=tmp_path_factory.mktemp("cron") / "sandbox") as proc:
        yield proc


def cronjob(name: str, schedule: str = "*/5 * * * *", *, runs_s: float | None = None, **spec: Any) -> dict[str, Any]:
    """A CronJob whose pods exit 0 after `runs_s` seconds of sandbox time (None: they run until deleted)."""
    pod: dict[str, Any] = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    if runs_s is not None:
        pod["metadata"] = {"annotations": {"sandbox.kubeops.io/succeed-after-s": str(runs_s)}}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": NS},
            "spec": {"schedule": schedule, "jobTemplate": {"metadata": {"labels": {"cron": name}},
                                                           "spec": {"template": pod}}, **spec}}


def create(sb: SandboxProcess, obj: dict[str, Any]) -> dict[str, Any]:
    status, body = sb.request("POST", f"/apis/batch/v1/namespaces/{NS}/cronjobs", obj)
    assert status == 201, body
    return dict(body)


def jobs_of(sb: SandboxProcess, name: str) -> list[dict[str, Any]]:
    _, body = sb.request("GET", f"/apis/batch/v1/namespaces/{NS}/jobs?labelSelector=cron%3D{name}")
    return sorted(body["items"], key=lambda j: j["metadata"]["name"])


def pass_minutes(sb: SandboxProcess, minutes: float) -> None:
    sb.advance_clock(minutes * 60)
    sb.tick()
    sb.tick()


def test_a_job_per_scheduled_time_owned_and_annotated_with_the_cluster_columns(sb: SandboxProcess) -> None:
    made = sb.kubectl("create", "cronjob", "nightly", "-n", NS, "--image=busybox", "--schedule=*/5 * * * *", "--",
                      "echo", "hi")
    assert made.returncode == 0, made.stderr
    sb.request("PATCH", f"/apis/batch/v1/namespaces/{NS}/cronjobs/nightly",
               {"spec": {"jobTemplate": {"metadata": {"labels": {"cron": "nightly"}}}}},
               content_type="application/merge-patch+json")
    assert jobs_of(sb, "nightly") == []  # nothing before its time
    pass_minutes(sb, 5)
    (job,) = jobs_of(sb, "nightly")
    scheduled = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    minute = int(job["metadata"]["name"].rsplit("-", 1)[1])
    assert scheduled.endswith("+00:00") and minute % 5 == 0
    (owner,) = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("CronJob", "nightly", True)
    listed = sb.kubectl("get", "cronjob", "nightly", "-n", NS)
    assert listed.stdout.split("\n")[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST",
                                                     "SCHEDULE", "AGE"]
    row = listed.stdout.split("\n")[1].split()
    assert row[:6] == ["nightly", "*/5", "*", "*", "*", "*"] and row[6:9] == ["<none>", "False", "1"]
    jobs = sb.kubectl("get", "jobs", "-n", NS)
    assert jobs.stdout.split("\n")[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert jobs.stdout.split("\n")[1].split()[:3] == [job["metadata"]["name"], "Running", "0/1"]
    pass_minutes(sb, 5)  # another time: Allow starts a second Job beside the running one
    assert len(jobs_of(sb, "nightly")) == 2
    events = sb.kubectl("get", "events", "-n", NS, "--field-selector", "involvedObject.name=nightly")
    assert "SuccessfulCreate" in events.stdout and f"Created job {job['metadata']['name']}" in events.stdout
    deleted = sb.kubectl("delete", "cronjob", "nightly", "-n", NS, "--cascade=foreground", "--wait=true")
    assert deleted.returncode == 0, deleted.stderr
    assert jobs_of(sb, "nightly") == []  # the CronJob's Jobs went with it


def test_forbid_skips_while_a_job_runs_and_replace_swaps_it(sb: SandboxProcess) -> None:
    create(sb, cronjob("forbid", concurrencyPolicy="Forbid", runs_s=400))  # runs past the next time, not two
    create(sb, cronjob("replace", concurrencyPolicy="Replace"))
    pass_minutes(sb, 5)
    first_forbid, first_replace = jobs_of(sb, "forbid"), jobs_of(sb, "replace")
    assert len(first_forbid) == 1 and len(first_replace) == 1
    pass_minutes(sb, 5)
    assert [j["metadata"]["name"] for j in jobs_of(sb, "forbid")] == [first_forbid[0]["metadata"]["name"]]
    (swapped,) = [j for j in jobs_of(sb, "replace") if not j["metadata"].get("deletionTimestamp")]
    assert swapped["metadata"]["name"] != first_replace[0]["metadata"]["name"]
    pass_minutes(sb, 5)  # the first one has ended meanwhile: this time starts
    assert len(jobs_of(sb, "forbid")) == 2
    events = sb.kubectl("get", "events", "-n", NS, "--field-selector", "involvedObject.name=forbid")
    assert "JobAlreadyActive" in events.stdout


def test_suspend_starts_nothing_and_history_keeps_the_limits(sb: SandboxProcess) -> None:
    create(sb, cronjob("paused", suspend=True))
    create(sb, cronjob("history", "* * * * *", runs_s=10, successfulJobsHistoryLimit=1))
    for _ in range(4):
        pass_minutes(sb, 1)
    assert jobs_of(sb, "paused") == []
    done = [j for j in jobs_of(sb, "history") if any(c["type"] == "Complete" for c in
                                                      (j.get("status") or {}).get("conditions") or ())]
    assert len(done) == 1  # three finished by now; the older successful ones were deleted
    assert len(jobs_of(sb, "history")) <= 2  # that one, and the latest if it still runs
    _, cj = sb.request("GET", f"/apis/batch/v1/namespaces/{NS}/cronjobs/history")
    assert cj["status"]["lastSuccessfulTime"] and cj["status"]["lastScheduleTime"]


def test_an_invalid_schedule_or_zone_is_refused_with_the_api_servers_words(sb: SandboxProcess) -> None:
    bad = sb.kubectl("create", "cronjob", "bad", "-n", NS, "--image=busybox", "--schedule=61 * * * *")
    assert bad.returncode != 0
    assert ('CronJob.batch "bad" is invalid: spec.schedule: Invalid value: "61 * * * *": end of range (61) above '
            "maximum (59): 61") in bad.stderr
    status, body = sb.request("POST", f"/apis/batch/v1/namespaces/{NS}/cronjobs",
                              cronjob("zoned", timeZone="Mars/Olympus"))
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec.timeZone"
    assert 'Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus' in body["message"]


def test_a_month_of_missed_seconds_starts_one_job_without_walking_them_all(sb: SandboxProcess) -> None:
    create(sb, cronjob("often", "@every 1s", suspend=True))
    pass_minutes(sb, 30 * 24 * 60)  # a month suspended: 2.6 million missed times
    sb.request("PATCH", f"/apis/batch/v1/namespaces/{NS}/cronjobs/often", {"spec": {"suspend": False}},
               content_type="application/merge-patch+json")
    sb.tick()
    sb.tick()
    started = jobs_of(sb, "often")
    assert 1 <= len(started) <= 3  # only the latest missed time (and maybe the next second's), not a backlog
    code, _ = sb.request("GET", "/api/v1/namespaces/default/configmaps")
    assert code == 200  # the sandbox kept serving
