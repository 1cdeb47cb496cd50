"""The runner: outputs and references, when, retry, timeout, on_failure, cleanup, dry run, guard hooks, logs."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from kubeops.engine.api import get_run, list_runs, resume_run, run_playbook
from kubeops.engine.file_store import FileCheckpointStore
from kubeops.errors import InputError, LockHeld, OutsideWindow, StepFailed
from kubeops.model.playbook import Step


def test_outputs_flow_with_types_kept_for_whole_references(settings, registry, write_playbook) -> None:
    pb = write_playbook(
        """
name: flow
steps:
  - name: a
    action: noop
    args:
      outputs: {n: 3, items: [x, y], nested: {k: [1, {deep: v}]}}
  - name: b
    action: t.typed
    args:
      name: "n=${steps.a.outputs.n} deep=${steps.a.outputs.nested.k[1].deep}"
      count: ${steps.a.outputs.n}
      items: ${steps.a.outputs.items}
  - name: c
    action: t.typed
    args:
      name: ${steps.a.outputs.items[1]}
      count: 1
      flag: ${run.dry_run}
      items: ["${run.id}", "literal $${not.a.ref}"]
"""
    )
    record = run_playbook(pb, settings=settings, registry=registry)
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["b"]["outputs"]["echo"] == {
        "name": "n=3 deep=v",
        "count": 3,
        "ratio": 1.0,
        "flag": False,
        "items": ["x", "y"],
    }
    assert steps["c"]["outputs"]["echo"]["name"] == "y"
    assert steps["c"]["outputs"]["echo"]["items"] == [record["id"], "literal ${not.a.ref}"]
    assert record["status"] == "done"


def test_when_skips_and_operators(settings, registry, write_playbook) -> None:
    pb = write_playbook(
        """
name: when
params:
  mode: {type: string, default: fast}
  enabled: {type: boolean, default: false}
steps:
  - name: disabled
    action: noop
    when: ${params.enabled}
  - name: eq
    action: noop
    when: {equals: ["${params.mode}", fast]}
  - name: neq
    action: noop
    when: {not: {equals: ["${params.mode}", fast]}}
  - name: any
    action: noop
    when: {any: ["${params.enabled}", {not_equals: ["${params.mode}", slow]}]}
  - name: ref-to-skipped
    action: noop
    when: ${steps.disabled.outputs.x}
"""
    )
    with capture_logs() as logs:
        record = run_playbook(pb, settings=settings, registry=registry)
    status = {s["name"]: s["status"] for s in record["steps"]}
    assert status == {"disabled": "skipped", "eq": "done", "neq": "skipped", "any": "done", "ref-to-skipped": "skipped"}
    skipped = [e["step"] for e in logs if e["event"] == "step.skipped"]
    assert skipped == ["disabled", "neq", "ref-to-skipped"]


def test_retry_with_backoff_then_success(settings, registry, write_playbook, tmp_path) -> None:
    pb = write_playbook(
        f"""
name: retry
steps:
  - name: flaky
    action: t.flaky
    args: {{counter: {tmp_path}/n, failures: 2}}
    retry: {{attempts: 3, backoff_s: 0.5, max_backoff_s: 0.8}}
"""
    )
    from kubeops.engine.runner import Runner
    from kubeops.model.loader import load_playbook

    delays: list[float] = []
    runner = Runner(
        settings=settings, registry=registry, store=FileCheckpointStore(settings.state_dir), sleep=delays.append
    )
    with capture_logs() as logs:
        record = runner.start(load_playbook(pb, registry=registry), params={})
    assert record["status"] == "done"
    assert record["steps"][0]["attempts"] == 3
    assert delays == [0.5, 0.8]
    assert [e["attempt"] for e in logs if e["event"] == "step.retry"] == [2, 3]


def test_retries_exhausted_fail_the_run(settings, registry, write_playbook, tmp_path) -> None:
    pb = write_playbook(
        f"""
name: retry
steps:
  - name: flaky
    action: t.flaky
    args: {{counter: {tmp_path}/n, failures: 5, transient: false}}
    retry: {{attempts: 2, backoff_s: 0}}
