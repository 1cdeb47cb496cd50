"""The console over HTTP against a real sandbox: login, roles, CSRF, launch (plan first), cancel, resume, errors.

The app is the one `invoke console` serves; the cluster is a sandbox process reached over the wire.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubeops.engine import api
from kubeops.engine.checkpoints import now_iso
from kubeops.engine.file_store import FileCheckpointStore
from tests.console.conftest import TOKENS, Console

ConsoleFactory = Callable[..., Console]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def wait_status(client: Any, run_id: str, *, until: tuple[str, ...], timeout_s: float = 60) -> str:
    status = "?"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page = client.get(f"/runs/{run_id}").text
        match = re.search(r'id="run-status">([^<]+)<', page)
        status = match.group(1) if match else "?"
        if status in until:
            return status
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} stayed {status}")


def launch(client: Any, playbook: str, **params: str) -> str:
    token = csrf_of(client.get("/runs").text)
    fields = {f"p.{k}": v for k, v in params.items()}
    plan = client.post("/launch", data={"csrf": token, "playbook": playbook, **fields})
    assert plan.status_code == 200, plan.text
    planned = re.search(r'name="plan" value="([^"]+)"', plan.text)
    assert planned, "the plan offers no confirm"
    resp = client.post("/launch/confirm", data={"csrf": token, "playbook": playbook, "confirm": "yes", **fields,
                                                "plan": planned.group(1)})
    assert resp.status_code == 303, resp.text
    return resp.headers["location"].rsplit("/", 1)[1]


def test_no_anonymous_access_and_login_needs_the_right_token(console_factory: ConsoleFactory) -> None:
    console = console_factory()
    anon = console.client()
    for path in ("/runs", "/nodes", "/cluster", "/activity", "/runs/x/events"):
        resp = anon.get(path)
        assert resp.status_code == 303 and resp.headers["location"] == "/login", path
    assert anon.post("/launch", data={"playbook": "hello"}).status_code == 401
    page = anon.get("/login")
    nonce = page.cookies.get("kubeops_login")
    assert anon.post("/login", data={"token": "nope", "csrf": nonce}).status_code == 401
    assert anon.post("/login", data={"token": TOKENS["operator"]}).status_code == 403  # no CSRF nonce
    ok = anon.post("/login", data={"token": TOKENS["operator"], "csrf": nonce})
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert TOKENS["operator"] not in cookie  # the session id is opaque, never the token


def test_viewer_sees_no_launch_controls_and_posts_are_forbidden(console_factory: ConsoleFactory) -> None:
    console = console_factory("pdb-blocked")
    operator = console.client("operator")
    failed = launch(operator, "drain-node", node="worker-0", timeout_s="1")  # the budget holds the drain up
    assert wait_status(operator, failed, until=("failed", "done")) == "failed"
    viewer = console.client("viewer")
    runs = viewer.get("/runs").text
    assert 'href="/launch"' not in runs and 'id="nav-launch"' not in runs
    assert 'id="resume"' not in viewer.get(f"/runs/{failed}").text
    assert "/launch?playbook=" not in viewer.get("/nodes").text
    token = csrf_of(runs)
    assert viewer.get("/launch").status_code == 403
    for path, data in (("/launch", {"playbook": "hello"}), ("/launch/confirm", {"playbook": "hello", "confirm": "yes"}),
                       (f"/runs/{failed}/resume", {}), (f"/runs/{failed}/cancel", {}), ("/cluster/lock/break", {})):
        resp = viewer.post(path, data={"csrf": token, **data})
        assert resp.status_code == 403, path
        assert "role viewer may only look" in resp.text
    assert api.get_run(failed, settings=console.settings).get("resumes") is None


def test_post_without_csrf_is_refused_and_nothing_runs(console_factory: ConsoleFactory) -> None:
    console = console_factory()
    operator = console.client("operator")
    for token in (None, "forged"):
        data = {"playbook": "hello", "confirm": "yes", **({"csrf": token} if token else {})}
        resp = operator.post("/launch/confirm", data=data)
        assert resp.status_code == 403 and "CSRF" in resp.text
    assert api.list_runs(settings=console.settings) == []
    # the header works as well as the form field (scripts), and a confirm still needs the plan it confirms
    token = csrf_of(operator.get("/runs").text)
    resp = operator.post("/launch/confirm", data={"playbook": "hello", "confirm": "yes"},
                         headers={"X-CSRF-Token": token})
    assert resp.status_code == 400 and "plan it again" in resp.text
    plan = operator.post("/launch", data={"playbook": "hello", "p.who": "a"}, headers={"X-CSRF-Token": token}).text
    planned = re.search(r'name="plan" value="([^"]+)"', plan).group(1)  # type: ignore[union-attr]
    changed = operator.post("/launch/confirm", data={"playbook": "hello", "confirm": "yes", "p.who": "b",
                                                     "plan": planned}, headers={"X-CSRF-Token": token})
    assert changed.status_code == 400  # not the parameters that were planned
    assert api.list_runs(settings=console.settings) == []
    resp = operator.post("/launch/confirm", data={"playbook": "hello", "confirm": "yes", "p.who": "a",
                                                  "plan": planned}, headers={"X-CSRF-Token": token})
    assert resp.status_code == 303


def test_launch_form_comes_from_the_playbook_and_validates_like_the_loader(console_factory: ConsoleFactory) -> None:
    console = console_factory()
    operator = console.client("operator")
    form = operator.get("/launch?playbook=decommission-node&node=worker-2").text
    assert 'name="p.node" id="p-node" value="worker-2"' in form
    assert "termination grace; -1 keeps each pod&#39;s own" in form and 'placeholder="1800"' in form
    token = csrf_of(form)
    bad = operator.post("/launch", data={"csrf": token, "playbook": "decommission-node", "p.node": "worker-2",
                                         "p.grace_period_s": "soon"})
    assert bad.status_code == 400
    playbook = api.load_playbook("decommission-node")
    with pytest.raises(Exception) as exc:  # the loader's own message, word for word
        from kubeops.model.params import bind_params

        bind_params(playbook, {"node": "worker-2", "grace_period_s": "soon"})
    assert exc.value.message.replace("'", "&#39;") in bad.text  # type: ignore[attr-defined]
    missing = operator.post("/launch", data={"csrf": token, "playbook": "decommission-node"})
    assert missing.status_code == 400 and "needs parameter &#39;node&#39;" in missing.text
    unknown = operator.get("/launch?playbook=no-such-playbook")
    assert unknown.status_code == 400 and "no-such-playbook" in unknown.text and "Traceback" not in unknown.text


def test_plan_first_then_confirm_runs_it_with_audit_everywhere(console_factory: ConsoleFactory) -> None:
    console = console_factory()
    operator = console.client("operator")
    token = csrf_of(operator.get("/runs").text)
    plan = operator.post("/launch", data={"csrf": token, "playbook": "decommission-node", "p.node": "worker-2"})
    assert plan.status_code == 200
    assert "would cordon" in plan.text and 'id="confirm"' in plan.text
    assert re.search(r'id="lock-verdict"><span class="badge done">free', plan.text)
    assert re.search(r'id="window-verdict"><span class="badge done">open', plan.text)
    assert api.list_runs(settings=console.settings) == []  # the plan left no record
    assert "unschedulable" not in console.sandbox.kubectl("get", "node", "worker-2", "-o", "json").stdout
    run_id = launch(operator, "decommission-node", node="worker-2")
    assert wait_status(operator, run_id, until=("done", "failed")) == "done"
    record = api.get_run(run_id, settings=console.settings)  # the store `invoke runs` reads
    assert [(a["action"], a["token_name"], a["role"]) for a in record["audit"]] == [("launch", "operator", "operator")]
    activity = operator.get("/activity").text
    assert f'href="/runs/{run_id}"' in activity and "launch" in activity
    nodes = operator.get("/nodes").text
    row = re.search(r'<tr data-node="worker-2">.*?</tr>', nodes, re.S)
    assert row and "cordoned" in row.group(0)
    assert '"unschedulable": true' in console.sandbox.kubectl("get", "node", "worker-2", "-o", "json").stdout
    runs = operator.get("/runs?format=json").json()
    assert runs["total"] == 1 and runs["runs"][0]["status"] == "done"


def test_cancel_stops_at_the_next_step_and_resume_finishes(console_factory: ConsoleFactory) -> None:
    console = console_factory()
    operator = console.client("operator")
    run_id = launch(operator, "hello", wait_s="1.5")
    deadline = time.monotonic() + 20
    while 'data-step="pause" data-status="running"' not in operator.get(f"/runs/{run_id}").text:
        assert time.monotonic() < deadline, "the pause step never started"
        time.sleep(0.05)
    token = csrf_of(operator.get(f"/runs/{run_id}").text)
    assert operator.post(f"/runs/{run_id}/cancel", data={"csrf": token}).status_code == 303
    assert wait_status(operator, run_id, until=("paused", "done")) == "paused"
    record = api.get_run(run_id, settings=console.settings)
    steps = {s["name"]: s["status"] for s in record["steps"]}
    assert steps == {"greet": "done", "pause": "done", "check": "pending"}  # the running step finished, no more
    assert "cancelled by operator (operator) before step 'check'" in record["error"]
    deadline = time.monotonic() + 10  # the record says paused a moment before the run's thread has ended
    while 'id="resume"' not in operator.get(f"/runs/{run_id}").text:
        assert time.monotonic() < deadline, "no Resume button on the paused run"
        time.sleep(0.05)
    assert operator.post(f"/runs/{run_id}/resume", data={"csrf": token}).status_code == 303
    assert wait_status(operator, run_id, until=("done", "failed")) == "done"
    actions = [a["action"] for a in api.get_run(run_id, settings=console.settings)["audit"]]
    assert actions == ["launch", "cancel", "resume"]


def test_unreachable_cluster_gives_a_clear_page_and_the_server_keeps_serving(console_factory: ConsoleFactory) -> None:
    console = console_factory(inventory_extra={"kube": {"max_retries": 1}})  # give up fast
    operator = console.client("operator")
    console.sandbox.stop()
    for path in ("/nodes", "/nodes/worker-0", "/apps"):
        resp = operator.get(path)
        assert resp.status_code == 502, path
        assert "cannot reach the Kubernetes API" in resp.text and "Traceback" not in resp.text
    cluster = operator.get("/cluster")
    assert cluster.status_code == 200 and "cannot reach the Kubernetes API" in cluster.text
    assert operator.get("/runs").status_code == 200
    assert operator.get("/runs/20990101T000000Z-dead").status_code == 404


def test_read_only_console_refuses_operators_too(console_factory: ConsoleFactory) -> None:
    console = console_factory(read_only=True)
    operator = console.client("operator")
    runs = operator.get("/runs").text
    assert 'id="nav-launch"' not in runs and "read-only" in runs
    resp = operator.post("/launch/confirm", data={"csrf": csrf_of(runs), "playbook": "hello", "confirm": "yes"})
    assert resp.status_code == 403 and "read-only" in resp.text


def test_no_token_webhook_or_aws_key_in_any_response(console_factory: ConsoleFactory, tmp_path: Path) -> None:
    secret_key = "SECRETawsKEYconsole0123456789"
    webhook = "http://127.0.0.1:9/hooks/SECRETwebhookPATH"
    env_file = tmp_path / "aws.env"
    env_file.write_text(f"AWS_ACCESS_KEY_ID=AKIACONSOLETEST\nAWS_SECRET_ACCESS_KEY={secret_key}\n")
    console = console_factory(inventory_extra={"aws": {"region": "us-east-1", "env_file": str(env_file)},
                                               "notify": {"webhook_url": webhook, "on_success": True}})
    operator = console.client("operator")
    run_id = launch(operator, "hello", who="me")
    wait_status(operator, run_id, until=("done", "failed"))
    bodies = [operator.post("/launch", data={"csrf": csrf_of(operator.get("/runs").text), "playbook": "drain-node",
                                             "p.node": "no-such-node"}).text]  # a plan that fails
    for path in ("/runs", f"/runs/{run_id}", "/runs?format=json", "/nodes", "/apps", "/cluster",
                 "/activity", "/launch?playbook=hello", "/login"):
        resp = operator.get(path)
        bodies.append(resp.text + str(resp.headers))
    token = csrf_of(bodies[1])
    bodies.append(operator.post("/launch", data={"csrf": token, "playbook": "drain-node", "p.node": "worker-1"}).text)
    with operator.stream("GET", f"/runs/{run_id}/events") as stream:
        bodies.append("".join(stream.iter_text()))
    text = "\n".join(bodies)
    for secret in (*TOKENS.values(), secret_key, "SECRETwebhookPATH"):
        assert secret not in text


def test_runs_page_filters_and_paginates_the_same_store(console_factory: ConsoleFactory) -> None:
    console = console_factory()
    store = FileCheckpointStore(console.settings.state_dir, fsync=False)
    for i in range(120):
        status = "failed" if i % 4 == 0 else "done"
        store.save(record={"version": 1, "id": f"20260101T{i:06d}Z-aaaa", "playbook": {"name": "drain-node"},
                           "cluster": "sandbox", "status": status, "started": now_iso(), "finished": now_iso(),
                           "failed_step": "drain" if status == "failed" else None, "params": {}, "steps": []})
    operator = console.client("viewer")
    first = operator.get("/runs").text
    assert first.count('<tr>\n  <td><a href="/runs/') == 50 and "page 1 of 3" in first
    assert first.index("20260101T000119Z") < first.index("20260101T000118Z")  # newest first
    last = operator.get("/runs?page=3").text
    assert last.count('<td><a href="/runs/') == 20
    failed = operator.get("/runs?status=failed&format=json").json()
    assert failed["total"] == 30 and {r["failed_step"] for r in failed["runs"]} == {"drain"}
    assert len(api.list_runs(settings=console.settings)) == 120


def test_an_unreadable_record_is_listed_and_its_page_says_what_to_do(console_factory: ConsoleFactory) -> None:
    """A record cut short (disk full mid-write) stays on the Runs page, and its page names the file and the fix."""
    console = console_factory()
    folder = Path(console.settings.state_dir) / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    broken = folder / "20261130T000000Z-cccc.json"
    broken.write_text('{"version": 1, "id": "20261130T000000Z-cccc", "status": "running", "ste')
    viewer = console.client("viewer")
    runs = viewer.get("/runs").text
    assert "20261130T000000Z-cccc" in runs and "unreadable" in runs and "truncated" in runs
    page = viewer.get("/runs/20261130T000000Z-cccc")
    assert page.status_code == 400
    assert str(broken) in page.text and "unreadable" in page.text and ".corrupt" in page.text


def test_cluster_page_shows_the_lock_holder_and_an_operator_breaks_it(console_factory: ConsoleFactory) -> None:
    from kubeops.engine.guard import lock_for

    console = console_factory()
    other = lock_for(console.settings, required=True)
    assert other is not None
    other.acquire(run_id="20260101T000000Z-othr", playbook="drain-node")
    try:
        operator = console.client("operator")
        page = operator.get("/cluster").text
        assert re.search(r'id="lock"><span class="badge failed">held', page)
        assert "held by 20260101T000000Z-othr" in page and "(playbook drain-node)" in page
        assert 'id="break-lock"' in page and 'id="break-lock"' not in console.client("viewer").get("/cluster").text
        token = csrf_of(page)
        plan = operator.post("/launch", data={"csrf": token, "playbook": "cordon-node", "p.node": "worker-1"}).text
        assert re.search(r'id="lock-verdict"><span class="badge failed">held', plan)  # the verdict beside the plan
        assert operator.post("/cluster/lock/break", data={"csrf": token}).status_code == 303
        assert re.search(r'id="lock"><span class="badge done">free', operator.get("/cluster").text)
        entry = console.app.state.launcher.audit.recent()[0]
        assert (entry["action"], entry["token_name"], entry["target"]) == ("lock.break", "operator",
                                                                            "kube-system/kubeops-lock")
        assert "lock.break" in operator.get("/activity").text
    finally:
        other.release()


def test_an_expired_credential_gives_a_clear_page(console_factory: ConsoleFactory) -> None:
    console = console_factory()
    operator = console.client("operator")
    console.sandbox.set_faults(error_401_rate=1.0)  # what kube-apiserver answers to an expired token
    try:
        resp = operator.get("/nodes")
        assert resp.status_code in (400, 502) and "Traceback" not in resp.text
        assert "401" in resp.text or "Unauthorized" in resp.text or "credential" in resp.text
        token = csrf_of(operator.get("/runs").text)
        plan = operator.post("/launch", data={"csrf": token, "playbook": "cordon-node", "p.node": "worker-1"})
        assert plan.status_code == 200 and 'id="confirm"' not in plan.text  # a failed plan offers no real run
    finally:
        console.sandbox.set_faults()
    assert operator.get("/nodes").status_code == 200  # and it recovers with the credential


def test_apps_show_live_versions_endpoints_and_roll_back_to_what_ran_before(console_factory: ConsoleFactory) -> None:
    console = console_factory()
    operator = console.client("operator")
    for version in ("123", "124"):
        run_id = launch(operator, "rolling-deploy", app="my-component", version=version, step_timeout_s="60")
        assert wait_status(operator, run_id, until=("done", "failed"), timeout_s=120) == "done"
    page = operator.get("/apps").text
    row = re.search(r'<tr data-app="my-component">.*?</tr>', page, re.S)
    assert row, page
    text = row.group(0)
    assert "<code>my-component-v124</code> 2/2 ready" in text  # the sandbox override: 2 replicas
    assert "my-component-v123" not in text  # the old version was removed after the roll
    assert len(re.findall(r"\d+\.\d+\.\d+\.\d+:8080", text)) == 2  # the Service's ready endpoints
    assert 'href="/launch?playbook=rolling-deploy&app=my-component"' in text
    rollback = re.search(r'class="rollback" href="([^"]+)"', text)
    assert rollback and "version=123" in rollback.group(1)
    form = operator.get(rollback.group(1).replace("&amp;", "&")).text
    assert 'name="p.version" id="p-version" value="123"' in form
    assert "roll back" not in console.client("viewer").get("/apps").text


def test_node_page_lists_pods_with_usage_requests_limits_owners_and_budgets(console_factory: ConsoleFactory) -> None:
    console = console_factory()
    viewer = console.client("viewer")
    deadline = time.monotonic() + 30
    while True:  # until the scheduler has placed the scenario's web pods and cAdvisor measured them
        page = viewer.get("/nodes/worker-0").text
        table = page[page.index('<table id="pods">'):]
        rows = [re.findall(r"<td>(.*?)</td>", r, re.S) for r in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
        cells = next((r for r in rows if r and r[1].startswith("web-") and r[4] != "-"), None)
        if cells is not None:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.3)
    assert cells[0] == "apps" and cells[2] == "Running" and cells[3].startswith("ReplicaSet/web-")
    assert cells[4].endswith("m")  # measured CPU
    assert cells[5] == "250m / 500m" and cells[7] == "256Mi / 512Mi" and cells[8] == "apps/web"
    assert viewer.get("/nodes/nope").status_code == 404


def test_a_closed_window_shows_beside_the_plan_and_the_run_does_not_start(console_factory: ConsoleFactory) -> None:
    from datetime import UTC, datetime, timedelta

    opens = datetime.now(UTC) + timedelta(hours=6)
    window = {"days": ["mon-sun"], "start": opens.strftime("%H:00"), "end": opens.strftime("%H:30"),
              "timezone": "UTC"}
    console = console_factory(inventory_extra={"window": window})
    operator = console.client("operator")
    cluster = operator.get("/cluster").text
    assert re.search(r'id="window"><span class="badge paused">closed now', cluster) and "next opening:" in cluster
    token = csrf_of(cluster)
    plan = operator.post("/launch", data={"csrf": token, "playbook": "cordon-node", "p.node": "worker-1"}).text
    assert re.search(r'id="window-verdict"><span class="badge paused">closed</span>[^<]*is closed; next opens', plan)
    run_id = launch(operator, "cordon-node", node="worker-1")
    deadline = time.monotonic() + 20
    while "is closed; next opens" not in (page := operator.get(f"/runs/{run_id}").text):
        assert time.monotonic() < deadline, page
        time.sleep(0.1)
    assert 'id="live-error"' in page and "unschedulable" not in console.sandbox.kubectl(
        "get", "node", "worker-1", "-o", "json").stdout


def test_a_crashed_run_says_so_and_resumes_from_its_page(console_factory: ConsoleFactory) -> None:
    import socket
    import subprocess

    console = console_factory()
    operator = console.client("operator")
    run_id = launch(operator, "hello", who="night")
    assert wait_status(operator, run_id, until=("done", "failed")) == "done"
    gone = subprocess.Popen(["true"])
    gone.wait()
    store = FileCheckpointStore(console.settings.state_dir, fsync=False)
    record = store.load(run_id=run_id)
    assert record is not None
    record.update(status="running", finished=None, host=socket.gethostname(), pid=gone.pid)
    record["steps"][2].update(status="running", finished=None)  # killed in the middle of its last step
    store.save(record=record)
    page = operator.get(f"/runs/{run_id}").text
    assert 'id="crashed"' in page and 'id="resume"' in page and "data-live" not in page
    assert operator.post(f"/runs/{run_id}/resume", data={"csrf": csrf_of(page)}).status_code == 303
    assert wait_status(operator, run_id, until=("done", "failed")) == "done"
    steps = api.get_run(run_id, settings=console.settings)["steps"]
    assert [s["attempts"] for s in steps] == [1, 1, 2]  # only the interrupted step ran again
