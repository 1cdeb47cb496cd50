"""kubeops.clients.workloads against the sandbox: every mutation is idempotent, dry run changes nothing."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest

from kubeops.apps.config import parse_app
from kubeops.apps.render import controller_manifest, service_manifest
from kubeops.clients import workloads
from kubeops.clients.kube import KubeClient
from kubeops.errors import ActionError
from kubeops.settings import KubeSettings
from kubeops.yamlsource import parse_yaml
from tests.apps.conftest import AppsSandbox

APP = parse_app(
    parse_yaml(
        textwrap.dedent(
            """\
            name: client-app
            role: api
            image: example/api
            replicas: 2
            controller: ReplicationController
            ports: [8080]
            """
        ),
        path="client-app.yaml",
    )
)


@pytest.fixture
def kube(apps_sandbox: AppsSandbox) -> Iterator[KubeClient]:
    kubeconfig = str(apps_sandbox.inventory.parent / "sandbox" / "kubeconfig")
    client = KubeClient.from_settings(KubeSettings(kubeconfig=kubeconfig, context="sandbox"))
    yield client
    client.close()


def test_create_scale_delete_are_idempotent(kube: KubeClient, apps_sandbox: AppsSandbox) -> None:
    manifest = controller_manifest(APP, "1", replicas=0)
    created, was_created = workloads.create_controller(kube, manifest)
    again, created_again = workloads.create_controller(kube, manifest)
    assert (created.kind, created.name) == ("ReplicationController", "client-app-v1")
    assert (was_created, created_again) == (True, False)
    assert again.uid == created.uid

    scaled = workloads.scale_controller(kube, "ReplicationController", "default", "client-app-v1", 2)
    assert scaled.replicas == 2
    listed = workloads.list_controllers(kube, namespace="default", label_selector="app=client-app")
    assert [(c.kind, c.name, c.replicas, c.labels["version"]) for c in listed] == [
        ("ReplicationController", "client-app-v1", 2, "1")
    ]

    assert workloads.delete_controller(kube, "ReplicationController", "default", "client-app-v1") is True
    assert workloads.delete_controller(kube, "ReplicationController", "default", "client-app-v1") is False
    assert workloads.get_controller(kube, "ReplicationController", "default", "client-app-v1") is None


def test_ensure_service_creates_once_then_only_reads(kube: KubeClient, apps_sandbox: AppsSandbox) -> None:
    manifest = service_manifest(APP)
    outcome, first = workloads.ensure_service(kube, manifest)
    mark = apps_sandbox.log_mark()
    second_outcome, second = workloads.ensure_service(kube, manifest)
    assert (outcome, second_outcome) == ("created", "exists")
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert apps_sandbox.mutations(mark) == []

    other = {**manifest, "spec": {**manifest["spec"], "selector": {"role": "api", "app": "client-app", "version": "1"}}}
    with pytest.raises(ActionError, match="kubeops does not change an existing Service"):
        workloads.ensure_service(kube, other)


def test_dry_run_client_creates_nothing(apps_sandbox: AppsSandbox) -> None:
    kubeconfig = str(apps_sandbox.inventory.parent / "sandbox" / "kubeconfig")
    dry = KubeClient.from_settings(KubeSettings(kubeconfig=kubeconfig, context="sandbox"), dry_run=True)
    mark = apps_sandbox.log_mark()
    _, created = workloads.create_controller(dry, controller_manifest(APP, "9", replicas=0))
    assert created is True  # the server accepted it...
    kept = workloads.get_controller(dry, "ReplicationController", "default", "client-app-v9")
    assert kept is None  # ...and kept nothing
    assert apps_sandbox.mutations(mark) == []
    dry.close()


def test_endpoints_of_a_missing_service_are_empty(kube: KubeClient) -> None:
    assert workloads.read_endpoints(kube, "default", "no-such-service") == []
