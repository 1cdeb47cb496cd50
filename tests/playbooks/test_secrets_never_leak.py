"""Secrets never reach a log line, a checkpoint, stdout or stderr: real playbooks through the CLI, made to fail.

The inventory's kubeconfig carries a recognisable bearer token, its AWS env file recognisable credentials, the
webhook URL a recognisable path and the SSH key file recognisable key material. Every value contains the marker
``LEAKTEST``; the runs fail in the ways that tend to spill credentials into messages (an unknown node, an
unknown group, unreachable Kubernetes and AWS endpoints, a 401 from the API server, an unreachable SSH host, an
undeliverable webhook), and then nothing kubeops printed or wrote may contain the marker.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubeops.sandbox.testing import SandboxProcess
from tests.aws_sandbox import GROUP, scenario

MARKER = "LEAKTEST"
TOKEN = f"kubeops-{MARKER}-token-Zq7XwVv3"
AWS_KEY_ID = f"AKIA{MARKER}00000000"
AWS_SECRET = f"wJalrXUtnFEMI/K7MDENG/{MARKER}/bPxRfiCYEXAMPLEKEY"
AWS_SESSION = f"FwoGZXIvYXdzE{MARKER}SessionTokenValue"
KEY_MATERIAL = f"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA{MARKER}\n-----END OPENSSH PRIVATE KEY-----\n"
KUBEOPS = [sys.executable, "-c", "from kubeops.cli import main; main()"]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Leaky:
    """A sandbox with AWS, and inventories whose credentials are all recognisable."""

    def __init__(self, root: Path, sb: SandboxProcess) -> None:
        self.root, self.sb = root, sb
        self.state = root / "state"
        self.inventory = root / "inventory"
        self.inventory.mkdir(parents=True)
        self.outputs: list[str] = []  # stdout and stderr of every command run
        secrets = root / "secrets"
        secrets.mkdir()
        self.webhook = f"http://127.0.0.1:{closed_port()}/services/T000/B000/{MARKER}hook"
        key = secrets / "id_ed25519"
        key.write_text(KEY_MATERIAL)
        key.chmod(0o600)
        known_hosts = secrets / "known_hosts"
        known_hosts.write_text("")
        for name, api, aws in (
            ("leaky", sb.api_url, sb.aws_url),
            ("kube-down", f"http://127.0.0.1:{closed_port()}", sb.aws_url),
            ("aws-down", sb.api_url, f"http://127.0.0.1:{closed_port()}"),
        ):
            kubeconfig = secrets / f"kubeconfig-{name}"
            kubeconfig.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
                "clusters": [{"name": "c", "cluster": {"server": api}}],
                "users": [{"name": "u", "user": {"token": TOKEN}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
            }))
            env_file = secrets / f"aws-{name}.env"
            env_file.write_text(
                f"export AWS_ENDPOINT_URL={aws}\nexport AWS_ACCESS_KEY_ID={AWS_KEY_ID}\n"
                f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}\nexport AWS_SESSION_TOKEN={AWS_SESSION}\n"
            )
            (self.inventory / f"{name}.yaml").write_text(yaml.safe_dump({
                "name": name,
                "kube": {"kubeconfig": str(kubeconfig), "max_retries": 1, "request_timeout_s": 5},
                "aws": {"region": "us-east-1", "env_file": str(env_file), "max_attempts": 1},
                "ssh": {"user": "root", "port": closed_port(), "key_filename": str(key),
                        "known_hosts": str(known_hosts), "connect_timeout_s": 2},
                "lock": {"ttl_s": 3},
                "notify": {"webhook_url_env": "KUBEOPS_TEST_WEBHOOK", "on_success": True},
            }))

    def kubeops(self, *args: str, cluster: str = "leaky", log_format: str = "json") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(KUBEOPS_STATE_DIR=str(self.state), KUBEOPS_INVENTORY_DIR=str(self.inventory),
                   KUBEOPS_CLUSTER=cluster, KUBEOPS_LOG_FORMAT=log_format, KUBEOPS_TEST_WEBHOOK=self.webhook)
        done = subprocess.run([*KUBEOPS, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
        self.outputs += [done.stdout, done.stderr]
        return done

    def written(self) -> dict[Path, str]:
        """Every file kubeops wrote under its state folder (run records, metrics, locks)."""
        return {p: p.read_text(errors="replace") for p in self.state.rglob("*") if p.is_file()}

    def worker(self) -> str:
        status, body = self.sb.request("GET", "/api/v1/nodes")
        assert status == 200, body
        return sorted(n["metadata"]["name"] for n in body["items"]
                      if (n["metadata"].get("labels") or {}).get("kubeops.io/autoscaling-group") == GROUP)[0]


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Leaky]:
    root = tmp_path_factory.mktemp("secrets")
    spec = scenario(desired=2, max_size=4)
    spec["settings"]["tokens"] = [TOKEN]  # the recognisable token is a valid one here
    sb = SandboxProcess(spec, state_dir=root / "sandbox", aws=True).start()
    try:
        yield Leaky(root, sb)
    finally:
        sb.stop()


def assert_no_secret(leaky: Leaky, *texts: str) -> None:
    for text in texts:
        assert MARKER not in text, text[text.index(MARKER) - 300:text.index(MARKER) + 100]
    for path, text in leaky.written().items():
        assert MARKER not in text, f"{path}: {text[text.index(MARKER) - 300:text.index(MARKER) + 100]}"


def failing_runs() -> list[tuple[str, tuple[str, ...], str, set[int]]]:
    return [
        ("leaky", ("decommission", "--node=ghost"), "json", {2}),
        ("leaky", ("replace", "--node=ghost"), "console", {2}),
        ("leaky", ("scale-up", "--group=no-such-group"), "json", {2}),
        ("kube-down", ("cordon", "--node=worker-0"), "json", {1, 2}),
        ("kube-down", ("decommission", "--node=worker-0"), "console", {1, 2}),
        ("aws-down", ("scale-up", f"--group={GROUP}"), "json", {1, 2}),
        ("aws-down", ("replace", "--node=WORKER"), "console", {1, 2}),
    ]


@pytest.mark.parametrize(("cluster", "args", "log_format", "codes"), failing_runs(),
                         ids=[f"{c}-{a[0]}-{f}" for c, a, f, _ in failing_runs()])
def test_failures_never_print_or_record_a_secret(leaky: Leaky, cluster: str, args: tuple[str, ...],
                                                  log_format: str, codes: set[int]):
    args = tuple(a.replace("WORKER", leaky.worker()) for a in args)
    done = leaky.kubeops(*args, cluster=cluster, log_format=log_format)
    assert done.returncode in codes, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert_no_secret(leaky, done.stdout, done.stderr)


def test_replace_with_aws_unreachable_skips_the_restore_instead_of_failing_it(leaky: Leaky):
    """The restore cleanup needs what the `group` step read; when AWS never answered there is nothing to restore."""
    done = leaky.kubeops("replace", f"--node={leaky.worker()}", cluster="aws-down")
    assert done.returncode == 1, done.stderr[-3000:]
    assert "cannot reach the AWS endpoint" in done.stderr
    run_id = re.search(r"invoke resume --run=([\w-]+)", done.stderr)[1]  # type: ignore[index]
    shown = leaky.kubeops("show", f"--run={run_id}", "--json", cluster="aws-down")
    steps = {s["name"]: s for s in json.loads(shown.stdout)["steps"]}
    assert steps["restore"]["status"] == "skipped", steps["restore"]
    assert_no_secret(leaky, done.stdout, done.stderr, shown.stdout, shown.stderr)


def test_a_failed_ssh_step_its_resume_and_the_records_hold_no_secret(leaky: Leaky):
    """maintain: cordon and drain happen, SSH to an unreachable host fails the run; resume fails the same way."""
    node = leaky.worker()
    path = leaky.inventory / "leaky.yaml"
    inventory = yaml.safe_load(path.read_text())
    inventory["ssh"]["hosts"] = {node: "127.0.0.1"}
    path.write_text(yaml.safe_dump(inventory))
    done = leaky.kubeops("maintain", f"--node={node}", "--no-sudo", "--command=true")
    assert done.returncode == 1, done.stderr[-3000:]
    assert "cannot connect to root@127.0.0.1" in done.stderr, done.stderr[-3000:]  # the SSH step was reached
    run_id = re.search(r"invoke resume --run=([\w-]+)", done.stderr)[1]  # type: ignore[index]
    for args in (("resume", f"--run={run_id}"), ("show", f"--run={run_id}", "--json"), ("show", f"--run={run_id}"),
                 ("runs",)):
        more = leaky.kubeops(*args, log_format="console")
        assert more.returncode == (1 if args[0] == "resume" else 0), more.stderr[-3000:]
        assert "Traceback" not in more.stderr, more.stderr[-3000:]
    assert_no_secret(leaky, *leaky.outputs)


def test_a_401_from_the_api_server_holds_no_secret(leaky: Leaky):
    node = leaky.worker()
    leaky.sb.set_faults(error_401_rate=1.0)
    try:
        done = leaky.kubeops("cordon", f"--node={node}")
    finally:
        leaky.sb.set_faults(error_401_rate=0.0)
    assert done.returncode in (1, 2), done.stderr[-3000:]
    assert "Unauthorized" in done.stderr or "401" in done.stderr, done.stderr[-3000:]
    assert_no_secret(leaky, done.stdout, done.stderr)


def test_the_marker_would_be_seen(leaky: Leaky):
    """The check can fail: a file holding a secret is found."""
    (leaky.state / "probe.txt").write_text(f"token={TOKEN}")
    try:
        with pytest.raises(AssertionError):
            assert_no_secret(leaky)
    finally:
        (leaky.state / "probe.txt").unlink()


def test_the_one_exit_door_masks_what_looks_like_a_secret():
    """Defence in depth: even an error message that carries a credential is masked on its way to stderr."""
    from invoke import Exit

    from kubeops.errors import ClusterError
    from kubeops.tasks import _common

    with pytest.raises(Exit) as exit_info, _common.exit_codes():
        raise ClusterError(f"GET /api: sent Authorization: Bearer {TOKEN}; aws_secret_access_key={AWS_SECRET}")
    assert MARKER not in str(exit_info.value.message)
    assert "[redacted]" in str(exit_info.value.message)
