"""The soak: real playbooks on fresh sandboxes (+ moto) with injected API faults and SIGKILLs at random moments,
resumed until each run ends, then checked against what the playbook promises.

Used by benchmarks/soak.py (the long version, >= 100 kills, bounded by --minutes) and by a short test in the
suite. Everything goes through the CLI and the wire: `kubeops <task>` and `kubeops resume --run=ID` run as real
subprocesses; AWS and Kubernetes are read back directly (boto3 on moto, HTTP on the sandbox).

Invariants checked after each run ends (each is one "violation" when broken):
- the run ended `done`, no record of the sandbox is left running/failed/paused (no orphaned run);
- each side effect once: instances launched and terminated exactly as the playbook promises (counted in EC2,
  which keeps terminated instances), the group's desired/max as before (or desired-1 for a decommission with
  terminate), no process left suspended;
- the nodes in the promised state (replaced/decommissioned node gone, the right number of Ready workers);
- pods of a controller never lost: apps/web never has fewer Ready pods than its budget allows (sampled every
  0.1 s all through the run, kills and resumes included), is fully Ready at the end, and (deploy) exactly one
  controller of the new version serves all replicas;
- the cluster lock released (`kubeops lock` says it is not locked).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.aws_sandbox import GROUP, KUBEOPS, AwsSandbox, scenario

SCENARIOS = ("decommission", "replace-node", "replace-group", "deploy")
FAULTS = {  # about 10 % of Kubernetes API requests get one; every request gets a little latency
    "error_429_rate": 0.03,
    "error_500_rate": 0.02,
    "error_503_rate": 0.02,
    "drop_rate": 0.03,
    "latency_ms": 5,
    "jitter_ms": 20,
    "retry_after_s": 1,
}
APP = "shop"
APP_YAML = (
    f"name: {APP}\nrole: frontend-{APP}\nimage: example/{APP}\nversion: '1'\nreplicas: 3\nnamespace: apps\n"
    "ports: [{name: http, port: 80, target_port: 8080}]\n"
    "rollout: {surge: 1, step_timeout_s: 60}\npod_annotations: {sandbox.kubeops.io/readiness-delay-s: '0.5'}\n"
)


@dataclass
class Outcome:
    """What one scenario run did and what it broke."""

    scenario: str
    kills: int = 0
    resumes: int = 0
    faults: int = 0
    requests: int = 0
    seconds: float = 0.0
    lowest_ready: int = -1  # fewest Ready apps/web pods seen while the run went on (its budget promises 2)
    ready_samples: int = 0
    violations: list[str] = field(default_factory=list)


def _lock_free(env: AwsSandbox) -> bool:
    done = env.kubeops("lock")
    lines = done.stdout.strip().splitlines()
    # a run SIGKILLed after its record said done (but before it released the lease) leaves the lease to expire
    # after its TTL, by design: expired is free for the next run
    free = ("is not locked", " is free", "(its holder stopped renewing)")
    return done.returncode == 0 and bool(lines) and all(any(f in ln for f in free) for ln in lines)


def _all_instances(env: AwsSandbox) -> dict[str, str]:
    """Every EC2 instance moto knows, terminated ones included: id -> state."""
    out = {}
    for reservation in env.boto("ec2").describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            out[instance["InstanceId"]] = instance["State"]["Name"]
    return out


WEB_MIN_READY = 2  # apps/web: 3 replicas, PodDisruptionBudget maxUnavailable 1


class ReadyWatch:
    """Samples the Ready pods of apps/web all through a run (kills and resumes included), keeping the lowest.

    Reads go straight to the sandbox and can be faulted like any request: a faulted sample is simply skipped.
    Counts Ready pods, not the Deployment's status, so a pod on a node that vanished counts as lost at once.
    """

    def __init__(self, env: AwsSandbox) -> None:
        self.env = env
        self.lowest = WEB_MIN_READY + 100
        self.lowest_at = ""
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                status, body = self.env.sb.request("GET", "/api/v1/namespaces/apps/pods?labelSelector=app%3Dweb")
            except OSError:
                continue
            if status != 200 or not isinstance(body, dict):
                continue
            ready = sum(
                1 for pod in body.get("items", [])
                if not pod["metadata"].get("deletionTimestamp")
                and any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (pod.get("status") or {}).get("conditions") or [])
            )
            self.samples += 1
            if ready < self.lowest:
                self.lowest, self.lowest_at = ready, time.strftime("%H:%M:%S")


def _set_faults(env: AwsSandbox, faults: dict[str, Any]) -> None:
    status, body = env.sb.request("POST", "/sandbox/v1/faults", faults)
    assert status == 200, body


class Driver:
    """Runs one command to the end through kills and resumes."""

    def __init__(self, env: AwsSandbox, rng: random.Random, outcome: Outcome, *, kills: int, kill_window_s: float,
                 deadline: float, logs: Path) -> None:
        self.env, self.rng, self.outcome = env, rng, outcome
        self.kills_left = kills
        self.kill_window_s = kill_window_s
        self.deadline = deadline
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)

    def _records(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.env.runs()}

    def _launch(self, args: list[str]) -> int | None:
        """Run `args`; maybe SIGKILL it at a random moment. Returns the exit code (None when killed)."""
        index = self.outcome.kills + self.outcome.resumes
        with (self.logs / f"{self.outcome.scenario}-{index}.out").open("w") as out, \
                (self.logs / f"{self.outcome.scenario}-{index}.err").open("w") as err:
            proc = subprocess.Popen([*KUBEOPS, *args], stdout=out, stderr=err, env=self.env.env)
            if self.kills_left > 0:
                try:
                    return proc.wait(timeout=self.rng.uniform(0.4, self.kill_window_s))
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    self.kills_left -= 1
                    self.outcome.kills += 1
                    return None
            try:
                return proc.wait(timeout=max(5.0, self.deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return None

    def drive(self, args: list[str]) -> dict[str, Any] | None:
        """The final record of the run `args` starts, after as many kills and resumes as it takes."""
        before = set(self._records())
        run_id: str | None = None
        while time.monotonic() < self.deadline:
            if run_id is None:
                self._launch([*args, "--wait-for-lock=60s"])
                new = sorted(set(self._records()) - before)
                if new:
                    run_id = new[-1]
            else:
                self.outcome.resumes += 1
                self._launch(["resume", f"--run={run_id}", "--wait-for-lock=60s"])
            if run_id is not None:
                record = self._records().get(run_id)
                if record and record["status"] in ("done", "rejected"):
                    return record
        self.outcome.violations.append(f"run {run_id or '(never started)'} did not end before the deadline")
        return self._records().get(run_id) if run_id else None


def soak_one(name: str, root: Path, *, seed: int, kills: int, kill_window_s: float, deadline: float,
             faults: dict[str, Any] | None = None) -> Outcome:
    """One scenario on a fresh sandbox: set up, drive through kills, check every invariant."""
    rng = random.Random(seed)
    outcome = Outcome(name)
    began = time.monotonic()
    env = AwsSandbox(root, scenario(desired=3, max_size=6, replicas=3, join_delay_s=1)).start()
    try:
        env.wait_for(env.deployment_ready, "web Ready")
        args, check = _prepare(name, env)
        group_before = env.group_state()
        instances_before = _all_instances(env)
        requests_before = len(env.requests())
        _set_faults(env, {**FAULTS, **(faults or {}), "seed": seed})
        driver = Driver(env, rng, outcome, kills=kills, kill_window_s=kill_window_s, deadline=deadline,
                        logs=root / "soak-logs")
        watch = ReadyWatch(env)
        watch.start()
        try:
            record = driver.drive(args)
        finally:
            watch.stop()
        _set_faults(env, {})
        seen = env.requests()[requests_before:]
        outcome.requests = len(seen)
        outcome.faults = sum(1 for r in seen if r.get("fault") and r.get("fault") != "latency")
        v = outcome.violations
        if record is None:
            v.append("no run record was ever written")
        elif record["status"] != "done":
            v.append(f"run {record['id']} ended {record['status']}: {record.get('error')}")
        for other in env.runs():
            if other["status"] in ("running", "failed", "paused"):
                v.append(f"orphaned run {other['id']} left {other['status']}")
        if not _wait(lambda: _lock_free(env), 20):
            v.append("the cluster lock is still held")
        after = env.group_state()
        if after["suspended"]:
            v.append(f"processes left suspended: {after['suspended']}")
        if after["max"] != group_before["max"]:
            v.append(f"group max {after['max']} != {group_before['max']} before")
        instances_after = _all_instances(env)
        launched = sorted(set(instances_after) - set(instances_before))
        gone = sorted(i for i, state in instances_after.items()
                      if state in ("shutting-down", "terminated") and instances_before.get(i) == "running")
        v.extend(check(env, group_before, after, launched, gone))
        outcome.lowest_ready, outcome.ready_samples = watch.lowest, watch.samples
        if watch.lowest < WEB_MIN_READY:
            v.append(f"apps/web had only {watch.lowest} Ready pods at {watch.lowest_at}; its budget promises "
                     f"{WEB_MIN_READY}: pods of a controller were lost")
        if not _wait(env.deployment_ready, 60):
            v.append("Deployment apps/web is not fully Ready: pods of a controller were lost")
    finally:
        env.stop()
    outcome.seconds = time.monotonic() - began
    return outcome


def _wait(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return True
        except Exception:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


Check = Callable[[AwsSandbox, dict[str, Any], dict[str, Any], list[str], list[str]], list[str]]


def _prepare(name: str, env: AwsSandbox) -> tuple[list[str], Check]:
    """The command of scenario `name` and the check of what it promises."""
    node, old = sorted(env.ready_workers().items())[0]

    def workers_ready(count: int) -> bool:
        return len(env.ready_workers()) == count

    if name == "decommission":
        def check_decommission(env: AwsSandbox, before: dict[str, Any], after: dict[str, Any],
                               launched: list[str], gone: list[str]) -> list[str]:
            v = []
            if launched or gone != [old]:
                v.append(f"decommission: launched {launched}, terminated {gone}; expected none and [{old}]")
            if after["desired"] != before["desired"] - 1:
                v.append(f"decommission: desired {after['desired']}, expected {before['desired'] - 1}")
            if node in {n["metadata"]["name"] for n in env.nodes()}:
                v.append(f"decommission: node {node} still exists")
            return v

        return ["decommission", f"--node={node}", "--terminate", "--delete-node"], check_decommission

    if name == "replace-node":
        def check_replace(env: AwsSandbox, before: dict[str, Any], after: dict[str, Any],
                          launched: list[str], gone: list[str]) -> list[str]:
            v = []
            if len(launched) != 1 or gone != [old]:
                v.append(f"replace-node: launched {launched}, terminated {gone}; expected one and [{old}]")
            if after["desired"] != before["desired"]:
                v.append(f"replace-node: desired {after['desired']} != {before['desired']} before")
            if node in {n["metadata"]["name"] for n in env.nodes()}:
                v.append(f"replace-node: node {node} still exists")
            if not _wait(lambda: workers_ready(before["desired"]), 30):
                v.append(f"replace-node: {len(env.ready_workers())} Ready workers, expected {before['desired']}")
            return v

        return ["replace", f"--node={node}"], check_replace

    if name == "replace-group":
        def check_group(env: AwsSandbox, before: dict[str, Any], after: dict[str, Any],
                        launched: list[str], gone: list[str]) -> list[str]:
            v = []
            if len(launched) != len(before["instances"]) or gone != sorted(before["instances"]):
                v.append(f"replace-group: launched {launched}, terminated {gone}; expected "
                         f"{len(before['instances'])} and {before['instances']}")
            if after["desired"] != before["desired"]:
                v.append(f"replace-group: desired {after['desired']} != {before['desired']} before")
            if set(after["instances"]) & set(before["instances"]):
                v.append("replace-group: old instances still in the group")
            if not _wait(lambda: workers_ready(before["desired"]), 30):
                v.append(f"replace-group: {len(env.ready_workers())} Ready workers, expected {before['desired']}")
            return v

        return ["replace-group", f"--group={GROUP}"], check_group

    if name == "deploy":
        apps = env.root / "inventory" / "apps"
        apps.mkdir(parents=True, exist_ok=True)
        (apps / f"{APP}.yaml").write_text(APP_YAML)
        first = env.kubeops("deploy", f"--app={APP}", "--version=1")
        assert first.returncode == 0, first.stderr[-2000:]

        def check_deploy(env: AwsSandbox, before: dict[str, Any], after: dict[str, Any],
                         launched: list[str], gone: list[str]) -> list[str]:
            v = []
            if launched or gone:
                v.append(f"deploy touched instances: launched {launched}, terminated {gone}")
            items = env.get("/apis/apps/v1/namespaces/apps/deployments")["items"]
            mine = {d["metadata"]["name"]: d for d in items if d["metadata"]["name"].startswith(f"{APP}-")}
            if list(mine) != [f"{APP}-v2"]:
                v.append(f"deploy: controllers {sorted(mine)}, expected only {APP}-v2")
            elif not _wait(lambda: env.deployment_ready(f"{APP}-v2"), 30):
                v.append(f"deploy: {APP}-v2 not fully Ready: pods lost")
            return v

        return ["deploy", f"--app={APP}", "--version=2"], check_deploy

    raise ValueError(f"unknown soak scenario {name!r}; known: {', '.join(SCENARIOS)}")


def table(outcomes: list[Outcome]) -> str:
    """kills, resumes, faults injected and violations per scenario, with a total row."""
    rows = [("scenario", "runs", "kills", "resumes", "requests", "faults", "min ready web", "violations", "seconds")]
    by: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by.setdefault(o.scenario, []).append(o)
    for name, group in [*by.items(), ("TOTAL", outcomes)]:
        rows.append((name, str(len(group)), str(sum(o.kills for o in group)), str(sum(o.resumes for o in group)),
                     str(sum(o.requests for o in group)), str(sum(o.faults for o in group)),
                     str(min(o.lowest_ready for o in group)),
                     str(sum(len(o.violations) for o in group)), f"{sum(o.seconds for o in group):.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    for o in outcomes:
        lines.extend(f"VIOLATION {o.scenario}: {text}" for text in o.violations)
    return "\n".join(lines)


def summary_json(outcomes: list[Outcome]) -> str:
    return json.dumps([o.__dict__ for o in outcomes], indent=1)
