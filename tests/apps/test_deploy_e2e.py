"""`kubeops deploy` end to end against the sandbox over HTTP: rollouts, rollback, crash and resume, no-op, dry run."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.apps.conftest import AppsSandbox, EndpointSampler

pytestmark = pytest.mark.timeout(240)


def app_yaml(name: str, *, replicas: int = 3, extra: str = "", annotations: str = "", timeout_s: float = 20) -> str:
    pod_annotations = f"pod_annotations: {{{annotations}}}\n" if annotations else ""
    return (
        f"name: {name}\nrole: frontend-{name}\nimage: example/{name}\nversion: '1'\nreplicas: {replicas}\n"
        f"ports: [{{name: http, port: 80, target_port: 8080}}]\n"
        f"rollout: {{surge: 1, step_timeout_s: {timeout_s}}}\n{pod_annotations}{extra}"
    )


def deploy(sb: AppsSandbox, app: str, version: str, *args: str):
    result = sb.kubeops("deploy", f"--app={app}", f"--version={version}", *args)
    return result


def only_version(sb: AppsSandbox, app: str, version: str, replicas: int) -> None:
    """The app runs exactly one controller, of `version`, with all its pods ready and serving."""
    controllers = sb.controllers(app)
    assert list(controllers) == [f"{app}-v{version}"], controllers
    obj = controllers[f"{app}-v{version}"]
    assert obj["spec"]["replicas"] == replicas
    assert obj["status"].get("readyReplicas", 0) == replicas
    versions = sb.pod_versions(app)
    ready, not_ready = sb.endpoint_pods(app)
    assert len(ready) == replicas and not not_ready
    assert {versions[p] for p in ready} == {version}


def service_writes(sb: AppsSandbox, since: int) -> list[dict]:
    return [r for r in sb.mutations(since) if r.get("resource") == "services"]


def test_happy_path_rolls_to_the_new_version_without_touching_the_service(apps_sandbox: AppsSandbox) -> None:
    sb = apps_sandbox
    sb.write_app("happy", app_yaml("happy", annotations="sandbox.kubeops.io/readiness-delay-s: '0.3'"))
    first = deploy(sb, "happy", "1")
    assert first.returncode == 0, first.stderr
    only_version(sb, "happy", "1", 3)
    service_before = sb.get("/api/v1/namespaces/default/services/happy")
    mark = sb.log_mark()

    with EndpointSampler(sb, "happy") as sampler:
        second = deploy(sb, "happy", "2")
    assert second.returncode == 0, second.stderr

    only_version(sb, "happy", "2", 3)
    assert sampler.samples > 20 and sampler.empty == 0  # the Service was never without a ready endpoint
    assert any(p.startswith("happy-v1-") for p in sampler.seen) and any(p.startswith("happy-v2-") for p in sampler.seen)
    service_after = sb.get("/api/v1/namespaces/default/services/happy")
    assert service_after["metadata"]["resourceVersion"] == service_before["metadata"]["resourceVersion"]
    assert service_after["spec"]["selector"] == {"role": "frontend-happy", "app": "happy"}
    assert service_writes(sb, mark) == []
    scaled = [r["name"] for r in sb.mutations(mark) if r["method"] == "PATCH"]
    assert scaled.count("happy-v2") == 3 and scaled.count("happy-v1") == 3  # surge 1: three steps each way


def test_deploying_the_running_version_changes_nothing(apps_sandbox: AppsSandbox) -> None:
    sb = apps_sandbox
    sb.write_app("steady", app_yaml("steady", replicas=2))
    assert deploy(sb, "steady", "1").returncode == 0
    mark = sb.log_mark()
    again = deploy(sb, "steady", "1")
    assert again.returncode == 0, again.stderr
    assert sb.mutations(mark) == []
    assert any(r["method"] == "GET" for r in sb.requests(mark))  # it did look
    only_version(sb, "steady", "1", 2)


def test_new_version_never_ready_rolls_back_and_exits_non_zero(apps_sandbox: AppsSandbox) -> None:
    sb = apps_sandbox
    sb.write_app("sour", app_yaml("sour", timeout_s=2))
    assert deploy(sb, "sour", "1").returncode == 0
    mark = sb.log_mark()
    broken = sb.write_app(
        "sour-broken", app_yaml("sour", timeout_s=2, annotations="sandbox.kubeops.io/never-ready: 'true'")
    )

    with EndpointSampler(sb, "sour") as sampler:
        result = deploy(sb, str(broken), "2")

    assert result.returncode == 1
    assert "sour-v2 not ready in time" in result.stderr
    only_version(sb, "sour", "1", 3)  # old version back in service, new one removed
    assert sampler.empty == 0
    assert service_writes(sb, mark) == []
    assert any(r["method"] == "DELETE" and r["name"] == "sour-v2" for r in sb.mutations(mark))


def _new_created(c: dict, app: str) -> bool:
    return f"{app}-v2" in c


def _new_two_steps_up(c: dict, app: str) -> bool:
    return c.get(f"{app}-v2", {}).get("spec", {}).get("replicas", 0) >= 2


def _old_scaled_to_zero(c: dict, app: str) -> bool:
    return c.get(f"{app}-v1", {}).get("spec", {}).get("replicas", 1) == 0


@pytest.mark.parametrize(
    ("app", "moment"),
    [("crash-a", _new_created), ("crash-b", _new_two_steps_up), ("crash-c", _old_scaled_to_zero)],
    ids=["created", "mid-roll", "old-at-zero"],
)
def test_sigkill_mid_deploy_then_resume_finishes_it(apps_sandbox: AppsSandbox, app: str, moment) -> None:
    sb = apps_sandbox
    sb.write_app(app, app_yaml(app, annotations="sandbox.kubeops.io/readiness-delay-s: '1'"))
    assert deploy(sb, app, "1").returncode == 0
    service_before = sb.get(f"/api/v1/namespaces/default/services/{app}")
    mark = sb.log_mark()

    with EndpointSampler(sb, app) as sampler:
        process = sb.spawn("deploy", f"--app={app}", "--version=2")
        deadline = time.monotonic() + 60
        reached = False
        while not reached and time.monotonic() < deadline and process.poll() is None:
            reached = moment(sb.controllers(app), app)  # kill it at the chosen moment of the rollout
            time.sleep(0 if reached else 0.01)
        if not reached:
            process.kill()
            _, err = process.communicate(timeout=10)
            pytest.fail(f"the deploy never reached {moment.__name__}: rc={process.returncode}\n{err[-3000:]}")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert f"{app}-v2" in sb.controllers(app)  # it really was interrupted mid-deploy
        assert process.stderr is not None
        events = [json.loads(line) for line in process.stderr.read().splitlines() if line.startswith("{")]
        run_id = next(e["run_id"] for e in events if e.get("event") == "run.started")

        resumed = sb.kubeops("resume", f"--run={run_id}")
    assert resumed.returncode == 0, resumed.stderr
    only_version(sb, app, "2", 3)
    assert sampler.empty == 0
    assert sb.get(f"/api/v1/namespaces/default/services/{app}")["metadata"]["resourceVersion"] == (
        service_before["metadata"]["resourceVersion"]
    )
    assert service_writes(sb, mark) == []
    created = [r for r in sb.mutations(mark) if r["method"] == "POST" and r.get("resource") == "deployments"]
    assert len(created) == 1  # the resume did not create the new version again


def test_invalid_app_config_exits_2_naming_file_line_and_field(apps_sandbox: AppsSandbox) -> None:
    sb = apps_sandbox
    path = sb.write_app("bad", app_yaml("bad") + "clusters:\n  sandbox:\n    replicas: many\n")
    mark = sb.log_mark()
    result = deploy(sb, "bad", "2")
    assert result.returncode == 2
    assert f"{path}:10: clusters.sandbox.replicas: must be a whole number" in result.stderr
    assert sb.mutations(mark) == []


def test_dry_run_prints_the_manifests_and_changes_nothing(apps_sandbox: AppsSandbox) -> None:
    sb = apps_sandbox
    sb.write_app("preview", app_yaml("preview", replicas=2))
    assert deploy(sb, "preview", "1").returncode == 0
    mark = sb.log_mark()
    result = deploy(sb, "preview", "2", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "name: preview-v2" in result.stdout and "image: example/preview:2" in result.stdout
    assert "roll preview-v2 0->2 and preview-v1 (2) -> 0 in 2 step(s)" in result.stdout
    assert sb.mutations(mark) == []
    assert any(r["method"] == "POST" and r.get("dry_run") for r in sb.requests(mark))  # validated server-side
    only_version(sb, "preview", "1", 2)


def test_replication_controllers_roll_the_same_way(apps_sandbox: AppsSandbox) -> None:
    sb = apps_sandbox
    sb.write_app("legacy", app_yaml("legacy", replicas=2, extra="controller: ReplicationController\n"))
    assert deploy(sb, "legacy", "1").returncode == 0
    with EndpointSampler(sb, "legacy") as sampler:
        result = deploy(sb, "legacy", "2")
    assert result.returncode == 0, result.stderr
    only_version(sb, "legacy", "2", 2)
    assert sb.controllers("legacy")["legacy-v2"]["kind"] == "ReplicationController"
    assert sampler.empty == 0


def test_existing_service_with_another_selector_is_refused_and_left_alone(apps_sandbox: AppsSandbox) -> None:
    sb = apps_sandbox
    sb.write_app("taken", app_yaml("taken"))
    sb.send(
        "POST",
        "/api/v1/namespaces/default/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "taken"},
            "spec": {"selector": {"app": "something-else"}, "ports": [{"port": 80}]},
        },
    )
    mark = sb.log_mark()
    result = deploy(sb, "taken", "1")
    assert result.returncode == 1
    assert "exists with selector app=something-else" in result.stderr
    assert sb.mutations(mark) == []
    assert sb.controllers("taken") == {}


def test_render_prints_valid_manifests_and_bad_config_exits_2(apps_sandbox: AppsSandbox) -> None:
    import kubernetes_validate
    import yaml

    sb = apps_sandbox
    sb.write_app("shown", app_yaml("shown", extra="clusters:\n  sandbox: {replicas: 5}\n  prod: {replicas: 7}\n"))
    result = sb.kubeops("render", "--app=shown", "--version=v7.1")
    assert result.returncode == 0, result.stderr
    service, controller = list(yaml.safe_load_all(result.stdout))
    assert service["spec"]["selector"] == {"role": "frontend-shown", "app": "shown"}
    assert controller["metadata"]["name"] == "shown-v7-1" and controller["spec"]["replicas"] == 5
    for manifest in (service, controller):
        kubernetes_validate.validate(manifest, "1.30", strict=True)
    prod = sb.kubeops("render", "--app=shown", "--cluster=prod")  # no inventory/prod.yaml needed to render
    assert prod.returncode == 0, prod.stderr
    assert list(yaml.safe_load_all(prod.stdout))[1]["spec"]["replicas"] == 7

    path = sb.write_app("broken", app_yaml("broken").replace("replicas: 3", "replicas: -1"))
    bad = sb.kubeops("render", "--app=broken")
    assert bad.returncode == 2
    assert f"{path}:5: replicas: must be at least 0" in bad.stderr


ROLLBACK_PLAYBOOK = """\
name: rollback-only
params:
  app: {type: string, required: true}
  version: {type: string, required: true}
