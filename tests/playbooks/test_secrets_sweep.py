"""The secrets sweep: every task, succeeding and failing, with every kind of secret set, and the secrets nowhere.

Beside tests/playbooks/test_secrets_never_leak.py (failures in the ways that spill credentials), this one drives
the tasks to success too, on one sandbox with AWS and a real sshd: a bearer token the API server requires
(scenario setting ``tokens``), AWS credentials with a secret key, an ENCRYPTED SSH key whose passphrase comes from
``ssh.key_passphrase_env``, and a webhook URL that receives the notifications (so the URL is really used). JSON
logs throughout. Then none of the secrets may be found in stdout/stderr, any file under the state folder (run
records, lock notes), error messages, the payloads the webhook received, or the argv of any process on the
machine (``/proc/*/cmdline``, sampled while the runs go: ours, the sandbox's, moto's, sshd's).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from kubeops.sandbox.testing import SandboxProcess
from tests.aws_sandbox import GROUP, scenario
from tests.soak_harness import APP, APP_YAML
from tests.ssh_fixture import Sshd, start_sshd, stop_sshd

MARKER = "SWEEP" + secrets.token_hex(4).upper()  # unique per session: other processes cannot hold it by chance
TOKEN = f"sweep-{MARKER}-bearer"
AWS_SECRET = f"wJalrXUtnFEMI/{MARKER}/bPxRfiCYEXAMPLEKEY"
PASSPHRASE = f"correct horse {MARKER} staple"
HOOK_PATH = f"/services/T000/B000/{MARKER}"
KUBEOPS = [sys.executable, "-c", "from kubeops.cli import main; main()"]
SECRETS = (TOKEN, AWS_SECRET, PASSPHRASE, HOOK_PATH, MARKER)


class Hook(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode(errors="replace")
        Hook.received.append(f"{self.path} {body}")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


class Sweep:
    def __init__(self, root: Path, sb: SandboxProcess, sshd: Sshd, hook_url: str) -> None:
        self.root, self.sb, self.sshd, self.hook_url = root, sb, sshd, hook_url
        self.state = root / "state"
        self.inventory = root / "inventory"
        (self.inventory / "apps").mkdir(parents=True)
        (self.inventory / "apps" / f"{APP}.yaml").write_text(APP_YAML)
        self.outputs: list[str] = []
        self.argv_seen: set[str] = set()
        private = root / "private"
        private.mkdir()
        key = private / "id_encrypted"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-C", "sweep", "-f", str(key)],
                       check=True)
        with (sshd.dir / "authorized_keys").open("a") as auth:
            auth.write((private / "id_encrypted.pub").read_text())
        kubeconfig = private / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
            "clusters": [{"name": "c", "cluster": {"server": sb.api_url}}],
            "users": [{"name": "u", "user": {"token": TOKEN}}],
            "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        }))
        env_file = private / "aws.env"
        env_file.write_text(f"export AWS_ENDPOINT_URL={sb.aws_url}\nexport AWS_ACCESS_KEY_ID=AKIASWEEP00000000\n"
                            f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n")
        self.inventory_doc = {
            "name": "sweep",
            "kube": {"kubeconfig": str(kubeconfig), "max_retries": 2},
            "aws": {"region": "us-east-1", "env_file": str(env_file)},
            "ssh": {"user": sshd.user, "port": sshd.port, "key_filename": str(key),
                    "known_hosts": str(sshd.known_hosts), "key_passphrase_env": "SWEEP_SSH_PASSPHRASE",
                    "connect_timeout_s": 5, "hosts": {}},
            "lock": {"ttl_s": 3},
            "notify": {"webhook_url_env": "SWEEP_WEBHOOK", "on_success": True},
        }
        self.write_inventory()

    def write_inventory(self) -> None:
        (self.inventory / "sweep.yaml").write_text(yaml.safe_dump(self.inventory_doc))

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(KUBEOPS_STATE_DIR=str(self.state), KUBEOPS_INVENTORY_DIR=str(self.inventory),
                   KUBEOPS_CLUSTER="sweep", KUBEOPS_LOG_FORMAT="json", SWEEP_WEBHOOK=self.hook_url,
                   SWEEP_SSH_PASSPHRASE=PASSPHRASE)
        return env

    def kubeops(self, *args: str, codes: tuple[int, ...] = (0,), **env: str) -> subprocess.CompletedProcess[str]:
        """Run kubeops, sampling every process's argv while it runs."""
        proc = subprocess.Popen([*KUBEOPS, *args], env={**self.env, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        stop = threading.Event()
        sampler = threading.Thread(target=self._sample_argv, args=(stop,), daemon=True)
        sampler.start()
        try:
            out, err = proc.communicate(timeout=240)
        finally:
            stop.set()
            sampler.join()
        self.outputs += [out, err]
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert done.returncode in codes, (args, done.returncode, err[-3000:])
        assert "Traceback" not in err, err[-3000:]
        return done

    def _sample_argv(self, stop: threading.Event) -> None:
        while True:
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    self.argv_seen.add(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    continue
            if stop.wait(0.05):
                return

    def workers(self) -> list[str]:
        status, body = self.sb.request("GET", "/api/v1/nodes")
        assert status == 200, body
        return sorted(n["metadata"]["name"] for n in body["items"]
                      if (n["metadata"].get("labels") or {}).get("kubeops.io/autoscaling-group") == GROUP)

    def leaks(self) -> list[str]:
        """Where any secret was found: stdout/stderr, files under the state folder, webhook payloads, argv."""
        found = []
        places = [("output", text) for text in self.outputs]
        places += [(str(p), p.read_text(errors="replace")) for p in self.state.rglob("*") if p.is_file()]
        places += [("webhook payload", text.split(" ", 1)[1]) for text in Hook.received]
        places += [("argv", text) for text in self.argv_seen]
        for where, text in places:
            for secret in SECRETS:
                if secret in text:
                    at = text.index(secret)
                    found.append(f"{where}: ...{text[max(0, at - 200):at + 60]}")
        return found


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    root = tmp_path_factory.mktemp("sweep")
    spec = scenario(desired=3, max_size=6, join_delay_s=1)
    spec["settings"]["tokens"] = [TOKEN]  # the API server accepts this bearer token and nothing else
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    sshd = start_sshd(root / "sshd")
    sb = SandboxProcess(spec, state_dir=root / "sandbox", aws=True).start()
    try:
        yield Sweep(root, sb, sshd, f"http://127.0.0.1:{hook.server_address[1]}{HOOK_PATH}")
    finally:
        sb.stop()
        stop_sshd(sshd)
        hook.shutdown()


@pytest.mark.timeout(600)
def test_every_task_succeeding_and_failing_leaves_no_secret_anywhere(sweep: Sweep) -> None:
    deadline = time.monotonic() + 60
    while len(sweep.workers()) < 3:
        assert time.monotonic() < deadline, "workers never joined"
        time.sleep(0.2)
    first, second, third = sweep.workers()[:3]

    # maintain over SSH with the encrypted key: cordon, drain, run a command, uncordon
    sweep.inventory_doc["ssh"]["hosts"] = {first: "127.0.0.1"}
    sweep.write_inventory()
    maintained = sweep.kubeops("maintain", f"--node={first}", "--no-sudo", "--command=echo maintained")
    assert "done" in maintained.stdout, maintained.stdout
    assert any(json.loads(line).get("event") == "ssh.command.done" for line in maintained.stderr.splitlines()
               if line.startswith("{")) or "maintained" in maintained.stdout + maintained.stderr

    # a wrong passphrase fails the SSH step; the message names neither passphrase
    wrong = sweep.kubeops("maintain", f"--node={first}", "--no-sudo", "--command=true", codes=(1,),
                          SWEEP_SSH_PASSPHRASE=f"wrong-{MARKER}")
    assert "ssh" in wrong.stderr.lower(), wrong.stderr[-2000:]
    wrong_id = re.search(r"invoke resume --run=([\w-]+)", wrong.stderr)[1]  # type: ignore[index]
    sweep.kubeops("resume", f"--run={wrong_id}")  # the right passphrase again: the run completes

    sweep.kubeops("replace", f"--node={second}")
    sweep.kubeops("decommission", f"--node={third}", "--terminate", "--delete-node")
    sweep.kubeops("deploy", f"--app={APP}", "--version=1")
    sweep.kubeops("deploy", f"--app={APP}", "--version=2")
    sweep.kubeops("stats", f"--node={first}")
    sweep.kubeops("stats")
    sweep.kubeops("schedule", "--playbook=drain-node", "--cron=0 3 * * 1", f"--param=node={first}", "--kubernetes")

    # failing runs: an unknown node, and SSH to a host where nothing listens; then resume, show, runs
    sweep.kubeops("decommission", "--node=ghost", codes=(2,))
    sweep.inventory_doc["ssh"]["hosts"] = {first: "127.0.0.2"}
    sweep.write_inventory()
    failed = sweep.kubeops("maintain", f"--node={first}", "--no-sudo", "--command=true", codes=(1,))
    run_id = re.search(r"invoke resume --run=([\w-]+)", failed.stderr)[1]  # type: ignore[index]
    sweep.kubeops("resume", f"--run={run_id}", codes=(1,))
    sweep.kubeops("show", f"--run={run_id}")
    sweep.kubeops("show", f"--run={run_id}", "--json")
    sweep.kubeops("runs")
    sweep.kubeops("runs", "--json")
    sweep.kubeops("uncordon", f"--node={first}")

    assert len(Hook.received) >= 5, Hook.received  # the webhook was really used (success and failure notes)
    assert sweep.argv_seen, "no process argv was sampled"
    assert sweep.leaks() == []


def test_the_sweep_would_see_a_leak(sweep: Sweep) -> None:
    """The check can fail: a secret in a state file, in output and in argv is each reported."""
    probe = sweep.state / "probe.txt"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text(f"passphrase={PASSPHRASE}")
    sweep.outputs.append(f"Authorization: Bearer {TOKEN}")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)", AWS_SECRET])
    try:
        own = Path(f"/proc/{sleeper.pid}/cmdline")  # until the child has exec'd, its argv is still pytest's
        deadline = time.monotonic() + 10
        while AWS_SECRET.encode() not in own.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        stop = threading.Event()
        stop.set()
        sweep._sample_argv(stop)
        found = sweep.leaks()
    finally:
        sleeper.kill()
        sleeper.wait()
        probe.unlink()
        sweep.outputs.pop()
        sweep.argv_seen = {a for a in sweep.argv_seen if AWS_SECRET not in a}
    assert any(f.startswith(str(probe)) for f in found)
    assert any(f.startswith("output") for f in found)
    assert any(f.startswith("argv") for f in found)