"""
    )
    with pytest.raises(StepFailed) as info:
        run_playbook(pb, settings=settings, registry=registry)
    assert info.value.step == "flaky"
    assert "invoke resume --run=" in str(info.value)
    assert (tmp_path / "n").read_text() == "2"


def test_input_error_is_not_retried_and_rejects_the_run_without_cleanup(settings, registry, write_playbook, tmp_path):
    pb = write_playbook(
        f"""
name: reject
steps:
  - name: find
    action: t.lookup
    args: {{node: ghost, known: [w1]}}
    retry: {{attempts: 3, backoff_s: 0}}
  - name: change
    action: t.write
    args: {{path: {tmp_path}/changed, text: x}}
cleanup:
  - name: restore
    action: t.write
    always: true
    args: {{path: {tmp_path}/restored, text: x}}
"""
    )
    with pytest.raises(InputError) as info:
        run_playbook(pb, settings=settings, registry=registry)
    record = info.value.record  # type: ignore[attr-defined]
    assert "node 'ghost' not found" in str(info.value)
    assert record["status"] == "rejected"
    assert record["steps"][0]["attempts"] == 1
    assert not (tmp_path / "changed").exists() and not (tmp_path / "restored").exists()


def test_input_error_after_a_mutation_fails_normally_and_cleans_up(settings, registry, write_playbook, tmp_path):
    pb = write_playbook(
        f"""
name: late
steps:
  - name: change
    action: t.write
    args: {{path: {tmp_path}/changed, text: x}}
  - name: find
    action: t.lookup
    args: {{node: ghost}}
cleanup:
  - name: restore
    action: t.write
    args: {{path: {tmp_path}/restored, text: x}}
"""
    )
    with pytest.raises(StepFailed):
        run_playbook(pb, settings=settings, registry=registry)
    assert (tmp_path / "restored").exists()


def test_timeout_fails_a_step_that_overran(settings, registry, write_playbook) -> None:
    pb = write_playbook(
        "name: t\nsteps:\n  - name: slow\n    action: t.slow\n    args: {seconds: 0.3}\n    timeout: 100ms\n"
    )
    with pytest.raises(StepFailed) as info:
        run_playbook(pb, settings=settings, registry=registry)
    assert "timed out after 0.1s" in str(info.value)


def test_sleep_honours_the_step_deadline(settings, registry, write_playbook) -> None:
    pb = write_playbook(
        "name: t\nsteps:\n  - name: nap\n    action: sleep\n    args: {seconds: 30}\n    timeout: 0.2s\n"
    )
    began = time.monotonic()
    with pytest.raises(StepFailed) as info:
        run_playbook(pb, settings=settings, registry=registry)
    assert time.monotonic() - began < 5
    assert "timed out" in str(info.value)


def test_on_failure_continue_keeps_going(settings, registry, write_playbook) -> None:
    pb = write_playbook(
        "name: t\nsteps:\n  - name: bad\n    action: fail\n    on_failure: continue\n"
        "  - name: after\n    action: noop\n    when: {not: '${steps.bad.outputs}'}\n"
    )
    record = run_playbook(pb, settings=settings, registry=registry)
    assert record["status"] == "done"
    assert [s["status"] for s in record["steps"]] == ["failed", "done"]


CLEANUP = """
name: cleanup
params:
  fail: {{type: boolean, default: false}}
steps:
  - name: one
    action: t.write
    args: {{path: {d}/log, text: one}}
  - name: two
    action: t.write
    args: {{path: {d}/log, text: two}}
  - name: three
    action: assert
    args: {{that: "${{params.fail}}", equals: false, message: step three refused}}
  - name: four
    action: t.write
    args: {{path: {d}/log, text: four}}
cleanup:
  - name: on-failure
    action: t.write
    args: {{path: {d}/log, text: cleanup-on-failure}}
  - name: finally
    action: t.write
    always: true
    args: {{path: {d}/log, text: "finally ${{steps.one.outputs.written}}"}}
