"""The CronJob controller: Jobs started on schedule, as kube-controller-manager's cronjob controller starts them.

- validation on write, with the API server's words: ``spec.schedule`` (five fields or a descriptor, no ``TZ=``;
  `kubeops.sandbox.cron`), ``spec.timeZone`` (an IANA zone), ``spec.jobTemplate`` present; defaults for
  ``concurrencyPolicy`` (Allow), ``suspend`` (false) and the history limits (3 successful, 1 failed);
- at each scheduled time (in ``spec.timeZone``, UTC when unset) a Job ``<cronjob>-<minutes since epoch>`` is created
  from the template, owned by the CronJob (deleting the CronJob deletes its Jobs) and annotated with
  ``batch.kubernetes.io/cronjob-scheduled-timestamp``. Only the most recent missed time is started; with
  ``startingDeadlineSeconds`` a time older than that is skipped (event MissSchedule). ``concurrencyPolicy``:
  Forbid skips while a Job is active (event JobAlreadyActive), Replace deletes the active ones first;
  ``suspend: true`` starts nothing;
- status: ``active`` (references to unfinished Jobs), ``lastScheduleTime``, ``lastSuccessfulTime``; finished Jobs
  beyond the history limits are deleted, oldest first.

Time is sandbox time (`Cluster.clock`): ``POST /sandbox/v1/clock {"advance_s": 60}`` brings the next minute's run.
Each CronJob arms one timer for its next time, so an idle CronJob costs nothing between runs.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from kubeops.sandbox import events
from kubeops.sandbox.cron import CronError, as_zone, parse_schedule, zone
from kubeops.sandbox.status import ApiError
from kubeops.sandbox.store import clone, parse_time, rfc3339
from kubeops.sandbox.tracker import Tracker, controller_ref, tracker_for

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster
    from kubeops.sandbox.store import Store, WatchEvent

Obj = dict[str, Any]
Key = tuple[str, str]
RESOURCE = "cronjobs.batch"
JOBS = "jobs.batch"
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
_MISSED_LOOKBACK_S = 31 * 86400  # a missed time older than this is not searched for
_MISSED_SEARCH_STEPS = 200  # missed times walked one by one before the search skips to the last hour
_COMPONENT = "cronjob-controller"


def default_cronjob(obj: Obj, old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)


def validate_cronjob(obj: Obj, old: Obj | None) -> list[tuple[str, str, str]]:
    spec = obj.get("spec") or {}
    causes: list[tuple[str, str, str]] = []
    schedule = spec.get("schedule")
    if not schedule:
        causes.append(("FieldValueRequired", "spec.schedule", "Required value"))
    else:
        try:
            parse_schedule(str(schedule))
        except CronError as exc:
            causes.append(("FieldValueInvalid", "spec.schedule", f'Invalid value: "{schedule}": {exc}'))
    if spec.get("timeZone") is not None:
        try:
            zone(str(spec["timeZone"]))
        except CronError as exc:
            causes.append(("FieldValueInvalid", "spec.timeZone", f'Invalid value: "{spec["timeZone"]}": {exc}'))
    policy = spec.get("concurrencyPolicy")
    if policy not in ("Allow", "Forbid", "Replace"):
        causes.append(("FieldValueNotSupported", "spec.concurrencyPolicy",
                       f'Unsupported value: "{policy}": supported values: "Allow", "Forbid", "Replace"'))
    template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    if not (template.get("spec") or {}).get("containers"):
        causes.append(("FieldValueRequired", "spec.jobTemplate.spec.template.spec.containers", "Required value"))
    return causes


def _finished(job: Obj) -> str | None:
    """"Complete" or "Failed" when the Job has ended, else None."""
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


class CronJobController:
    """One reconciler for every CronJob; keys come dirty from CronJob and Job events and from timers."""

    def __init__(self, tracker: Tracker) -> None:
        self.t = tracker
        self.store: Store = tracker.store
        self._armed: dict[Key, float] = {}  # the timer each CronJob has set for its next time
        tracker.listeners[RESOURCE].append(self._on_cronjob)
        tracker.listeners[JOBS].append(self._on_job)

    def _on_cronjob(self, event: WatchEvent) -> None:
        meta = event.obj.get("metadata") or {}
        self.t.mark(RESOURCE, (meta.get("namespace") or "", meta.get("name") or ""))

    def _on_job(self, event: WatchEvent) -> None:
        job = event.obj or event.old or {}
        ref = controller_ref(job)
        if ref is not None and ref.get("kind") == "CronJob":
            self.t.mark(RESOURCE, ((job.get("metadata") or {}).get("namespace") or "", str(ref.get("name"))))

    def reconcile(self, cluster: Cluster, now: float) -> None:
        self.t.fire_timers(now)
        for key in self.t.take(RESOURCE):
            try:
                self._sync(key, now)
            except ApiError:  # a concurrent change: the next event or a short timer retries
                self.t.later(now + 0.5, RESOURCE, key)

    def _sync(self, key: Key, now: float) -> None:
        cj = self.store.try_get(RESOURCE, *key, copy=False)
        if cj is None or cj["metadata"].get("deletionTimestamp"):
            self._armed.pop(key, None)
            return
        spec = cj.get("spec") or {}
        try:
            schedule, tz = parse_schedule(str(spec.get("schedule") or "")), zone(spec.get("timeZone"))
        except CronError:
            return  # stored before validation existed (a snapshot): never scheduled, as the controller would not
        uid = cj["metadata"]["uid"]
        jobs = [j for j in self.store.iter(JOBS, key[0]) if (controller_ref(j) or {}).get("uid") == uid]
        self._trim_history(cj, jobs)
        jobs = [j for j in jobs if self.store.try_get(JOBS, key[0], j["metadata"]["name"], copy=False) is not None]
        active = [j for j in jobs if _finished(j) is None]
        status = dict(cj.get("status") or {})
        start = status.get("lastScheduleTime") or cj["metadata"].get("creationTimestamp")
        since = max(parse_time(start) if start else now, now - _MISSED_LOOKBACK_S)
        latest, cursor, steps = None, as_zone(since, tz), 0
        while (nxt := schedule.next_after(cursor)) is not None and nxt.timestamp() <= now:
            latest = cursor = nxt
            steps += 1
            if steps == _MISSED_SEARCH_STEPS and now - nxt.timestamp() > 3600:
                cursor = as_zone(now - 3600, tz)  # too many missed times (upstream warns past 100): the last hour
        if latest is not None and not spec.get("suspend"):
            deadline = spec.get("startingDeadlineSeconds")
            recorder = events.recorder_for(self.store)
            if deadline is not None and latest.timestamp() < now - int(deadline):
                recorder.emit(events.reference(cj, kind="CronJob"), "MissSchedule",
                              f"Missed scheduled time to start a job: {latest.isoformat()}", component=_COMPONENT,
                              type_="Warning")
                status["lastScheduleTime"] = rfc3339(latest.timestamp())  # not tried again
            elif active and spec.get("concurrencyPolicy") == "Forbid":
                recorder.emit(events.reference(cj, kind="CronJob"), "JobAlreadyActive",
                              "Not starting job because prior execution is running and concurrency policy is Forbid",
                              component=_COMPONENT)
            else:
                if spec.get("concurrencyPolicy") == "Replace":
                    for job in active:
                        self._delete_job(cj, job)
                    active = []
                created = self._start(cj, latest.timestamp(), latest.isoformat())
                if created is not None:
                    active.append(created)
                status["lastScheduleTime"] = rfc3339(latest.timestamp())
        succeeded = [(j.get("status") or {}).get("completionTime") for j in jobs if _finished(j) == "Complete"]
        if any(succeeded):
            status["lastSuccessfulTime"] = max(t for t in succeeded if t)
        refs = [events.reference(j, kind="Job") for j in sorted(active, key=lambda j: j["metadata"]["name"])]
        if refs:
            status["active"] = refs
        else:
            status.pop("active", None)
        if status != (cj.get("status") or {}):
            self.store.modify(RESOURCE, *key, lambda o: o.__setitem__("status", status))
        self._arm(key, schedule.next_after(as_zone(now, tz)))

    def _arm(self, key: Key, when: Any) -> None:
        if when is None:
            return
        due = when.timestamp()
        if self._armed.get(key) != due:
            self._armed[key] = due
            self.t.later(due, RESOURCE, key)

    def _start(self, cj: Obj, scheduled: float, stamp: str) -> Obj | None:
        """Create the Job of the time `scheduled`; the existing one when it was created already."""
        meta, spec = cj["metadata"], cj.get("spec") or {}
        template = spec.get("jobTemplate") or {}
        tmeta = template.get("metadata") or {}
        name = f"{meta['name']}-{int(scheduled // 60)}"
        job = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": name, "namespace": meta["namespace"],
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": {**(tmeta.get("annotations") or {}), SCHEDULED_ANNOTATION: stamp},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": clone(template.get("spec") or {}),
        }
        try:
            created = self.store.create(JOBS, job, namespace=meta["namespace"])
        except ApiError as exc:
            if exc.code != 409:
                raise
            return self.store.try_get(JOBS, meta["namespace"], name, copy=False)
        events.recorder_for(self.store).emit(events.reference(cj, kind="CronJob"), "SuccessfulCreate",
                                             f"Created job {name}", component=_COMPONENT)
        return created

    def _delete_job(self, cj: Obj, job: Obj) -> None:
        meta = job["metadata"]
        with contextlib.suppress(ApiError):
            self.store.delete(JOBS, meta["namespace"], meta["name"], propagation_policy="Background",
                              preconditions={"uid": meta["uid"]})
            events.recorder_for(self.store).emit(events.reference(cj, kind="CronJob"), "SuccessfulDelete",
                                                 f"Deleted job {meta['name']}", component=_COMPONENT)

    def _trim_history(self, cj: Obj, jobs: list[Obj]) -> None:
        spec = cj.get("spec") or {}
        for outcome, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)),
                               ("Failed", spec.get("failedJobsHistoryLimit", 1))):
            if limit is None:
                continue
            done = sorted((j for j in jobs if _finished(j) == outcome),
                          key=lambda j: ((j.get("status") or {}).get("startTime") or "", j["metadata"]["name"]))
            for job in done[: max(0, len(done) - int(limit))]:
                self._delete_job(cj, job)


def install(cluster: Cluster) -> None:
    """Defaults and validation for CronJobs, and the controller that starts their Jobs."""
    cluster.store.defaulters[RESOURCE].append(default_cronjob)
    cluster.store.validators[RESOURCE].append(validate_cronjob)
    cluster.add_reconciler(CronJobController(tracker_for(cluster)))
