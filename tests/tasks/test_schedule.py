"""`schedule` through the real CLI: crontab lines (printed, installed idempotently), bad input, and the in-cluster
CronJob + RBAC rendering validated against upstream schemas and accepted by the sandbox (`kubectl --dry-run=server`).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from kubeops.engine import cronjob
from kubeops.sandbox.testing import SandboxProcess
from tests.engine.schedule_harness import Harness

kubernetes_validate = pytest.importorskip("kubernetes_validate")

FAKE_CRONTAB = """#!/bin/sh
# a stand-in for crontab(1) keeping the table in $CRONTAB_FILE
if [ "$1" = "-l" ]; then
  if [ -f "$CRONTAB_FILE" ]; then cat "$CRONTAB_FILE"; else echo "no crontab for $USER" >&2; exit 1; fi
elif [ "$1" = "-" ]; then
  cat > "$CRONTAB_FILE"
else
  exit 2
fi
"""


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    h = Harness(tmp_path, None)
    fake = tmp_path / "crontab"
    fake.write_text(FAKE_CRONTAB)
    fake.chmod(0o755)
    h.env.update(KUBEOPS_CRONTAB=str(fake), CRONTAB_FILE=str(tmp_path / "table"))
    return h


def test_prints_a_crontab_line_that_runs_the_schedule_with_json_logs(harness: Harness) -> None:
    pb = harness.playbook(["a"])
    proc = harness.call("schedule", f"--playbook={pb}", "--cron=0 3 * * 1-5")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("0 3 * * 1-5 mkdir -p ")
    command, marker = line.split(" # kubeops-schedule:")
    words = shlex.split(command[len("0 3 * * 1-5 "):].replace("&&", " "))
    assert f"KUBEOPS_STATE_DIR={harness.state}" in words
    assert f"KUBEOPS_INVENTORY_DIR={harness.inventory_dir}" in words
    assert "run-scheduled" in words and f"--playbook={pb}" in words and "--log-format=json" in words
    assert "--cluster=sb" in words
    log = words[words.index(">>") + 1]
    assert log == str(harness.state / "logs" / f"gated-{marker}.log")
    assert not (harness.tmp / "table").exists()  # printing installs nothing


def test_install_is_idempotent_and_keeps_other_entries(harness: Harness) -> None:
    table = harness.tmp / "table"
    table.write_text("MAILTO=ops@example.com\n15 * * * * /usr/bin/true\n")
    pb = harness.playbook(["a"])
    first = harness.call("schedule", f"--playbook={pb}", "--cron=0 3 * * 1-5", "--install")
    assert first.returncode == 0 and first.stdout.startswith("installed: "), first.stderr
    again = harness.call("schedule", f"--playbook={pb}", "--cron=30 4 * * *", "--install")
    assert again.returncode == 0 and again.stdout.startswith("installed: ")
    same = harness.call("schedule", f"--playbook={pb}", "--cron=30 4 * * *", "--install")
    assert same.stdout.startswith("already installed: ")
    lines = table.read_text().splitlines()
    assert lines[:2] == ["MAILTO=ops@example.com", "15 * * * * /usr/bin/true"]
    ours = [line for line in lines if "kubeops-schedule:" in line]
    assert len(ours) == 1 and ours[0].startswith("30 4 * * * ")  # the new time replaced the old line
    assert (harness.state / "logs").is_dir()


def test_the_installed_line_runs_under_a_shell_and_logs_json(harness: Harness) -> None:
    pb = harness.playbook(["a"])
    harness.open_gates("a")
    line = harness.call("schedule", f"--playbook={pb}", "--cron=* * * * *").stdout.strip()
    command = line.split(" ", 5)[5].replace("\\%", "%")
    env = {k: v for k, v in harness.env.items() if not k.startswith("KUBEOPS_") or k == "KUBEOPS_ACTION_MODULES"}
    done = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    (log,) = list((harness.state / "logs").glob("gated-*.log"))
    events = [yaml.safe_load(x) for x in log.read_text().splitlines() if x.startswith("{")]
    assert {"run.started", "run.done"} <= {e["event"] for e in events}
    assert harness.effects_done() == ["a"]


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("0 3 * *", "must have 5 fields"),
        ("61 3 * * *", "minute field '61': 61 is outside 0-59"),
        ("0 3 * * mon-fry", "'fry' is not a number"),
        ("*/0 3 * * *", "step '0' must be a positive number"),
    ],
)
def test_bad_cron_exits_2(harness: Harness, cron: str, fragment: str) -> None:
    proc = harness.call("schedule", f"--playbook={harness.playbook(['a'])}", f"--cron={cron}")
    assert proc.returncode == 2 and fragment in proc.stderr, proc.stderr


def test_unknown_param_and_playbook_exit_2(harness: Harness) -> None:
    proc = harness.call("schedule", f"--playbook={harness.playbook(['a'])}", "--cron=@daily", "--param", "x=1")
    assert proc.returncode == 2 and "has no parameter 'x'" in proc.stderr
    proc = harness.call("schedule", "--playbook=nope", "--cron=@daily")
    assert proc.returncode == 2 and "no playbook 'nope'" in proc.stderr


def _render(h: Harness, *extra: str) -> list[dict]:
    proc = h.call("schedule", "--playbook=drain-node", "--cron=0 3 * * 1-5", "--param", "node=worker-1",
                  "--kubernetes", *extra)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.mark.timeout(240)
def test_kubernetes_rendering_validates_upstream_and_is_accepted_by_the_sandbox(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    secret = "https://hooks.example.com/services/T000/B000/very-secret-token"
    h = Harness(tmp_path, sandbox, notify={"webhook_url": secret},
                window={"days": ["sat"], "start": "01:00", "end": "05:00", "timezone": "Europe/Berlin"})
    docs = _render(h, "--timezone=Europe/Berlin")
    kinds = [d["kind"] for d in docs]
    assert kinds == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap",
                     "CronJob"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    path = tmp_path / "schedule.yaml"
    path.write_text(cronjob.to_yaml(docs))
    applied = sandbox.kubectl("apply", "--dry-run=server", "-f", str(path))
    assert applied.returncode == 0, applied.stderr
    for kind in ("serviceaccount", "clusterrole.rbac.authorization.k8s.io", "cronjob.batch", "configmap"):
        assert f"{kind}/" in applied.stdout and "(server dry run)" in applied.stdout
    # nothing was created by the dry run
    assert sandbox.kubectl("get", "cronjobs", "-A", "-o", "name").stdout.strip() == ""
    by_kind = {d["kind"]: d for d in docs}
    cron = by_kind["CronJob"]["spec"]
    assert cron["schedule"] == "0 3 * * 1-5" and cron["timeZone"] == "Europe/Berlin"
    assert cron["concurrencyPolicy"] == "Forbid" and cron["jobTemplate"]["spec"]["backoffLimit"] == 0
    container = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["run-scheduled", "--playbook=drain-node"]
    assert "--param" in container["args"] and "node=worker-1" in container["args"]
    # the playbooks (with what drain-node includes) and an in-cluster inventory travel in the ConfigMap
    data = by_kind["ConfigMap"]["data"]
    assert "playbook.drain-node.yaml" in data
    inventory = yaml.safe_load(data["inventory.yaml"])
    assert inventory["kube"] == {"in_cluster": True} and inventory["checkpoint_store"] == "configmap"
    assert inventory["window"]["timezone"] == "Europe/Berlin"
    # the webhook URL is a secret: never in the rendered objects, read from a Secret instead
    rendered = cronjob.to_yaml(docs)
    assert "very-secret-token" not in rendered and "hooks.example.com" not in rendered
    env = {e["name"]: e for e in container["env"]}
    assert env[cronjob.WEBHOOK_ENV]["valueFrom"]["secretKeyRef"]["name"] == cronjob.WEBHOOK_SECRET
    assert inventory["notify"]["webhook_url_env"] == cronjob.WEBHOOK_ENV


def test_cluster_role_grants_only_what_actions_use(harness: Harness) -> None:
    docs = _render(harness)
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert ("", "pods/eviction", "create") in granted and ("", "nodes", "patch") in granted
    assert not {v for _, _, v in granted} & {"*", "escalate", "bind", "impersonate", "deletecollection"}
    assert not {r for _, r, _ in granted} & {"*", "secrets", "clusterroles", "roles", "leases", "configmaps"}
    local = next(d for d in docs if d["kind"] == "Role")
    assert local["metadata"]["namespace"] == "kube-system"
    assert {r for rule in local["rules"] for r in rule["resources"]} == {"leases", "configmaps"}