steps:
  - name: rollback
    action: apps.rollback
    args: {app: "${params.app}", version: "${params.version}", timeout_s: 60}
"""


def test_rollback_after_a_crash_mid_rollout_restores_the_previous_size(apps_sandbox: AppsSandbox) -> None:
    sb = apps_sandbox
    sb.write_app("undo", app_yaml("undo", annotations="sandbox.kubeops.io/readiness-delay-s: '0.7'"))
    assert deploy(sb, "undo", "1").returncode == 0
    playbook = sb.root / "rollback-only.yaml"
    playbook.write_text(ROLLBACK_PLAYBOOK)

    with EndpointSampler(sb, "undo") as sampler:
        process = sb.spawn("deploy", "--app=undo", "--version=2")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # stop it once the old version has given up pods
            old = sb.controllers("undo").get("undo-v1")
            if old and old["spec"]["replicas"] <= 1:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the deploy never scaled the old version down")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        # the killed run's lock Lease outlives it by its TTL (3 s in this inventory): wait for it, as cron would
        result = sb.kubeops(
            "run", f"--playbook={playbook}", "--param", "app=undo", "--param", "version=2", "--wait-for-lock=30s"
        )
    assert result.returncode == 0, result.stderr
    only_version(sb, "undo", "1", 3)  # back to its size before the deploy, the new version gone
    assert sampler.empty == 0