"""


def test_failure_in_step_three_runs_cleanup_then_resume_finishes(settings, registry, write_playbook, tmp_path):
    pb = write_playbook(CLEANUP.format(d=tmp_path))
    with capture_logs() as logs, pytest.raises(StepFailed) as info:
        run_playbook(pb, settings=settings, registry=registry, params={"fail": True})
    run_id = info.value.run_id
    assert (tmp_path / "log").read_text().splitlines() == ["one", "two", "cleanup-on-failure", "finally one"]
    assert [e["event"] for e in logs if e.get("step") == "three"] == ["step.started", "step.failed"]
    record = get_run(run_id, settings=settings)
    assert record["status"] == "failed" and record["failed_step"] == "three"
    assert "step three refused" in record["error"]
    # The cause is fixed (here: the parameter the check reads), then resume continues from step three.
    record["params"]["fail"] = False
    FileCheckpointStore(settings.state_dir).save(record=record)
    final = resume_run(None, settings=settings, registry=registry)
    assert final["id"] == run_id and final["status"] == "done"
    assert (tmp_path / "log").read_text().splitlines() == [
        "one",
        "two",
        "cleanup-on-failure",
        "finally one",
        "four",
        "finally one",
    ]
    assert {s["name"]: s["status"] for s in final["steps"]}["on-failure"] == "skipped"


def test_success_runs_only_always_cleanup(settings, registry, write_playbook, tmp_path):
    pb = write_playbook(CLEANUP.format(d=tmp_path))
    record = run_playbook(pb, settings=settings, registry=registry)
    assert (tmp_path / "log").read_text().splitlines() == ["one", "two", "four", "finally one"]
    assert record["status"] == "done"


def test_dry_run_mutates_nothing_and_leaves_no_record(settings, registry, write_playbook, tmp_path):
    (tmp_path / "input").write_text("existing\n")
    pb = write_playbook(
        f"""
name: dry
steps:
  - name: read
    action: t.read
    args: {{path: {tmp_path}/input}}
  - name: write
    action: t.write
    args: {{path: {tmp_path}/output, text: "copy of ${{steps.read.outputs.lines[0]}}"}}
  - name: use-plan
    action: t.typed
    args: {{name: "${{steps.write.outputs.written}}", count: 1}}
