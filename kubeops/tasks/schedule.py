"""Scheduling tasks: `lock` (show/break the cluster lock), `schedule` (crontab line or in-cluster CronJob) and
`run-scheduled` (what a schedule invokes: resume the schedule's unfinished run, else start one).

Thin: flags in, one engine call, output; exit codes from `_common.exit_codes()`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from invoke import Exit

from kubeops.tasks import _common
from kubeops.tasks._common import task

_CLUSTER = _common.CLUSTER_HELP
_WAIT = _common.WAIT_HELP


@task(
    iterable=["param"],
    help={
        "playbook": "playbook name (in playbooks/) or path to a YAML file",
        "param": "playbook parameter name=value (repeatable)",
        "cluster": _CLUSTER,
        "wait-for-lock": _WAIT,
        "textfile-dir": "folder for the Prometheus textfile (default: <state dir>/metrics)",
        "log-format": "auto, console or json (schedules use json)",
    },
)
def run_scheduled(  # type: ignore[no-untyped-def]
    c, playbook=None, param=None, cluster=None, wait_for_lock=None, textfile_dir=None, log_format=None
):
    """Run a playbook as a schedule does: resume this schedule's unfinished run if there is one, else start."""
    playbook = _common.required_flag(playbook, "playbook", "drain-node")
    with _common.exit_codes():
        from kubeops.engine.api import load_playbook, raise_for_status, resume_run, run_playbook
        from kubeops.engine.checkpoints import latest_unfinished
        from kubeops.engine.guard import build_guard
        from kubeops.engine.logging import redact
        from kubeops.engine.stores import store_for
        from kubeops.model.params import bind_params

        params = _common.parse_params(param)
        wait_s = _common.parse_wait(wait_for_lock)
        settings = _common.build_settings(cluster, log_format or "json")
        _common.setup_logging(settings)
        reg = _common.registry()
        pb = load_playbook(playbook, registry=reg)
        bound = bind_params(pb, params, defaults=settings.params)
        key = json.loads(json.dumps(redact(dict(bound)), default=str))
        store = store_for(settings)
        guard = build_guard(settings, wait_for_lock_s=wait_s, textfile_dir=textfile_dir)
        previous = latest_unfinished(
            store,
            cluster=settings.cluster,
            where=lambda r: (r.get("playbook") or {}).get("name") == pb.name and r.get("params") == key,
        )
        if previous is not None:
            rid = previous["id"]
            print(f"resuming run {rid}: the previous invocation of this schedule did not finish")
            record = resume_run(rid, settings=settings, registry=reg, store=store, guard=guard, check=False)
        else:
            record = run_playbook(pb, settings=settings, params=params, registry=reg, store=store, guard=guard,
                                  check=False)
        _common.print_record_summary(record)
        if record["status"] == "paused":
            raise Exit(f"outside window: run {record['id']} paused ({record.get('error')}); the next invocation "
                       "of this schedule inside the window continues it", _common.EXIT_OK)
        raise_for_status(record)


@task(
    name="lock",
    help={
        "cluster": _CLUSTER,
        "break": "remove the lock (after confirmation): only when you are sure no run holds it",
        "yes": "with --break: do not ask for confirmation",
    },
)
def lock_(c, cluster=None, break_=False, yes=False):  # type: ignore[no-untyped-def]
    """Show who holds the cluster lock (and since when); `--break` removes it."""
    with _common.exit_codes():
        from kubeops.engine.guard import describe_holders, lock_for

        settings = _common.build_settings(cluster)
        lock = lock_for(settings, required=True)
        assert lock is not None
        states = lock.states()
        where = ", ".join(f"{settings.lock.namespace}/{n}" for n in lock.lease_names())
        if not states:
            print(f"cluster {settings.cluster} is not locked (no lease {where})")
        for line in describe_holders(states):
            print(line)
        if not break_:
            return
        if not states:
            return
        if not yes:
            if not sys.stdin.isatty():
                raise Exit("error: refusing to break the lock without confirmation; pass --yes", _common.EXIT_INPUT)
            answer = input(f"Break the lock of cluster {settings.cluster} ({where})? A live run would lose it. "
                           "Type 'yes' to continue: ")
            if answer.strip().lower() != "yes":
                raise Exit("lock left in place", _common.EXIT_OK)
        for name in lock.break_lock():
            print(f"deleted lease {name}")


def _program() -> list[str]:
    """How cron should start kubeops: the console script beside this interpreter, else `python -c`."""
    beside = Path(sys.executable).parent / "kubeops"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("kubeops")
    if found and ".pyenv/shims" not in found:
        return [found]
    return [sys.executable, "-c", "from kubeops.cli import main; main()"]


