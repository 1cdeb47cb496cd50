"""Tasks `render` (print an app's manifests) and `deploy` (run the rolling-deploy playbook for an app).

Thin on purpose: flags in, one call, text out. `deploy` loads and validates the app config before the playbook
starts, so a bad config exits 2 naming file, line and field, with nothing changed.
"""

from __future__ import annotations

from invoke import Context

from kubeops.tasks._common import REHEARSE_FLAGS_HELP, WAIT_HELP, FleetFlags, playbook_task, task


def _load(app: str, cluster: str | None, *, need_inventory: bool = True):  # -> AppConfig (imports stay lazy)
    """The app's config for the selected cluster, read from the same inventory folder as the cluster's file.

    `render` passes need_inventory=False: printing prod's manifests must not need prod's kubeconfig or inventory.
    """
    import os
    from pathlib import Path

    from kubeops.apps.config import load_app
    from kubeops.settings import DEFAULT_CLUSTER, inventory_dir
    from kubeops.tasks._common import build_settings

    if not app:
        from kubeops.errors import InputError

        raise InputError("--app is required", hint="e.g. --app=my-component (a file in inventory/apps/)")
    if not need_inventory:
        name = cluster or os.environ.get("KUBEOPS_CLUSTER") or DEFAULT_CLUSTER
        return load_app(app, inventory=inventory_dir(), cluster=name)
    settings = build_settings(cluster)
    inventory = Path(settings.inventory_path).parent if settings.inventory_path else inventory_dir()
    return load_app(app, inventory=inventory, cluster=settings.cluster)


@task(
    help={
        "app": "app name (inventory/apps/<app>.yaml) or path to its config",
        "version": "version to render (default: the config's `version`)",
        "cluster": "cluster whose overrides apply, and whose inventory is read (default sandbox)",
    }
)
def render(c: Context, app: str = "", version: str = "", cluster: str | None = None) -> None:
    """Print the app's role Service and versioned controller as YAML (nothing is sent anywhere)."""
    from kubeops.apps.render import render as render_manifests
    from kubeops.apps.render import to_yaml
    from kubeops.tasks._common import exit_codes

    with exit_codes():
        config = _load(app, cluster, need_inventory=False)
        print(to_yaml(render_manifests(config, version or None)), end="")


@playbook_task(
    fleet_flags_after="wait_for_lock",  # where deploy had --clusters/--parallel/--canary before
    help={
        "app": "app name (inventory/apps/<app>.yaml) or path to its config",
        "version": "version to deploy (default: the config's `version`)",
        "cluster": "inventory/<cluster>.yaml to use, and whose app overrides apply (default sandbox)",
        "surge": "pods added to the new version (and removed from the old) per step; default: rollout.surge",
        "step_timeout": "seconds each step's new pods get to become ready; default: rollout.step_timeout_s",
        "dry_run": "print the manifests and what would change; send creates/patches with dryRun=All only",
        "log_format": "auto (console on a terminal, JSON otherwise), console or json",
        "wait_for_lock": WAIT_HELP,
        **REHEARSE_FLAGS_HELP,
    }
)
def deploy(
    c: Context,
    app: str = "",
    version: str = "",
    cluster: str | None = None,
    surge: int = 0,
    step_timeout: int = 0,
    dry_run: bool = False,
    log_format: str | None = None,
    wait_for_lock: str | None = None,
    rehearse: bool = False,
    snapshot: str | None = None,
    speed: float | None = None,
    fleet: FleetFlags | None = None,
) -> None:
    """Roll the app to a version: new versioned controller up, old down, Service untouched; rolls back on failure.

    Several clusters (``--cluster=staging,prod-eu,prod-us`` or ``--clusters='prod-*'``) deploy as a fleet, in
    that order (docs/fleet.md); every cluster's app config is checked before the first one starts.
    """
    from kubeops.apps.render import resolve_version
    from kubeops.tasks._common import cluster_names, exit_codes, fleet_numbers, is_fleet
    from kubeops.tasks.rehearse import run_or_rehearse

    fleet = fleet or FleetFlags(task="deploy")
    with exit_codes():
        fleet_numbers(fleet)  # a malformed fleet flag exits 2 before any app config is read
        names = cluster_names(cluster, fleet.clusters) if is_fleet(cluster, fleet.clusters) else [cluster]
        for name in names:
            config = _load(app, name)
            resolve_version(config, version or None)  # no version anywhere: exit 2 before any run starts
    run_or_rehearse(
        c,
        "rolling-deploy",
        params={
            "app": app,
            "version": version,
            "surge": int(surge),
            "step_timeout_s": float(step_timeout),
        },
        dry_run=dry_run,
        cluster=cluster,
        log_format=log_format,
        wait_for_lock=wait_for_lock,
        fleet=fleet,
        rehearse=rehearse,
        snapshot=snapshot,
        speed=speed,
    )
