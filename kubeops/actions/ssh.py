"""SSH maintenance steps: `ssh.run` (argument-list commands on a node) and `ssh.reboot` (and wait for Ready again).

Which address: the step's `host` if given, else the inventory's ``ssh.hosts[node]``, else the Node's InternalIP
(then Hostname) from the Kubernetes API. How to connect (user, key, bastion, known_hosts) is the inventory's
`ssh` group (a bastion's host key is verified against the same known_hosts), applied by `kubeops.clients.ssh`,
which also quotes every argument and applies dry run.

Resume: both actions record intent before acting. `ssh.run` records how many commands completed, so a resumed
step re-runs only the command that was in flight and those after it (maintenance commands should therefore be
safe to repeat). `ssh.reboot` records the bootID before sending the reboot, so a resumed step that finds a new
bootID (or a Ready transition since) only waits, and never reboots the node a second time.
"""

from __future__ import annotations

import calendar
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeops.actions.context import StepContext
from kubeops.actions.registry import Plan, action
from kubeops.clients.nodes import get_node, node_address, node_is_ready
from kubeops.errors import ActionError, InputError
from kubeops.progress import Progress

Node = Mapping[str, Any]


# --- where to connect ---------------------------------------------------------------------------------------------
def resolve_host(ctx: StepContext, node: str, override: str | None) -> tuple[str, str]:
    """(address, where it came from): the step's `host`, the inventory's ssh.hosts, or the Node's addresses."""
    if override:
        return override, "step"
    mapped = ctx.settings.ssh.hosts.get(node)
    if mapped:
        return mapped, "inventory"
    address = node_address(get_node(ctx.kube, node))
    if not address:
        raise ActionError(
            f"node {node} reports no InternalIP or Hostname address to SSH to",
            hint=f"set ssh.hosts.{node} in the inventory, or pass `host` to the step",
        )
    return address, "node"


def normalise_commands(command: list[str] | list[list[str]]) -> list[list[str]]:
    """One argument list, or a list of them, as a list of argument lists (each non-empty)."""
    if isinstance(command, str):
        raise InputError(
            f"ssh: `command` must be a list of arguments, not the string {command!r}: the shell never splits it"
        )
    if not command:
        raise InputError("ssh: `command` is empty; give an argument list such as [systemctl, restart, kubelet]")
    if all(isinstance(c, str) for c in command):
        return [list(command)]  # type: ignore[arg-type]
    commands = [list(c) for c in command]  # type: ignore[arg-type]
    for i, c in enumerate(commands):
        if not c or not all(isinstance(a, str) for a in c):
            raise InputError(f"ssh: command {i + 1} must be a non-empty list of strings")
    return commands


# --- ssh.run ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunParams:
    """Run commands on a node; each command is an argument list, quoted for the remote shell."""

    node: str = field(metadata={"help": "the Kubernetes node name"})
    command: list[str] | list[list[str]] = field(
        metadata={"help": "an argument list, or a list of argument lists run in order (stops at the first failure)"}
    )
    sudo: bool = field(default=False, metadata={"help": "run as root with `sudo -n` (never prompts)"})
    timeout_s: float = field(default=600.0, metadata={"help": "per command; the command is killed on the node"})
    env: dict[str, str] = field(default_factory=dict, metadata={"help": "environment for the commands (not logged)"})
    host: str | None = field(default=None, metadata={"help": "address to connect to instead of the node's"})


RUN_OUTPUTS = ("node", "host", "results", "exit_code", "stdout", "stderr")