@task(
    iterable=["param"],
    help={
        "playbook": "playbook name (in playbooks/) or path to a YAML file",
        "cron": 'five-field cron expression, e.g. "0 3 * * 1-5" (03:00 on weekdays)',
        "param": "playbook parameter name=value (repeatable)",
        "cluster": _CLUSTER,
        "install": "add the entry to your crontab (idempotent: replaces this schedule's previous line)",
        "kubernetes": "render an in-cluster CronJob, ServiceAccount, RBAC and playbook ConfigMap instead",
        "log-file": "crontab: where JSON logs go (default: <state dir>/logs/<playbook>-<id>.log)",
        "image": "--kubernetes: container image with kubeops installed",
        "namespace": "--kubernetes: namespace of the CronJob (default: the lock's namespace)",
        "timezone": "--kubernetes: IANA time zone of the cron expression (default: the controller's, UTC)",
        "wait-for-lock": _WAIT,
        "output": "write the manifests (or the crontab line) to this file instead of stdout",
    },
)
def schedule(  # type: ignore[no-untyped-def]
    c, playbook=None, cron=None, param=None, cluster=None, install=False, kubernetes=False, log_file=None,
    image="kubeops:latest", namespace=None, timezone=None, wait_for_lock=None, output=None,
):
    """Print (or --install) a crontab entry running a playbook unattended; --kubernetes renders a CronJob."""
    playbook = _common.required_flag(playbook, "playbook", "drain-node")
    cron = _common.required_flag(cron, "cron", '"0 3 * * 1-5"')
    with _common.exit_codes():
        from kubeops.engine import cronjob
        from kubeops.engine.api import load_playbook
        from kubeops.errors import InputError
        from kubeops.model.params import bind_params

        params = _common.parse_params(param)
        _common.parse_wait(wait_for_lock)
        settings = _common.build_settings(cluster)
        pb = load_playbook(playbook, registry=_common.registry())
        bind_params(pb, params, defaults=settings.params)  # bad parameters fail now, not at 3 a.m.
        cronjob.validate_cron(cron)
        if kubernetes:
            if install:
                raise InputError("--install applies to crontab; apply the --kubernetes output with kubectl apply -f")
            if timezone:
                from kubeops.model.windows import Window, WindowError

                try:
                    Window.parse(days=(), start=None, end=None, timezone=timezone)
                except WindowError as exc:
                    raise InputError(f"--timezone: {exc}") from None
            folder = Path(pb.path).parent
            files = {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.yaml"))}
            objects = cronjob.kubernetes_manifests(
                settings=settings, playbook=Path(pb.path).stem, playbook_files=files, cron=cron, params=params,
                image=image, namespace=namespace or settings.lock.namespace, timezone=timezone,
                wait_for_lock=wait_for_lock,
            )
            _emit(cronjob.to_yaml(objects), output)
            if settings.notify.webhook_url or settings.notify.webhook_url_env:
                print(
                    f"note: the webhook URL is read from Secret {cronjob.WEBHOOK_SECRET} (key "
                    f"{cronjob.WEBHOOK_SECRET_KEY}) in the CronJob's namespace; create it with `kubectl create secret "
                    f"generic {cronjob.WEBHOOK_SECRET} --from-literal={cronjob.WEBHOOK_SECRET_KEY}=...`",
                    file=sys.stderr,
                )
            return
        sid = cronjob.schedule_id(cluster=settings.cluster, playbook=pb.name, params=params)
        log_path = Path(log_file).expanduser().resolve() if log_file else (
            settings.state_dir / "logs" / f"{pb.name}-{sid}.log")
        env = {"KUBEOPS_STATE_DIR": str(Path(settings.state_dir).resolve())}
        if settings.inventory_path:
            env["KUBEOPS_INVENTORY_DIR"] = str(Path(settings.inventory_path).resolve().parent)
        entry = cronjob.crontab_entry(
            cron=cron,
            program=_program(),
            args=cronjob.run_args(playbook=str(Path(pb.path).resolve()), cluster=settings.cluster, params=params,
                                  wait_for_lock=wait_for_lock),
            sid=sid,
            log_file=log_path,
            env=env,
            workdir=Path.cwd(),
        )
        if settings.notify.webhook_url_env:
            print(f"note: cron does not see your shell's environment; define {settings.notify.webhook_url_env} "
                  "at the top of the crontab (crontab -e) for notifications", file=sys.stderr)
        if not install:
            _emit(entry.line + "\n", output)
            return
        log_path.parent.mkdir(parents=True, exist_ok=True)
        changed = _install(entry)
        print(f"{'installed' if changed else 'already installed'}: {entry.line}")


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _install(entry: Any) -> bool:
    """Merge `entry` into the user's crontab (`crontab -l`, replace this schedule's line, `crontab -`)."""
    from kubeops.engine import cronjob
    from kubeops.errors import KubeopsError

    binary = os.environ.get("KUBEOPS_CRONTAB", "crontab")  # tests point this at a stand-in
    try:
        listed = subprocess.run([binary, "-l"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise KubeopsError(f"{binary} not found: install cron, or add the printed line yourself") from None
    if listed.returncode != 0 and "no crontab" not in listed.stderr.lower():
        raise KubeopsError(f"`{binary} -l` failed: {listed.stderr.strip()}")
    current = listed.stdout if listed.returncode == 0 else ""
    text, changed = cronjob.merge_crontab(current, entry)
    if changed:
        written = subprocess.run([binary, "-"], input=text, capture_output=True, text=True, timeout=30)
        if written.returncode != 0:
            raise KubeopsError(f"`{binary} -` failed: {written.stderr.strip()}")
    return changed
