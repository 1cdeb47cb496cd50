"""Playbook actions for rolling an app between versioned controllers behind a role Service.

`apps.ensure_service`, `apps.create_version`, `apps.rolling_update`, `apps.verify_endpoints`,
`apps.delete_old_versions`, `apps.delete_version`, `apps.rollback` (see playbooks/rolling-deploy.yaml).

Why each is safe to re-enter after a crash: all state lives in the cluster, not in memory. Creating answers
"exists", scaling sets absolute counts recomputed from the cluster at every step, deleting answers "gone". The one
thing a rollback needs that the cluster would otherwise forget, which versions were serving and at what size
before the deploy, is written onto the new controller itself (annotation ``kubeops.io/previous``) when it is
created, i.e. before any old pod is removed. A deploy of the version already running finds everything in place
and sends no write at all.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeops.actions.registry import Plan, action
from kubeops.apps import rollout
from kubeops.apps.config import AppConfig, load_app
from kubeops.apps.naming import controller_name
from kubeops.apps.render import (
    LABEL_VERSION,
    app_selector,
    controller_manifest,
    resolve_version,
    service_manifest,
    to_yaml,
    version_labels,
)
from kubeops.errors import ActionError
from kubeops.settings import inventory_dir

if TYPE_CHECKING:
    from kubeops.actions.context import StepContext
    from kubeops.clients.workloads import Controller

ANNOTATION_PREVIOUS = "kubeops.io/previous"
FALLBACK_POLL_S = 5.0  # waits follow watches; only when watches keep failing are the objects listed this often


# --- parameters ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AppParams:
    app: str = field(metadata={"help": "app name (inventory/apps/<app>.yaml) or path to its config"})
    cluster: str = field(default="", metadata={"help": "whose overrides apply; empty: the run's cluster"})


@dataclass(frozen=True, slots=True)
class VersionParams:
    app: str = field(metadata={"help": "app name (inventory/apps/<app>.yaml) or path to its config"})
    version: str = field(default="", metadata={"help": "version to deploy; empty: the config's `version`"})
    cluster: str = field(default="", metadata={"help": "whose overrides apply; empty: the run's cluster"})


@dataclass(frozen=True, slots=True)
class RollParams:
    app: str = field(metadata={"help": "app name (inventory/apps/<app>.yaml) or path to its config"})
    version: str = field(default="", metadata={"help": "version to deploy; empty: the config's `version`"})
    cluster: str = field(default="", metadata={"help": "whose overrides apply; empty: the run's cluster"})
    surge: int = field(default=0, metadata={"help": "pods added (and removed) per step; 0: the config's rollout.surge"})
    step_timeout_s: float = field(
        default=0.0, metadata={"help": "seconds each step's new pods get to be ready; 0: rollout.step_timeout_s"}
    )


@dataclass(frozen=True, slots=True)
class VerifyParams:
    app: str = field(metadata={"help": "app name (inventory/apps/<app>.yaml) or path to its config"})
    version: str = field(default="", metadata={"help": "the version that alone should serve"})
    cluster: str = field(default="", metadata={"help": "whose overrides apply; empty: the run's cluster"})
    timeout_s: float = field(default=60.0, metadata={"help": "how long the Endpoints may take to settle"})


@dataclass(frozen=True, slots=True)
class RollbackParams:
    app: str = field(metadata={"help": "app name (inventory/apps/<app>.yaml) or path to its config"})
    version: str = field(default="", metadata={"help": "the version being deployed, to be removed"})
    cluster: str = field(default="", metadata={"help": "whose overrides apply; empty: the run's cluster"})
    timeout_s: float = field(default=120.0, metadata={"help": "how long the previous version may take to be ready "
                                                                 "(and, again, the new one to leave the Service)"})


# --- shared helpers ------------------------------------------------------------------------------------------------
def _load(ctx: StepContext, app: str, cluster: str) -> AppConfig:
    path = ctx.settings.inventory_path
    inventory = Path(path).parent if path else inventory_dir()
    return load_app(app, inventory=inventory, cluster=cluster or ctx.settings.cluster)


def _load_version(
    ctx: StepContext, p: VersionParams | RollParams | VerifyParams | RollbackParams
) -> tuple[AppConfig, str]:
    """The app's config and the version the step names (empty: the config's own `version`)."""
    config = _load(ctx, p.app, p.cluster)
    return config, resolve_version(config, p.version)


def _versions(ctx: StepContext, config: AppConfig, version: str) -> tuple[Controller | None, list[Controller]]:
    """(the controller of `version` or None, every other version's controller of this app)."""
    from kubeops.clients.workloads import list_controllers

    name = controller_name(config.name, version)
    found = list_controllers(ctx.kube, namespace=config.namespace, label_selector=app_selector(config))
    new = next((c for c in found if c.name == name and c.kind == config.controller), None)
    others = [c for c in found if c is not new]
    return new, others


def _previous(controller: Controller) -> list[dict[str, Any]]:
    raw = controller.annotations.get(ANNOTATION_PREVIOUS)
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        raise ActionError(
            f"{controller.ref} has an unreadable {ANNOTATION_PREVIOUS} annotation: cannot tell what to restore"
        ) from None
    return [d for d in data if isinstance(d, dict) and {"kind", "name", "replicas"} <= d.keys()]


def _server_dry_run(ctx: StepContext) -> bool:
    """Whether writes through ctx.kube carry dryRun=All: plans only send them then, never for real."""
    return bool(ctx.dry_run and getattr(ctx.kube, "dry_run", False))


def _describe(controllers: list[Controller]) -> str:
    return ", ".join(f"{c.name} ({c.replicas})" for c in controllers) or "none"


# --- apps.ensure_service -------------------------------------------------------------------------------------------
def _plan_service(ctx: StepContext, p: AppParams) -> Plan:
    from kubeops.clients.workloads import check_service_selector, get_service

    config = _load(ctx, p.app, p.cluster)
    manifest = service_manifest(config)
    existing = get_service(ctx.kube, config.namespace, config.service.name)
    outputs = {"service": config.service.name, "created": existing is None}
    if existing is not None:
        check_service_selector(existing, manifest)
        summary = f"leave Service {config.service.name} as is (it exists with the right selector)"
        return Plan(summary=summary, outputs=outputs)
    from kubeops.clients.workloads import ensure_service

    if _server_dry_run(ctx):  # the server validates the Service, creates nothing
        ensure_service(ctx.kube, manifest)
    return Plan(
        summary=f"create Service {config.namespace}/{config.service.name}",
        details=to_yaml([manifest]).splitlines(),
        outputs=outputs,
    )


@action(
    "apps.ensure_service",
    params=AppParams,
    mutates=True,
    plan=_plan_service,
    outputs=("service", "created"),
)
def ensure_service(ctx: StepContext, p: AppParams) -> dict[str, Any]:
    """Create the app's role Service if missing; never change an existing one (fail if its selector differs)."""
    from kubeops.clients.workloads import ensure_service as ensure

    config = _load(ctx, p.app, p.cluster)
    outcome, _ = ensure(ctx.kube, service_manifest(config))
    ctx.log.info("apps.service", service=config.service.name, outcome=outcome)
    return {"service": config.service.name, "created": outcome == "created"}


# --- apps.create_version -------------------------------------------------------------------------------------------
def _new_manifest(config: AppConfig, version: str, others: list[Controller]) -> dict[str, Any]:
    previous = [{"kind": c.kind, "name": c.name, "replicas": c.replicas} for c in others]
    return controller_manifest(
        config, version, replicas=0, annotations={ANNOTATION_PREVIOUS: json.dumps(previous, separators=(",", ":"))}
    )


def _plan_create(ctx: StepContext, p: VersionParams) -> Plan:
    from kubeops.clients.workloads import create_controller

    config, version = _load_version(ctx, p)
    new, others = _versions(ctx, config, version)
    name = controller_name(config.name, version)
    outputs = {"name": name, "kind": config.controller, "created": new is None, "previous": [c.name for c in others]}
    if new is not None:
        return Plan(summary=f"leave {config.controller} {name} as is (it exists)", outputs=outputs)
    manifest = _new_manifest(config, version, others)
    if _server_dry_run(ctx):  # dryRun=All: validated by the server, not created
        create_controller(ctx.kube, manifest)
    return Plan(
        summary=f"create {config.controller} {config.namespace}/{name} at 0 replicas "
        f"(currently serving: {_describe(others)})",
        details=to_yaml([manifest]).splitlines(),
        outputs=outputs,
    )


@action(
    "apps.create_version",
    params=VersionParams,
    mutates=True,
    plan=_plan_create,
    outputs=("name", "kind", "created", "previous"),
)
def create_version(ctx: StepContext, p: VersionParams) -> dict[str, Any]:
    """Create the version's controller at zero replicas, recording the serving versions for a rollback."""
    from kubeops.clients.workloads import create_controller

    config, version = _load_version(ctx, p)
    new, others = _versions(ctx, config, version)
    name = controller_name(config.name, version)
    created = False
    if new is None:
        _, created = create_controller(ctx.kube, _new_manifest(config, version, others))
        previous = [c.name for c in others]
    else:
        previous = [str(d["name"]) for d in _previous(new)]
    ctx.log.info("apps.version", controller=name, created=created, previous=previous)
    return {"name": name, "kind": config.controller, "created": created, "previous": previous}


# --- apps.rolling_update -------------------------------------------------------------------------------------------
def _rollout_settings(config: AppConfig, p: RollParams) -> tuple[int, float]:
    surge = p.surge if p.surge > 0 else config.rollout.surge
    timeout = p.step_timeout_s if p.step_timeout_s > 0 else config.rollout.step_timeout_s
    return surge, timeout


def _plan_roll(ctx: StepContext, p: RollParams) -> Plan:
    config, version = _load_version(ctx, p)
    surge, timeout = _rollout_settings(config, p)
    new, others = _versions(ctx, config, version)
    name = controller_name(config.name, version)
    current = new.replicas if new else 0
    steps = rollout.plan_steps(
        target=config.replicas, surge=surge, new_current=current, old_total=sum(c.replicas for c in others)
    )
    outputs = {"name": name, "replicas": config.replicas, "steps": len(steps), "old": [c.name for c in others]}
    if not steps:
        return Plan(summary=f"do nothing: {name} already serves at {config.replicas} replicas", outputs=outputs)
    details = [
        f"step {i}: scale {name} to {s.new}, wait up to {timeout:g}s for it to be ready, then old versions to {s.old}"
        for i, s in enumerate(steps, 1)
    ]
    if new is not None and _server_dry_run(ctx):  # the server validates the first scale (dryRun=All)
        from kubeops.clients.workloads import scale_controller

        scale_controller(ctx.kube, new.kind, new.namespace, new.name, steps[0].new)
    return Plan(
        summary=f"roll {name} {current}->{config.replicas} and {_describe(others)} -> 0 "
        f"in {len(steps)} step(s) of surge {surge}",
        details=details,
        outputs=outputs,
    )


def _ready_in_service(ctx: StepContext, config: AppConfig, label: str) -> int:
    """Ready addresses in the Service's Endpoints that belong to pods whose `version` label is `label`."""
    from kubeops.clients.workloads import list_pods, read_endpoints

    selector = f"{app_selector(config)},{LABEL_VERSION}={label}"
    pods = {p["metadata"]["name"] for p in list_pods(ctx.kube, namespace=config.namespace, label_selector=selector)}
    return sum(1 for a in read_endpoints(ctx.kube, config.namespace, config.service.name) if a.ready and a.pod in pods)


def _wait_ready(
    ctx: StepContext,
    config: AppConfig,
    controller: Controller,
    want: int,
    *,
    timeout_s: float,
    hint: str = "the rolling-deploy playbook rolls back (the previous version is scaled back up)",
) -> Controller:
    """Wait until `want` pods of the controller are ready AND in the Service's Endpoints, or fail at the timeout.

    Waiting for the Endpoints too is what keeps the Service from ever being empty: old pods are only removed once
    the new ones actually receive traffic, not merely once the controller counts them ready.
    """
    from kubeops.clients.watch import Mirror, wait_until
    from kubeops.clients.workloads import collection_path, controller_of, endpoint_addresses

    limit = ctx.remaining_s(timeout_s)
    deadline = time.monotonic() + min(timeout_s, limit if limit is not None else timeout_s)
    label = controller.labels.get(LABEL_VERSION, "")
    if controller.ready >= want and (want <= 0 or _ready_in_service(ctx, config, label) >= want):
        return controller  # already there: two reads, no watch
    ns, svc = config.namespace, config.service.name
    seen = {"current": controller, "in_service": 0}

    def ready() -> Controller | None:
        obj = own.get(controller.name, ns)
        if obj is None:
            raise ActionError(f"{controller.ref} disappeared during the rollout")
        current = seen["current"] = controller_of(obj, controller.kind)
        if current.ready < want:
            return None
        if want <= 0:
            return current
        names = {p["metadata"]["name"] for p in pods.objects()}
        addresses = endpoint_addresses(endpoints.get(svc, ns))
        seen["in_service"] = sum(1 for a in addresses if a.ready and a.pod in names)
        return current if seen["in_service"] >= want else None

    by_name = {"fieldSelector": f"metadata.name={controller.name}"}
    selector = {"labelSelector": f"{app_selector(config)},{LABEL_VERSION}={label}"}
    with (
        Mirror(ctx.kube, collection_path(controller.kind, ns), query=by_name, what=controller.ref,
               fallback_poll_s=FALLBACK_POLL_S) as own,
        Mirror(ctx.kube, f"/api/v1/namespaces/{ns}/pods", query=selector, what=f"pods of {controller.ref}",
               fallback_poll_s=FALLBACK_POLL_S) as pods,
        Mirror(ctx.kube, f"/api/v1/namespaces/{ns}/endpoints", query={"fieldSelector": f"metadata.name={svc}"},
               what=f"Endpoints {ns}/{svc}", fallback_poll_s=FALLBACK_POLL_S) as endpoints,
    ):
        done = wait_until([own, pods, endpoints], ready, deadline=deadline)
    if done is not None:
        return done
    current = seen["current"]
    raise ActionError(
        f"{current.ref} not ready in time: {current.ready}/{want} pods ready, {seen['in_service']} in the Service's "
        f"endpoints after {timeout_s:g}s",
        hint=hint,
    )


@action(
    "apps.rolling_update",
    params=RollParams,
    mutates=True,
    plan=_plan_roll,
    outputs=("name", "replicas", "steps", "old"),
)
def rolling_update(ctx: StepContext, p: RollParams) -> dict[str, Any]:
    """Step the new version up and the old ones down by `surge`, waiting for readiness at each step."""
    from kubeops.clients.workloads import create_controller, scale_controller

    config, version = _load_version(ctx, p)
    surge, timeout = _rollout_settings(config, p)
    target = config.replicas
    steps = 0
    old_names: list[str] = []
    while True:
        ctx.check_deadline()
        new, others = _versions(ctx, config, version)
        if new is None:  # e.g. a resume after a rollback removed it: create it again, as create_version would
            new, _ = create_controller(ctx.kube, _new_manifest(config, version, others))
            ctx.log.info("apps.version", controller=new.name, created=True, previous=[c.name for c in others])
        old_names = sorted({*old_names, *(c.name for c in others)})
        old_total = sum(c.replicas for c in others)
        if new.replicas == target and old_total == 0 and new.ready >= target:
            break
        want = new.replicas
        if new.ready >= new.replicas and new.replicas != target:  # the last step is ready: take the next one
            want = rollout.next_new_count(target=target, surge=surge, current=new.replicas)
            new = scale_controller(ctx.kube, new.kind, new.namespace, new.name, want)
            steps += 1
            ctx.log.info("apps.scaled", controller=new.name, replicas=want, rollout_step=steps)
        new = _wait_ready(ctx, config, new, want, timeout_s=timeout)
        goal = rollout.old_total_after(target=target, new_ready=want, old_total=old_total)
        by_name = {c.name: c for c in others}
        for name, replicas in rollout.shrink([(c.name, c.replicas) for c in others], goal):
            old = by_name[name]
            scale_controller(ctx.kube, old.kind, old.namespace, old.name, replicas)
            ctx.log.info("apps.scaled", controller=old.name, replicas=replicas, rollout_step=steps)
    return {"name": new.name, "replicas": target, "steps": steps, "old": old_names}


# --- apps.verify_endpoints -----------------------------------------------------------------------------------------
@action("apps.verify_endpoints", params=VerifyParams, mutates=False, outputs=("service", "addresses", "pods"))
def verify_endpoints(ctx: StepContext, p: VerifyParams) -> dict[str, Any]:
    """Wait until the Service's endpoints are exactly the new version's ready pods; fail at the timeout."""
    from kubeops.clients.watch import Mirror, wait_until
    from kubeops.clients.workloads import endpoint_addresses

    config, version = _load_version(ctx, p)
    label = version_labels(config, version)[LABEL_VERSION]
    deadline = time.monotonic() + p.timeout_s
    ns, svc = config.namespace, config.service.name
    seen: dict[str, Any] = {"strangers": [], "ready": []}

    def serving() -> dict[str, Any] | None:
        version_of = {pod["metadata"]["name"]: (pod["metadata"].get("labels") or {}).get(LABEL_VERSION)
                      for pod in pods.objects()}
        addresses = endpoint_addresses(endpoints.get(svc, ns))
        strangers = sorted({a.pod or a.ip for a in addresses if version_of.get(a.pod or "") != label})
        seen["strangers"] = strangers
        ready = seen["ready"] = sorted(a.pod or a.ip for a in addresses if a.ready)
        if (not strangers and len(ready) >= config.replicas) or ctx.dry_run:
            return {"service": svc, "addresses": len(ready), "pods": ready}
        return None

    with (
        Mirror(ctx.kube, f"/api/v1/namespaces/{ns}/pods", query={"labelSelector": app_selector(config)},
               what=f"pods of {config.name}", fallback_poll_s=FALLBACK_POLL_S) as pods,
        Mirror(ctx.kube, f"/api/v1/namespaces/{ns}/endpoints", query={"fieldSelector": f"metadata.name={svc}"},
               what=f"Endpoints {ns}/{svc}", fallback_poll_s=FALLBACK_POLL_S) as endpoints,
    ):
        result = wait_until([pods, endpoints], serving, deadline=deadline)
    if result is not None:
        if ctx.dry_run and (seen["strangers"] or len(seen["ready"]) < config.replicas):
            # the rollout was only planned: report what serves now instead of waiting for it
            ctx.log.info("apps.verify.dry_run", serving=seen["ready"], not_of_version=seen["strangers"])
        return result
    problem = (
        f"endpoints not of version {version}: {', '.join(seen['strangers'])}"
        if seen["strangers"]
        else f"{len(seen['ready'])}/{config.replicas} ready endpoints"
    )
    raise ActionError(f"Service {ns}/{svc}: {problem} after {p.timeout_s:g}s")


# --- deleting ------------------------------------------------------------------------------------------------------
def _plan_delete_old(ctx: StepContext, p: VersionParams) -> Plan:
    config, version = _load_version(ctx, p)
    _, others = _versions(ctx, config, version)
    outputs = {"deleted": [c.name for c in others]}
    if not others:
        return Plan(summary="do nothing: no other version to delete", outputs=outputs)
    return Plan(summary=f"delete {', '.join(c.ref for c in others)}", outputs=outputs)


@action(
    "apps.delete_old_versions", params=VersionParams, mutates=True, plan=_plan_delete_old, outputs=("deleted",)
)
def delete_old_versions(ctx: StepContext, p: VersionParams) -> dict[str, Any]:
    """Delete every other version's controller; refuses one that still has replicas (it may still serve)."""
    from kubeops.clients.workloads import delete_controller

    config, version = _load_version(ctx, p)
    _, others = _versions(ctx, config, version)
    serving = [c for c in others if c.replicas > 0]
    if serving:
        raise ActionError(
            f"refusing to delete {_describe(serving)}: still scaled up",
            hint="run apps.rolling_update to completion first",
        )
    deleted = [c.name for c in others if delete_controller(ctx.kube, c.kind, c.namespace, c.name)]
    ctx.log.info("apps.deleted", controllers=deleted)
    return {"deleted": deleted}


def _plan_delete_version(ctx: StepContext, p: VersionParams) -> Plan:
    config, version = _load_version(ctx, p)
    new, _ = _versions(ctx, config, version)
    name = controller_name(config.name, version)
    if new is None:
        return Plan(summary=f"do nothing: {name} does not exist", outputs={"deleted": False})
    return Plan(summary=f"delete {new.ref} and its {new.replicas} pod(s)", outputs={"deleted": True})


@action(
    "apps.delete_version", params=VersionParams, mutates=True, plan=_plan_delete_version, outputs=("deleted",)
)
def delete_version(ctx: StepContext, p: VersionParams) -> dict[str, Any]:
    """Delete one version's controller and its pods (already gone: nothing to do)."""
    from kubeops.clients.workloads import delete_controller

    config, version = _load_version(ctx, p)
    deleted = delete_controller(ctx.kube, config.controller, config.namespace, controller_name(config.name, version))
    return {"deleted": deleted}


# --- apps.rollback -------------------------------------------------------------------------------------------------
def _plan_rollback(ctx: StepContext, p: RollbackParams) -> Plan:
    from kubeops.clients.workloads import get_controller

    config, version = _load_version(ctx, p)
    new, _ = _versions(ctx, config, version)
    if new is None:
        return Plan(summary="do nothing: the new version does not exist", outputs=_rollback_out(False))
    details = []
    for entry in _previous(new):
        old = get_controller(ctx.kube, entry["kind"], config.namespace, entry["name"])
        state = "missing!" if old is None else f"{old.replicas} now"
        details.append(f"scale {entry['kind']}/{entry['name']} back to {entry['replicas']} ({state})")
    details.append(f"delete {new.ref}")
    return Plan(summary=f"roll back {new.name}", details=details, outputs=_rollback_out(True))


def _rollback_out(rolled_back: bool, restored: list[str] | None = None, removed: str = "") -> dict[str, Any]:
    return {"rolled_back": rolled_back, "restored": restored or [], "removed": removed}


@action(
    "apps.rollback",
    params=RollbackParams,
    mutates=True,
    plan=_plan_rollback,
    outputs=("rolled_back", "restored", "removed"),
)
def rollback(ctx: StepContext, p: RollbackParams) -> dict[str, Any]:
    """Scale the previous versions back to their recorded size, wait until they serve, then remove the new one."""
    from kubeops.clients.workloads import delete_controller, get_controller, scale_controller

    config, version = _load_version(ctx, p)
    new, _ = _versions(ctx, config, version)
    label = version_labels(config, version)[LABEL_VERSION]
    if new is None:  # never created, or removed by a run that crashed before its pods had left the Service
        _wait_out_of_service(ctx, config, label, timeout_s=p.timeout_s)
        ctx.log.info("apps.rollback.nothing", version=version)
        return _rollback_out(False)
    previous = _previous(new)
    restored: list[str] = []
    for entry in previous:
        old = get_controller(ctx.kube, entry["kind"], config.namespace, entry["name"])
        if old is None:
            raise ActionError(
                f"cannot roll back {new.name}: the previous version {entry['name']} no longer exists",
                hint=f"{new.name} is left in place so the Service keeps its pods",
            )
        want = int(entry["replicas"])
        if old.replicas < want:
            old = scale_controller(ctx.kube, old.kind, old.namespace, old.name, want)
            ctx.log.info("apps.scaled", controller=old.name, replicas=want)
        _wait_ready(
            ctx,
            config,
            old,
            want,
            timeout_s=p.timeout_s,
            hint=f"{new.name} is left in place until {old.name} serves again; resume the run to retry",
        )
        restored.append(old.name)
    current = get_controller(ctx.kube, new.kind, new.namespace, new.name)
    if current is not None and current.replicas:
        scale_controller(ctx.kube, new.kind, new.namespace, new.name, 0)
    delete_controller(ctx.kube, new.kind, new.namespace, new.name)
    _wait_out_of_service(ctx, config, label, timeout_s=p.timeout_s)
    ctx.log.info("apps.rolled_back", removed=new.name, restored=restored)
    return _rollback_out(True, restored, new.name)


def _wait_out_of_service(ctx: StepContext, config: AppConfig, label: str, *, timeout_s: float) -> None:
    """Wait until no pod of version `label` is in the Service's Endpoints (ready or not).

    Why: deleting a controller only marks its pods terminating; the endpoints controller drops them a moment later.
    A rollback that reported done before that would let a cron job or a person move on while the version being
    rolled back still receives traffic. An address whose pod no longer exists counts as still in service too.
    """
    from kubeops.clients.watch import Mirror, wait_until
    from kubeops.clients.workloads import endpoint_addresses

    limit = ctx.remaining_s(timeout_s)
    deadline = time.monotonic() + min(timeout_s, limit if limit is not None else timeout_s)
    ns, svc = config.namespace, config.service.name
    seen: dict[str, list[str]] = {"left": []}

    def gone() -> bool:
        version_of = {pod["metadata"]["name"]: (pod["metadata"].get("labels") or {}).get(LABEL_VERSION)
                      for pod in pods.objects()}
        seen["left"] = sorted({a.pod for a in endpoint_addresses(endpoints.get(svc, ns))
                               if a.pod and version_of.get(a.pod, label) == label})
        return not seen["left"]

    with (
        Mirror(ctx.kube, f"/api/v1/namespaces/{ns}/pods", query={"labelSelector": app_selector(config)},
               what=f"pods of {config.name}", fallback_poll_s=FALLBACK_POLL_S) as pods,
        Mirror(ctx.kube, f"/api/v1/namespaces/{ns}/endpoints", query={"fieldSelector": f"metadata.name={svc}"},
               what=f"Endpoints {ns}/{svc}", fallback_poll_s=FALLBACK_POLL_S) as endpoints,
    ):
        if wait_until([pods, endpoints], gone, deadline=deadline):
            return
    raise ActionError(
        f"Service {ns}/{svc} still routes to {', '.join(seen['left'])} of the rolled-back version after "
        f"{timeout_s:g}s",
        hint="its controller is deleted: check why the pods do not terminate (finalizers, a stuck node), then resume",
    )