def _run_outputs(node: str, host: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    last = results[-1] if results else {}
    return {
        "node": node,
        "host": host,
        "results": results,
        "exit_code": last.get("exit_code", 0),
        "stdout": last.get("stdout", ""),
        "stderr": last.get("stderr", ""),
    }


def _command_timeout(ctx: StepContext, timeout_s: float) -> float:
    remaining = ctx.remaining_s()
    if remaining is not None:
        if remaining <= 0:
            ctx.check_deadline()
        return max(1.0, min(timeout_s, remaining))
    return timeout_s


def plan_run(ctx: StepContext, p: RunParams) -> Plan:
    """Resolve the host (a read) and show each command as it would be sent; connect to nothing."""
    from kubeops.clients.ssh import build_command

    commands = normalise_commands(p.command)
    host, source = resolve_host(ctx, p.node, p.host)
    shown = [build_command(c, sudo=p.sudo, env=p.env, timeout_s=p.timeout_s).display for c in commands]
    results = [
        {"host": host, "command": s, "exit_code": 0, "stdout": "", "stderr": "", "dry_run": True} for s in shown
    ]
    return Plan(
        summary=f"run {len(shown)} command(s) on node {p.node} at {host} ({source}) over SSH",
        details=[f"{host}$ {s}" for s in shown],
        outputs=_run_outputs(p.node, host, results),
    )


@action("ssh.run", params=RunParams, mutates=True, plan=plan_run, outputs=RUN_OUTPUTS)
def run(ctx: StepContext, p: RunParams) -> dict[str, Any]:
    """Run argument-list commands on a node over SSH; a non-zero exit fails the step with stderr's tail."""
    if ctx.dry_run:  # the plan is the dry run: no intent recorded, no connection opened
        return dict(plan_run(ctx, p).outputs)
    commands = normalise_commands(p.command)
    intent = ctx.intent or {}
    host = intent.get("host") or resolve_host(ctx, p.node, p.host)[0]
    completed = int(intent.get("completed", 0)) if intent.get("commands") == len(commands) else 0
    if completed:
        ctx.log.info("ssh.run.resuming", node=p.node, host=host, completed=completed, total=len(commands))
    results: list[dict[str, Any]] = [
        {"host": host, "command": shlex.join(c), "skipped": "completed by an earlier attempt"}
        for c in commands[:completed]
    ]
    for index in range(completed, len(commands)):
        ctx.record_intent({"host": host, "commands": len(commands), "completed": index})
        result = ctx.ssh.run(
            host, commands[index], sudo=p.sudo, env=p.env, timeout_s=_command_timeout(ctx, p.timeout_s)
        )
        results.append(result.to_dict())
    ctx.record_intent({"host": host, "commands": len(commands), "completed": len(commands)})
    return _run_outputs(p.node, host, results)


# --- ssh.reboot: decision logic (pure) ----------------------------------------------------------------------------
def boot_id(node: Node) -> str | None:
    return ((node.get("status") or {}).get("nodeInfo") or {}).get("bootID") or None


def ready_since(node: Node) -> str | None:
    """The Ready condition's lastTransitionTime as the API wrote it (a baseline to compare against later)."""
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("lastTransitionTime") or None
    return None


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return float(calendar.timegm(time.strptime(stamp.replace("Z", "").split(".")[0], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def rebooted(node: Node, *, boot_id_before: str | None, sent_at: float, ready_since_before: str | None = None) -> bool:
    """Whether the node shows the reboot: a new bootID, not Ready, or a Ready transition since it was sent.

    With the Ready condition's lastTransitionTime read just before sending (`ready_since_before`), any other value
    means a transition happened since; without it, only a transition stamped after the send's second counts.
    """
    now_boot = boot_id(node)
    if boot_id_before and now_boot and now_boot != boot_id_before:
        return True
    if not node_is_ready(node):
        return True
    since = ready_since(node)
    if ready_since_before is not None:
        return since is not None and since != ready_since_before
    transition = _epoch(since)
    return transition is not None and transition > sent_at  # API times have whole seconds: strictly later


def must_send(intent: Mapping[str, Any] | None, node: Node, *, now: float, down_timeout_s: float) -> str:
    """What a (re-)entered reboot step does: "send", "wait" (already sent and showing), or "wait-or-resend".

    The intent is written before the command is sent, so it means "maybe sent". If the node already shows the
    reboot, only wait. If not and the send is recent, the reboot may still be coming: wait, and send again only
    if nothing shows within `down_timeout_s` of the first send.
    """
    if not intent or intent.get("phase") != "reboot-sent":
        return "send"
    sent_at = float(intent.get("sent_at", 0.0))
    if rebooted(
        node, boot_id_before=intent.get("boot_id"), sent_at=sent_at, ready_since_before=intent.get("ready_since")
    ):
        return "wait"
    return "wait-or-resend" if now - sent_at < down_timeout_s else "send"


class NoRebootSeen(ActionError):
    """The node never showed the reboot (same bootID, still Ready, no transition): it probably did not happen."""


@dataclass(slots=True)
class RebootWatch:
    """Follows one node through a reboot: first it must show going down, then be Ready again."""

    boot_id_before: str | None
    sent_at: float
    ready_since_before: str | None = None
    seen_down: bool = False
    last: Node | None = None

    def observe(self, node: Node) -> bool:
        """Feed one read of the node; True once it has gone down (or rebooted) and is Ready again."""
        self.last = node
        if not self.seen_down and rebooted(
            node, boot_id_before=self.boot_id_before, sent_at=self.sent_at, ready_since_before=self.ready_since_before
        ):
            self.seen_down = True
        return self.seen_down and node_is_ready(node)

    def describe(self) -> str:
        node = self.last or {}
        ready = next(
            (c for c in (node.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"), {}
        )
        return f"Ready={ready.get('status', 'Unknown')}, bootID={boot_id(node) or 'unknown'}"


def wait_rebooted(
    watch: RebootWatch,
    read_node: Callable[[], Node],
    *,
    node: str,
    timeout_s: float,
    down_timeout_s: float,
    poll_interval_s: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    check: Callable[[], None] = lambda: None,
) -> Node:
    """Poll the node until `watch` says it is back; ActionError if it never goes down or never comes back."""
    started = clock()
    while True:
        check()
        current = read_node()
        if watch.observe(current):
            return current
        now = clock()
        if not watch.seen_down and now - watch.sent_at > down_timeout_s:
            raise NoRebootSeen(
                f"node {node} showed no sign of rebooting within {down_timeout_s:g}s of the reboot command "
                f"({watch.describe()})",
                hint="check that the reboot command works on the node (sudo rights?); resuming sends it again",
            )
        if now - started > timeout_s:
            raise ActionError(
                f"node {node} did not become Ready again within {timeout_s:g}s after rebooting ({watch.describe()})",
                hint="look at the node's kubelet; resuming only waits again, it does not reboot twice",
            )
        sleep(poll_interval_s)


# --- ssh.reboot ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RebootParams:
    """Reboot a node over SSH and wait until Kubernetes reports it Ready again after a new boot."""

    node: str = field(metadata={"help": "the Kubernetes node name"})
    host: str | None = field(default=None, metadata={"help": "address to connect to instead of the node's"})
    command: list[str] = field(
        default_factory=lambda: ["systemctl", "reboot"], metadata={"help": "the reboot command (argument list)"}
    )
    sudo: bool = field(default=True, metadata={"help": "run the reboot command with `sudo -n`"})
    timeout_s: float = field(default=900.0, metadata={"help": "how long to wait for Ready after the reboot"})
    down_timeout_s: float = field(
        default=300.0, metadata={"help": "how long the node may take to show the reboot (new bootID or NotReady)"}
    )
    poll_interval_s: float = field(default=5.0, metadata={"help": "how often the Node is read while waiting"})
    send_timeout_s: float = field(default=60.0, metadata={"help": "timeout of the reboot command itself"})


REBOOT_OUTPUTS = ("node", "host", "sent", "boot_id_before", "boot_id_after", "waited_s")


def plan_reboot(ctx: StepContext, p: RebootParams) -> Plan:
    """Read the node and say what would be sent; connect to nothing, reboot nothing."""
    from kubeops.clients.ssh import build_command

    host, source = resolve_host(ctx, p.node, p.host)
    node = get_node(ctx.kube, p.node)
    shown = build_command(p.command, sudo=p.sudo).display
    return Plan(
        summary=f"reboot node {p.node} at {host} ({source}) over SSH, then wait up to {p.timeout_s:g}s for Ready",
        details=[f"{host}$ {shown}", f"current bootID: {boot_id(node) or 'unknown'}"],
        outputs={
            "node": p.node,
            "host": host,
            "sent": True,
            "boot_id_before": boot_id(node),
            "boot_id_after": None,
            "waited_s": 0.0,
        },
    )


def _send_reboot(ctx: StepContext, host: str, p: RebootParams) -> None:
    """Send the reboot; a dropped connection or an unfinished command is what a reboot looks like, not a failure."""
    from kubeops.clients.ssh import SshConnectionLost, SshTimeout

    try:
        ctx.ssh.send_reboot(host, p.command, node=p.node, sudo=p.sudo, timeout_s=p.send_timeout_s)
    except (SshConnectionLost, SshTimeout) as exc:
        ctx.log.info("ssh.reboot.connection_dropped", node=p.node, host=host, reason=type(exc).__name__)


@action("ssh.reboot", params=RebootParams, mutates=True, plan=plan_reboot, outputs=REBOOT_OUTPUTS)
def reboot(ctx: StepContext, p: RebootParams) -> dict[str, Any]:
    """Reboot a node over SSH (once, even across resumes) and wait until it is Ready again."""
    if ctx.dry_run:  # the engine plans mutating steps in a dry run; never wait for a reboot that was not sent
        return dict(plan_reboot(ctx, p).outputs)
    host = (ctx.intent or {}).get("host") or resolve_host(ctx, p.node, p.host)[0]
    node = get_node(ctx.kube, p.node)
    decision = must_send(ctx.intent, node, now=time.time(), down_timeout_s=p.down_timeout_s)
    intent = dict(ctx.intent or {})
    if decision == "send":
        intent = {
            "phase": "reboot-sent",
            "host": host,
            "boot_id": boot_id(node),
            "ready_since": ready_since(node) if node_is_ready(node) else None,
            "sent_at": time.time(),
            "sends": int(intent.get("sends", 0)) + 1,
        }
        ctx.record_intent(intent)  # before the side effect: a resume must know it may have happened
        ctx.log.info("ssh.reboot.sending", node=p.node, host=host, boot_id=intent["boot_id"])
        _send_reboot(ctx, host, p)
    else:
        ctx.log.info("ssh.reboot.already_sent", node=p.node, host=host, decision=decision)
    started = time.monotonic()
    progress = Progress(ctx.log, "ssh.reboot.progress", timeout_s=p.timeout_s)

    def report() -> str:
        phase = "be Ready again" if watch.seen_down else "go down for the reboot"
        return f"waiting for node {p.node} to {phase} ({watch.describe()})"

    def sleep(seconds: float) -> None:  # in slices, saying how the wait goes at most once a second
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            progress.emit(report())
            time.sleep(min(left, progress.every_s))

    def watch_for(intent: dict[str, Any]) -> RebootWatch:
        return RebootWatch(
            boot_id_before=intent.get("boot_id"),
            sent_at=float(intent["sent_at"]),
            ready_since_before=intent.get("ready_since"),
        )

    def await_reboot() -> Any:  # reads `watch` when called: the resend below starts a new one
        return wait_rebooted(
            watch,
            lambda: get_node(ctx.kube, p.node),
            node=p.node,
            timeout_s=p.timeout_s,
            down_timeout_s=p.down_timeout_s,
            poll_interval_s=p.poll_interval_s,
            check=ctx.check_deadline,
            sleep=sleep,
        )

    watch = watch_for(intent)
    try:
        final = await_reboot()
    except NoRebootSeen:
        if decision != "wait-or-resend":
            raise
        # the earlier attempt's reboot evidently never happened: send it now, once
        ctx.log.info("ssh.reboot.resending", node=p.node, host=host)
        intent = {**intent, "sent_at": time.time(), "sends": int(intent.get("sends", 1)) + 1}
        ctx.record_intent(intent)
        _send_reboot(ctx, host, p)
        decision = "send"
        watch = watch_for(intent)
        final = await_reboot()
    ctx.record_node_event(p.node, "Rebooted", f"Node {p.node} rebooted over SSH and Ready again "
                          f"(boot ID {intent.get('boot_id')} -> {boot_id(final)})")
    return {
        "node": p.node,
        "host": host,
        "sent": decision == "send",
        "boot_id_before": intent.get("boot_id"),
        "boot_id_after": boot_id(final),
        "waited_s": round(time.monotonic() - started, 3),
    }
