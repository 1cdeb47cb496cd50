"""Manifests from an app config: one versioned controller per version, and one Service per role.

Why versioned controllers behind a role Service: each version gets its own controller, ``<app>-v<version>``, whose
pod template never changes, and the Service selects only ``role`` and ``app``. A rollout then only scales
controllers up and down; the Service (and any load balancer behind it) is never touched, and a rollback is
scaling the old controller back up. The Service never selects ``version``: that is what lets both versions
serve during the rollout.

Images: ``{version}`` in `image` is replaced by the version; an image without a tag or digest gets ``:<version>``;
an image with its own tag is used as written.
"""

from __future__ import annotations

from typing import Any

from kubeops.apps.config import AppConfig, Probe
from kubeops.apps.naming import controller_name, sanitise_version
from kubeops.errors import PlaybookError

LABEL_APP = "app"
LABEL_ROLE = "role"
LABEL_VERSION = "version"
ANNOTATION_VERSION = "kubeops.io/version"  # the version as written, before sanitising
MANAGED_BY = ("app.kubernetes.io/managed-by", "kubeops")
_TIMING_FIELDS = {
    "initial_delay_s": "initialDelaySeconds",
    "period_s": "periodSeconds",
    "timeout_s": "timeoutSeconds",
    "failure_threshold": "failureThreshold",
    "success_threshold": "successThreshold",
}


def image_for(app: AppConfig, version: str) -> str:
    """The image reference for `version` (see the module docstring for the rule)."""
    if "{version}" in app.image:
        return app.image.replace("{version}", version)
    if "@" in app.image or ":" in app.image.rsplit("/", 1)[-1]:
        return app.image
    return f"{app.image}:{version}"


def service_selector(app: AppConfig) -> dict[str, str]:
    """What the role Service selects: never the version."""
    return {LABEL_ROLE: app.role, LABEL_APP: app.name}


def version_labels(app: AppConfig, version: str) -> dict[str, str]:
    """Labels of a version's controller, its selector and its pods."""
    return {LABEL_ROLE: app.role, LABEL_APP: app.name, LABEL_VERSION: sanitise_version(version)}


def app_selector(app: AppConfig) -> str:
    """Label selector (string form) matching every version's controllers and pods of this app."""
    return f"{LABEL_ROLE}={app.role},{LABEL_APP}={app.name}"


def _probe(probe: Probe) -> dict[str, Any]:
    if probe.handler == "http_get":
        body: dict[str, Any] = {"httpGet": {"path": probe.path or "/", "port": probe.port}}
    elif probe.handler == "tcp_socket":
        body = {"tcpSocket": {"port": probe.port}}
    else:
        body = {"exec": {"command": list(probe.command)}}
    for name, value in probe.timings:
        body[_TIMING_FIELDS[name]] = value
    return body


def pod_template(app: AppConfig, version: str) -> dict[str, Any]:
    """The pod template of `version`: one container named after the app."""
    container: dict[str, Any] = {"name": app.name, "image": image_for(app, version)}
    ports = []
    for port in app.ports:
        entry: dict[str, Any] = {
            "containerPort": port.target_port if isinstance(port.target_port, int) else port.port,
            "protocol": port.protocol,
        }
        name = port.target_port if isinstance(port.target_port, str) else port.name
        if name:
            entry["name"] = name
        ports.append(entry)
    container["ports"] = ports
    if app.env:
        container["env"] = [{"name": k, "value": v} for k, v in app.env]
    if app.requests or app.limits:
        resources: dict[str, Any] = {}
        if app.requests:
            resources["requests"] = dict(app.requests)
        if app.limits:
            resources["limits"] = dict(app.limits)
        container["resources"] = resources
    for kind, probe in app.probes:
        container[f"{kind}Probe"] = _probe(probe)
    metadata: dict[str, Any] = {"labels": version_labels(app, version)}
    if app.pod_annotations:
        metadata["annotations"] = dict(app.pod_annotations)
    return {"metadata": metadata, "spec": {"containers": [container]}}


def controller_manifest(
    app: AppConfig, version: str, *, replicas: int | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """The versioned Deployment (or ReplicationController) of `version`, at `replicas` (default: the app's)."""
    labels = version_labels(app, version)
    metadata: dict[str, Any] = {
        "name": controller_name(app.name, version),
        "namespace": app.namespace,
        "labels": {**labels, MANAGED_BY[0]: MANAGED_BY[1]},
        "annotations": {ANNOTATION_VERSION: version, **(annotations or {})},
    }
    count = app.replicas if replicas is None else replicas
    template = pod_template(app, version)
    if app.controller == "ReplicationController":
        return {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": metadata,
            "spec": {"replicas": count, "selector": dict(labels), "template": template},
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": count,
            "selector": {"matchLabels": dict(labels)},
            "revisionHistoryLimit": 2,
            "template": template,
        },
    }


def service_manifest(app: AppConfig) -> dict[str, Any]:
    """The role Service: selects `role` and `app`, never `version`."""
    metadata: dict[str, Any] = {
        "name": app.service.name,
        "namespace": app.namespace,
        "labels": {**service_selector(app), MANAGED_BY[0]: MANAGED_BY[1]},
    }
    if app.service.annotations:
        metadata["annotations"] = dict(app.service.annotations)
    ports = []
    for port in app.ports:
        entry: dict[str, Any] = {"port": port.port, "targetPort": port.target_port, "protocol": port.protocol}
        if port.name:
            entry["name"] = port.name
        ports.append(entry)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"type": app.service.type, "selector": service_selector(app), "ports": ports},
    }


def render(app: AppConfig, version: str | None = None) -> list[dict[str, Any]]:
    """The Service and the controller of `version` (default: the config's) at the app's replica count."""
    chosen = resolve_version(app, version)
    return [service_manifest(app), controller_manifest(app, chosen)]


def resolve_version(app: AppConfig, version: str | None) -> str:
    """The version given, else the config's; a missing one is an input error naming the file."""
    chosen = version if version else app.version
    if not chosen:
        raise PlaybookError(
            "no version to deploy", path=app.path, field="version", hint="pass --version or set `version` in the file"
        )
    try:
        controller_name(app.name, chosen)
    except ValueError as exc:
        raise PlaybookError(str(exc), path=app.path, field="version") from None
    return chosen


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    """Manifests as a multi-document YAML stream, keys in the order written (as kubectl users expect)."""
    import yaml

    return yaml.safe_dump_all(manifests, sort_keys=False, default_flow_style=False)