"""
    )
    record = run_playbook(pb, settings=settings, registry=registry, dry_run=True)
    steps = {s["name"]: s for s in record["steps"]}
    assert not (tmp_path / "output").exists()
    assert steps["read"]["outputs"]["lines"] == ["existing"] and steps["read"]["plan"] is None
    assert steps["write"]["plan"]["summary"] == f"append 'copy of existing' to {tmp_path}/output"
    assert steps["use-plan"]["outputs"]["echo"]["name"] == "copy of existing"
    assert record["dry_run"] is True
    assert not (settings.state_dir / "runs").exists()
    assert list_runs(settings=settings) == []


def test_checkpoint_file_is_private_complete_json(settings, registry, write_playbook):
    pb = write_playbook(
        "name: rec\nparams:\n  who: {default: x}\nsteps:\n  - {name: a, action: noop}\n"
        "  - {name: b, action: noop, when: false}\n"
    )
    record = run_playbook(pb, settings=settings, registry=registry, params={"who": "y"})
    path = settings.state_dir / "runs" / f"{record['id']}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{4}", data["id"])
    assert data["playbook"]["name"] == "rec" and data["playbook"]["hash"].startswith("sha256:")
    assert data["params"] == {"who": "y"} and data["cluster"] == "test"
    assert data["pid"] == os.getpid() and data["host"]
    assert data["started"] and data["finished"]
    assert [(s["name"], s["status"], s["attempts"]) for s in data["steps"]] == [("a", "done", 1), ("b", "skipped", 0)]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


class _Crash(BaseException):
    """Stands in for SIGKILL inside a step: nothing after the raise runs."""


def test_step_left_running_is_reentered_with_intent(settings, registry, write_playbook, tmp_path):
    from dataclasses import dataclass

    from kubeops.actions.registry import Plan, action

    calls: list[tuple[bool, Any]] = []

    @dataclass(frozen=True)
    class P:
        target: str

    def act(ctx, p):  # type: ignore[no-untyped-def]
        calls.append((ctx.resumed, ctx.intent))
        if ctx.intent is None:
            ctx.record_intent({"target": p.target, "before": 1})
            raise _Crash()
        return {"reconciled_from": ctx.intent["before"]}

    action("t.intent", params=P, mutates=True, plan=lambda c, p: Plan("x"), registry=registry)(act)
    pb = write_playbook(
        "name: crash\nsteps:\n  - {name: a, action: noop}\n"
        "  - {name: b, action: t.intent, args: {target: g}}\n  - {name: c, action: noop}\n"
    )
    with pytest.raises(_Crash):
        run_playbook(pb, settings=settings, registry=registry)
    (only,) = list_runs(settings=settings)
    assert [s["status"] for s in only["steps"]] == ["done", "running", "pending"]
    assert only["steps"][1]["intent"] == {"target": "g", "before": 1}
    final = resume_run(None, settings=settings, registry=registry)
    assert final["status"] == "done"
    assert calls == [(False, None), (True, {"target": "g", "before": 1})]
    assert final["steps"][1]["outputs"] == {"reconciled_from": 1} and final["steps"][1]["attempts"] == 2


def test_resume_refuses_a_changed_playbook_unless_forced(settings, registry, write_playbook):
    text = (
        "name: ch\nparams:\n  ok: {type: boolean, default: false}\nsteps:\n  - {name: a, action: noop}\n"
        "  - {name: b, action: assert, args: {that: '${params.ok}'}}\n"
    )
    pb = write_playbook(text)
    with pytest.raises(StepFailed) as info:
        run_playbook(pb, settings=settings, registry=registry)
    write_playbook(text.replace("that: '${params.ok}'", "that: true") + "  - {name: c, action: noop}\n")
    with pytest.raises(InputError, match="changed since run"):
        resume_run(info.value.run_id, settings=settings, registry=registry)
    final = resume_run(info.value.run_id, settings=settings, registry=registry, force=True)
    assert final["status"] == "done"
    assert [(s["name"], s["status"], s["attempts"]) for s in final["steps"]] == [
        ("a", "done", 1),
        ("b", "done", 2),
        ("c", "done", 1),
    ]


def test_resume_of_a_done_run_returns_it_unchanged(settings, registry, write_playbook):
    record = run_playbook(
        write_playbook("name: d\nsteps:\n  - {name: a, action: noop}\n"), settings=settings, registry=registry
    )
    again = resume_run(record["id"], settings=settings, registry=registry)
    assert again == get_run(record["id"], settings=settings)


def test_comments_and_layout_do_not_change_the_content_hash(registry, write_playbook):
    from kubeops.model.loader import load_playbook

    a = load_playbook(write_playbook("name: h\nsteps:\n  - {name: a, action: noop}\n", "a.yaml"), registry=registry)
    b = load_playbook(
        write_playbook("# comment\nname: h\n\nsteps:\n  - name: a\n    action: noop\n", "b.yaml"), registry=registry
    )
    c = load_playbook(
        write_playbook("name: h\nsteps:\n  - {name: a, action: noop, retry: 2}\n", "c.yaml"), registry=registry
    )
    assert a.content_hash == b.content_hash != c.content_hash


class Guard:
    def __init__(self, *, pause_before: str | None = None, refuse: BaseException | None = None) -> None:
        self.pause_before = pause_before
        self.refuse = refuse
        self.calls: list[str] = []
        self.finished: list[str] = []

    def acquire(self, *, run_id: str, playbook: Any, resumed: bool) -> None:
        self.calls.append(f"acquire resumed={resumed}")
        if self.refuse:
            raise self.refuse

    def before_step(self, *, run_id: str, step: Step) -> None:
        self.calls.append(f"before {step.name}")
        if step.name == self.pause_before:
            raise OutsideWindow("window closes at 04:00 UTC")

    def before_change(self, *, run_id: str, step: Step) -> None:
        self.calls.append(f"change {step.name}")

    def on_finish(self, *, record: Any) -> None:
        self.finished.append(record["status"])

    def release(self, *, run_id: str) -> None:
        self.calls.append("release")


def test_guard_pauses_outside_window_and_resume_continues(settings, registry, write_playbook, tmp_path):
    pb = write_playbook(
        f"name: g\nsteps:\n  - {{name: a, action: t.write, args: {{path: {tmp_path}/log, text: a}}}}\n"
        f"  - {{name: b, action: t.write, args: {{path: {tmp_path}/log, text: b}}}}\n"
        "cleanup:\n  - {name: fin, action: noop, always: true}\n"
    )
    guard = Guard(pause_before="b")
    record = run_playbook(pb, settings=settings, registry=registry, guard=guard)
    assert record["status"] == "paused" and "window closes" in record["error"]
    assert guard.calls == ["acquire resumed=False", "before a", "change a", "before b", "release"]
    assert guard.finished == ["paused"]
    assert [s["status"] for s in record["steps"]] == ["done", "pending", "pending"]
    guard2 = Guard()
    final = resume_run(None, settings=settings, registry=registry, guard=guard2)
    assert final["status"] == "done" and guard2.finished == ["done"]
    assert guard2.calls == ["acquire resumed=True", "before b", "change b", "release"]
    assert (tmp_path / "log").read_text() == "a\nb\n"


def test_guard_refusing_to_start_writes_nothing(settings, registry, write_playbook):
    pb = write_playbook("name: g\nsteps:\n  - {name: a, action: noop}\n")
    with pytest.raises(LockHeld):
        run_playbook(pb, settings=settings, registry=registry, guard=Guard(refuse=LockHeld("held by x")))
    assert list_runs(settings=settings) == []


def test_events_carry_run_step_and_action(settings, registry, write_playbook):
    pb = write_playbook(
        "name: ev\nsteps:\n  - {name: a, action: log, args: {message: hi}}\n  - {name: b, action: noop, when: false}\n"
    )
    with capture_logs() as logs:
        record = run_playbook(pb, settings=settings, registry=registry)
    names = [e["event"] for e in logs]
    assert names == ["run.started", "step.started", "playbook.message", "step.done", "step.skipped", "run.done"]
    for e in logs:
        assert e["run_id"] == record["id"]
        assert "step" in e and "action" in e
    assert [(e["step"], e["action"]) for e in logs if e["event"].startswith(("step.", "playbook."))] == [
        ("a", "log"),
        ("a", "log"),
        ("a", "log"),
        ("b", "noop"),
    ]


def test_secrets_are_redacted_from_logs_and_checkpoints(settings, registry, write_playbook):
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0iLCJhIjoxfQ.c2lnbmF0dXJlLXBhcnQ"
    pb = write_playbook(
        "name: sec\nsteps:\n"
        "  - {name: a, action: log, args: {message: 'calling https://hooks.slack.com/services/T0/B0/XYZ', "
        "data: {api_token: s3cr3t-value, note: 'AKIAABCDEFGHIJKLMNOP'}}}\n"
        f"  - {{name: b, action: fail, args: {{message: 'auth failed with Bearer {token}'}}}}\n"
    )
    with capture_logs() as logs, pytest.raises(StepFailed) as info:
        run_playbook(pb, settings=settings, registry=registry)
    from kubeops.engine.logging import redact_processor

    rendered = json.dumps([redact_processor(None, "info", dict(e)) for e in logs])
    record_text = (settings.state_dir / "runs" / f"{info.value.run_id}.json").read_text()
    for secret in ("s3cr3t-value", "XYZ", "AKIAABCDEFGHIJKLMNOP", token):
        assert secret not in rendered
        assert secret not in record_text
        assert secret not in str(info.value)


def test_dry_run_failures_say_nothing_changed(settings, registry, write_playbook, tmp_path):
    pb = write_playbook(
        f"name: d\nsteps:\n  - {{name: w, action: t.write, args: {{path: {tmp_path}/x, text: a}}}}\n"
        "  - {name: find, action: t.lookup, args: {node: ghost}}\n  - {name: boom, action: fail}\n"
    )
    with pytest.raises(InputError) as info:
        run_playbook(pb, settings=settings, registry=registry, dry_run=True)
    assert info.value.record["status"] == "rejected"  # type: ignore[attr-defined]
    pb2 = write_playbook("name: d2\nsteps:\n  - {name: boom, action: fail}\n", "d2.yaml")
    with pytest.raises(StepFailed) as failed:
        run_playbook(pb2, settings=settings, registry=registry, dry_run=True)
    assert "nothing to resume" in str(failed.value) and "invoke resume" not in str(failed.value)
    assert not (tmp_path / "x").exists()
