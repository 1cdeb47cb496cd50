"""Rendering: versioned controllers labelled role/app/version, a Service that never selects the version."""

from __future__ import annotations

import textwrap

import kubernetes_validate
import pytest
import yaml

from kubeops.apps.config import parse_app
from kubeops.apps.naming import controller_name, sanitise_version
from kubeops.apps.render import controller_manifest, image_for, render, service_manifest, to_yaml
from kubeops.errors import PlaybookError
from kubeops.yamlsource import parse_yaml

APP = """\
name: my-component
role: frontend
image: registry.example.com/my-component
version: "123"
replicas: 3
ports:
  - {name: http, port: 80, target_port: 8080}
  - {name: metrics, port: 9100}
env: {LOG: info}
resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 128Mi}}
probes:
  readiness: {http_get: {path: /ready, port: http}, period_s: 2}
  liveness: {exec: [sh, -c, "true"], initial_delay_s: 5}
pod_annotations: {sandbox.kubeops.io/never-ready: "false"}
"""


def app(extra: str = "", cluster: str | None = None):
    return parse_app(parse_yaml(APP + textwrap.dedent(extra), path="web.yaml"), cluster=cluster)


@pytest.mark.parametrize(
    ("version", "expected"),
    [("123", "123"), ("v123", "123"), ("1.2.3", "1-2-3"), ("RC_1", "rc-1"), ("--x--", "x"), ("v", "v"), ("v-1", "v-1")],
)
def test_version_sanitising_rule(version: str, expected: str) -> None:
    assert sanitise_version(version) == expected


def test_controller_name_longer_than_a_dns_label_is_refused_not_truncated() -> None:
    with pytest.raises(ValueError, match="63"):
        controller_name("a" * 55, "123456789")


def test_labels_are_the_same_on_controller_selector_and_pods() -> None:
    manifest = controller_manifest(app(), "1.2.3")
    labels = {"role": "frontend", "app": "my-component", "version": "1-2-3"}
    assert manifest["metadata"]["name"] == "my-component-v1-2-3"
    assert labels.items() <= manifest["metadata"]["labels"].items()
    assert manifest["spec"]["selector"]["matchLabels"] == labels
    assert manifest["spec"]["template"]["metadata"]["labels"] == labels
    assert manifest["metadata"]["annotations"]["kubeops.io/version"] == "1.2.3"


def test_service_selects_role_and_app_never_version() -> None:
    service = service_manifest(app())
    assert service["spec"]["selector"] == {"role": "frontend", "app": "my-component"}
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, 8080), (9100, 9100)]


def test_replication_controller_when_the_app_says_so() -> None:
    manifest = controller_manifest(app("controller: ReplicationController\n"), "7", replicas=0)
    assert (manifest["apiVersion"], manifest["kind"]) == ("v1", "ReplicationController")
    assert manifest["spec"]["selector"] == {"role": "frontend", "app": "my-component", "version": "7"}
    assert manifest["spec"]["replicas"] == 0


def test_pod_template_carries_image_env_resources_probes_and_annotations() -> None:
    pod = controller_manifest(app(), "124")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/my-component:124"
    assert container["env"] == [{"name": "LOG", "value": "info"}]
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    assert container["readinessProbe"] == {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2}
    assert container["livenessProbe"] == {"exec": {"command": ["sh", "-c", "true"]}, "initialDelaySeconds": 5}
    assert pod["metadata"]["annotations"] == {"sandbox.kubeops.io/never-ready": "false"}


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("repo/x", "repo/x:9"),
        ("host:5000/repo/x", "host:5000/repo/x:9"),
        ("repo/x:pinned", "repo/x:pinned"),
        ("repo/x@sha256:abc", "repo/x@sha256:abc"),
        ("repo/x:{version}-alpine", "repo/x:9-alpine"),
    ],
)
def test_image_rule(image: str, expected: str) -> None:
    config = parse_app(parse_yaml(APP.replace("registry.example.com/my-component", image), path="w"), cluster=None)
    assert image_for(config, "9") == expected


def test_cluster_override_changes_replicas_in_the_rendered_controller() -> None:
    config = app("clusters:\n  prod: {replicas: 8}\n", cluster="prod")
    assert render(config)[1]["spec"]["replicas"] == 8


def test_render_without_any_version_is_an_input_error_naming_the_file() -> None:
    config = parse_app(parse_yaml(APP.replace('version: "123"\n', ""), path="web.yaml"))
    with pytest.raises(PlaybookError) as info:
        render(config)
    assert info.value.path == "web.yaml" and info.value.field == "version"


def test_rendered_manifests_validate_against_upstream_schemas() -> None:
    for extra in ("", "controller: ReplicationController\n"):
        for manifest in yaml.safe_load_all(to_yaml(render(app(extra)))):
            kubernetes_validate.validate(manifest, "1.30", strict=True)
