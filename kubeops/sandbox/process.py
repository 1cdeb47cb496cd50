"""Running the sandbox as a process: flags, state folder, moto, detach and stop.

``python -m kubeops.sandbox --scenario NAME_OR_PATH [--port N] [--aws-port N] [--no-aws] [--state-dir DIR]
[--param k=v ...] [--fault k=v ...] [--detach] [--stop]``

The state folder (default ``$KUBEOPS_STATE_DIR/sandbox``, KUBEOPS_STATE_DIR defaulting to
``~/.local/state/kubeops``) receives ``kubeconfig`` (cluster/context/user ``sandbox``, dummy bearer token),
``env`` (shell-sourceable: AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_REGION, dummy AWS keys, KUBECONFIG),
``requests.jsonl`` (truncated at start), ``sandbox.json`` (pid, api_url, aws_url, moto_pid, scenario; written
once the API answers, removed on a clean stop) and ``sandbox.log`` (detached runs).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubeops.errors import KubeopsError
from kubeops.processes import pid_alive
from kubeops.sandbox.server import SANDBOX_TOKEN

log = logging.getLogger("kubeops.sandbox")

DUMMY_AWS_KEY = "testing"


def default_state_dir() -> Path:
    base = os.environ.get("KUBEOPS_STATE_DIR") or str(Path.home() / ".local" / "state" / "kubeops")
    return Path(base) / "sandbox"


def _kv(values: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise KubeopsError(f"{flag} expects key=value, got {item!r}")
        out[key] = value
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kubeops.sandbox",
                                description="Local Kubernetes API (and moto AWS) for kubeops.")
    p.add_argument("--scenario", default="default", help="scenario name or YAML path (default: default)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="API port; 0 picks a free one")
    p.add_argument("--aws-port", type=int, default=0, help="moto_server port; 0 picks a free one")
    p.add_argument("--no-aws", action="store_true", help="do not start moto_server")
    p.add_argument("--state-dir", type=Path, default=None)
    p.add_argument("--param", action="append", metavar="K=V", help="scenario parameter override")
    p.add_argument("--fault", action="append", metavar="K=V",
                   help="fault setting, e.g. error_429_rate=0.1 (see kubeops.sandbox.faults)")
    p.add_argument("--snapshot", type=Path, default=None,
                   help="load a cluster snapshot (kubeops.io/snapshot/v1 JSON, .gz allowed) instead of a scenario")
    p.add_argument("--speed", type=float, default=1.0, help="snapshot: divide grace periods and probe delays by N")
    p.add_argument("--join-s", type=float, default=120.0, help="snapshot: real seconds from instance to Ready node")
    p.add_argument("--exit-s", default=None,
                   help="snapshot: seconds every pod takes to exit after SIGTERM, or 'grace' (default: from preStop)")
    p.add_argument("--detach", action="store_true", help="run in the background; return once the API answers")
    p.add_argument("--stop", action="store_true", help="stop the sandbox running from --state-dir")
    p.add_argument("--log-level", default="WARNING")
    return p


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def kubeconfig_text(api_url: str) -> str:
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: sandbox\n  cluster:\n    server: {api_url}\n"
        f"users:\n- name: sandbox\n  user:\n    token: {SANDBOX_TOKEN}\n"
        "contexts:\n- name: sandbox\n  context:\n    cluster: sandbox\n    user: sandbox\n    namespace: default\n"
        "current-context: sandbox\npreferences: {}\n"
    )


def env_vars(state_dir: Path, aws_url: str | None, region: str) -> dict[str, str]:
    env = {"AWS_DEFAULT_REGION": region, "AWS_REGION": region, "AWS_ACCESS_KEY_ID": DUMMY_AWS_KEY,
           "AWS_SECRET_ACCESS_KEY": DUMMY_AWS_KEY, "KUBECONFIG": str(state_dir / "kubeconfig")}
    if aws_url:
        env["AWS_ENDPOINT_URL"] = aws_url
    return env


def read_info(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / "sandbox.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _wait_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def start_moto(host: str, port: int, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = port or free_port(host)
    fh = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    proc = subprocess.Popen(["moto_server", "-H", host, "-p", str(port)], stdout=fh, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    url = f"http://{host}:{port}"
    if not _wait_http(url + "/moto-api/", 30):
        proc.kill()
        raise KubeopsError(f"moto_server did not answer on {url} within 30 s (log: {log_path})")
    return proc, url


def serve(args: argparse.Namespace) -> int:
    """Foreground run: load, serve until SIGTERM/SIGINT, clean up."""
    from kubeops.sandbox import scenario as scenarios
    from kubeops.sandbox.cluster import build_cluster
    from kubeops.sandbox.faults import FaultConfig, Faults
    from kubeops.sandbox.requestlog import RequestLog
    from kubeops.sandbox.server import SandboxServer

    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    info = read_info(state_dir)
    if info and info.get("pid") != os.getpid() and pid_alive(int(info.get("pid", 0))):
        raise KubeopsError(f"a sandbox is already running from {state_dir} (pid {info['pid']}, {info['api_url']})",
                           hint="stop it with `python -m kubeops.sandbox --stop` or use another --state-dir")
    snapshot_doc = None
    if getattr(args, "snapshot", None):
        from kubeops.sandbox import snapshot_load

        snapshot_doc = snapshot_load.read(args.snapshot)
        scenario = snapshot_load.scenario(snapshot_doc, path=str(args.snapshot), speed=args.speed,
                                          join_s=args.join_s, exit_s=args.exit_s)
    else:
        scenario = scenarios.load(args.scenario, params=_kv(args.param, "--param"))
    fault_settings: dict[str, Any] = dict(scenario.faults)
    for k, v in _kv(args.fault, "--fault").items():
        fault_settings[k] = json.loads(v) if v and v[0] in "0123456789[{\"-tfn" else v
    faults = Faults(FaultConfig.from_dict(fault_settings))
    moto: subprocess.Popen[bytes] | None = None
    aws_url = None
    if not args.no_aws:
        moto, aws_url = start_moto(args.host, args.aws_port, state_dir / "moto.log")
    server = None
    cluster = None
    stop_event = threading.Event()
    try:
        cluster = build_cluster(scenario=scenario, aws_url=aws_url)
        t0 = time.perf_counter()
        if snapshot_doc is not None:
            snapshot_load.apply(cluster, snapshot_doc)
            del snapshot_doc
        else:
            scenarios.apply(cluster, scenario)
        cluster.prepare()
        gc.collect()
        gc.freeze()  # the loaded scenario is long-lived: keep full collections from walking it (p99 latency)
        log.info("scenario %s loaded in %.2fs", scenario.name, time.perf_counter() - t0)
        (state_dir / "requests.jsonl").write_text("", encoding="utf-8")
        server = SandboxServer(cluster, host=args.host, port=args.port, faults=faults,
                               request_log=RequestLog(state_dir / "requests.jsonl"))
        server.start()
        cluster.start()
        _write_atomic(state_dir / "kubeconfig", kubeconfig_text(server.url), 0o600)
        env = env_vars(state_dir, aws_url, cluster.region)
        _write_atomic(state_dir / "env", "".join(f"export {k}={v}\n" for k, v in env.items()))
        _write_atomic(state_dir / "sandbox.json", json.dumps({
            "pid": os.getpid(), "api_url": server.url, "aws_url": aws_url, "moto_pid": moto.pid if moto else None,
            "scenario": scenario.name, "scenario_path": scenario.path, "state_dir": str(state_dir),
            "started_at": time.time(), "not_loaded": cluster.settings.get("not_loaded") or {}}, indent=2))
        print(f"sandbox {scenario.name!r} serving {server.url}" + (f", AWS at {aws_url}" if aws_url else ""),
              flush=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop_event.set())
        # a test harness (SandboxProcess) names itself: when it dies without stopping us (SIGKILL, timeout), we go
        parent = int(os.environ.get("KUBEOPS_SANDBOX_PARENT_PID") or 0)
        while not stop_event.wait(0.5):
            if moto is not None and moto.poll() is not None:
                log.error("moto_server exited with %s; stopping", moto.returncode)
                return 1
            if parent and not pid_alive(parent):
                log.warning("parent process %s is gone; stopping", parent)
                return 0
        return 0
    finally:
        if cluster is not None:
            cluster.stop()
        if server is not None:
            server.stop()
        if moto is not None and moto.poll() is None:
            moto.terminate()
            try:
                moto.wait(5)
            except subprocess.TimeoutExpired:
                moto.kill()
        info = read_info(state_dir)
        if info and info.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                (state_dir / "sandbox.json").unlink()


def detach(argv: list[str], state_dir: Path, timeout_s: float = 120) -> dict[str, Any]:
    """Start a background sandbox with the same flags (minus --detach); return its sandbox.json."""
    state_dir.mkdir(parents=True, exist_ok=True)
    info = read_info(state_dir)
    if info and pid_alive(int(info.get("pid", 0))):
        raise KubeopsError(f"a sandbox is already running from {state_dir} (pid {info['pid']}, {info['api_url']})",
                           hint="stop it with `python -m kubeops.sandbox --stop`")
    with contextlib.suppress(OSError):
        (state_dir / "sandbox.json").unlink()
    child_argv = [a for a in argv if a != "--detach"]
    if "--state-dir" not in child_argv:
        child_argv += ["--state-dir", str(state_dir)]
    log_path = state_dir / "sandbox.log"
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "kubeops.sandbox", *child_argv], stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise KubeopsError(f"the sandbox exited with code {proc.returncode} while starting:\n{tail}")
        info = read_info(state_dir)
        if info and info.get("pid") == proc.pid and _wait_http(info["api_url"] + "/sandbox/v1/health", 2):
            return info
        time.sleep(0.1)
    proc.kill()
    raise KubeopsError(f"the sandbox did not answer within {timeout_s:.0f} s (log: {log_path})")


def stop(state_dir: str | Path | None = None, *, timeout_s: float = 15) -> bool:
    """Stop the sandbox (and its moto) running from state_dir; False if none was running."""
    sd = Path(state_dir) if state_dir else default_state_dir()
    info = read_info(sd)
    if not info:
        return False
    pid = int(info.get("pid") or 0)
    moto_pid = info.get("moto_pid")
    stopped = False
    if pid and pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped = True
    if moto_pid and pid_alive(int(moto_pid)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(moto_pid), signal.SIGTERM)
    with contextlib.suppress(OSError):
        (sd / "sandbox.json").unlink()
    return stopped


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.state_dir = args.state_dir or default_state_dir()
    try:
        if args.stop:
            print("sandbox stopped" if stop(args.state_dir) else f"no sandbox running from {args.state_dir}")
            return 0
        if args.detach:
            info = detach(argv, args.state_dir)
            print(f"sandbox {info['scenario']!r} serving {info['api_url']} (pid {info['pid']}); "
                  f"source {args.state_dir / 'env'}")
            return 0
        return serve(args)
    except KubeopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
