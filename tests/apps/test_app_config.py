"""App config: validation errors name the file, line and field; cluster overrides merge over the base."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kubeops.apps.config import load_app, parse_app
from kubeops.errors import InputError, PlaybookError
from kubeops.yamlsource import parse_yaml

BASE = """\
name: web
role: frontend
image: example/web
version: "1"
replicas: 3
ports:
  - {name: http, port: 80, target_port: 8080}
env:
  LOG: info
  MODE: fast
rollout: {surge: 1, step_timeout_s: 60}
"""


def parse(text: str, cluster: str | None = None):
    return parse_app(parse_yaml(textwrap.dedent(text), path="apps/web.yaml"), cluster=cluster)


def error_of(text: str) -> PlaybookError:
    with pytest.raises(PlaybookError) as info:
        parse(text)
    return info.value


def test_the_shipped_example_is_valid_for_every_cluster() -> None:
    inventory = Path(__file__).resolve().parents[2] / "inventory"
    for cluster in (None, "sandbox", "dev", "staging", "prod"):
        app = load_app("my-component", inventory=inventory, cluster=cluster)
        assert app.name == "my-component" and app.role == "frontend"


def test_base_values_apply_when_the_cluster_has_no_overrides() -> None:
    app = parse(BASE + "clusters:\n  prod: {replicas: 9}\n", cluster="dev")
    assert app.replicas == 3 and app.cluster is None


def test_scalar_override_replaces_and_mapping_override_merges_one_key_deep() -> None:
    text = BASE + textwrap.dedent(
        """\
        clusters:
          prod:
            replicas: 9
            env: {LOG: debug, MODE: null, EXTRA: 1}
            rollout: {surge: 3}
        """
    )
    app = parse(text, cluster="prod")
    assert app.replicas == 9
    assert dict(app.env) == {"LOG": "debug", "EXTRA": "1"}  # MODE removed by null, LOG replaced
    assert app.rollout.surge == 3 and app.rollout.step_timeout_s == 60  # untouched key kept
    assert app.cluster == "prod"


def test_list_override_replaces_the_whole_list() -> None:
    app = parse(BASE + "clusters:\n  dev:\n    ports: [9090]\n", cluster="dev")
    assert [(p.port, p.target_port) for p in app.ports] == [(9090, 9090)]


def test_missing_required_field_names_it() -> None:
    err = error_of(BASE.replace("role: frontend\n", ""))
    assert err.path == "apps/web.yaml" and err.field == "role" and err.line == 1


def test_unknown_top_level_field_names_line_and_field() -> None:
    err = error_of(BASE + "replica: 3\n")
    assert (err.line, err.field) == (12, "replica")
    assert "unknown field" in err.detail


@pytest.mark.parametrize(
    ("snippet", "line", "field", "words"),
    [
        ("replicas: -1", 5, "replicas", "at least 0"),
        ("replicas: three", 5, "replicas", "whole number"),
        ("version: 1.10", 4, "version", "quoted string"),
        ("version: '!!!'", 4, "version", "no letters or digits"),
        ("version: '" + "9" * 70 + "'", 4, "version", "DNS label"),
        ("image: 'has space'", 3, "image", "whitespace"),
        ("name: Web_App", 1, "name", "DNS label"),
        ("role: 'bad role'", 2, "role", "label value"),
        ("controller: StatefulSet", 12, "controller", "Deployment, ReplicationController"),
    ],
)
def test_bad_scalar_values_name_line_and_field(snippet: str, line: int, field: str, words: str) -> None:
    key = snippet.split(":")[0]
    lines = BASE.splitlines()
    replaced = [snippet if row.startswith(key + ":") else row for row in lines]
    text = "\n".join(replaced) + "\n"
    if replaced == lines:
        text += snippet + "\n"
    err = error_of(text)
    assert (err.line, err.field) == (line, field), str(err)
    assert words in err.detail
    assert str(err).startswith(f"apps/web.yaml:{line}: {field}: ")


def test_bad_port_names_the_list_item() -> None:
    two_ports = "  - {name: http, port: 80}\n  - {port: 70000}"
    text = BASE.replace("  - {name: http, port: 80, target_port: 8080}", two_ports)
    err = error_of(text)
    assert (err.line, err.field) == (8, "ports[1].port")


def test_second_port_without_a_name_is_refused() -> None:
    text = BASE.replace("  - {name: http, port: 80, target_port: 8080}", "  - {name: http, port: 80}\n  - {port: 81}")
    err = error_of(text)
    assert err.field == "ports[1].name" and "more than one port" in err.detail


def test_no_ports_is_refused_because_the_service_needs_one() -> None:
    text = BASE.replace("ports:\n  - {name: http, port: 80, target_port: 8080}\n", "ports: []\n")
    assert error_of(text).field == "ports"


def test_bad_quantity_names_the_resource() -> None:
    err = error_of(BASE + "resources:\n  requests:\n    cpu: 1 core\n")
    assert (err.line, err.field) == (14, "resources.requests.cpu")


def test_request_above_limit_is_refused() -> None:
    err = error_of(BASE + "resources:\n  requests: {memory: 1Gi}\n  limits: {memory: 512Mi}\n")
    assert err.field == "resources.requests.memory" and "above the limit" in err.detail


def test_probe_needs_exactly_one_handler() -> None:
    err = error_of(BASE + "probes:\n  readiness:\n    period_s: 3\n")
    assert (err.line, err.field) == (13, "probes.readiness")


def test_probe_port_name_must_exist() -> None:
    err = error_of(BASE + "probes:\n  liveness:\n    tcp_socket: {port: grpc}\n")
    assert err.field == "probes.liveness.tcp_socket.port" and "grpc" in err.detail


def test_bad_env_name() -> None:
    err = error_of(BASE.replace("  LOG: info", "  '1 LOG': info"))
    assert (err.line, err.field) == (9, "env.1 LOG")


def test_pod_annotation_values_must_be_strings() -> None:
    err = error_of(BASE + "pod_annotations:\n  sandbox.kubeops.io/never-ready: true\n")
    assert err.field == "pod_annotations.sandbox.kubeops.io/never-ready" and "quote" in err.detail


def test_bad_override_names_the_override_line_even_when_deploying_elsewhere() -> None:
    text = BASE + "clusters:\n  dev:\n    replicas: 1\n  prod:\n    replicas: lots\n"
    with pytest.raises(PlaybookError) as info:
        parse(text, cluster="dev")
    assert (info.value.line, info.value.field) == (16, "clusters.prod.replicas")


def test_override_inside_a_mapping_names_its_own_line() -> None:
    text = BASE + "clusters:\n  staging:\n    rollout:\n      surge: 0\n"
    err = error_of(text)
    assert (err.line, err.field) == (15, "clusters.staging.rollout.surge")


def test_name_cannot_be_overridden() -> None:
    err = error_of(BASE + "clusters:\n  dev:\n    name: other\n")
    assert err.field == "clusters.dev.name" and "overridable" in err.detail


def test_service_name_must_start_with_a_letter() -> None:
    err = error_of(BASE + "service: {name: 1web}\n")
    assert err.field == "service.name"


def test_unknown_app_lists_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "shop.yaml").write_text(BASE)
    with pytest.raises(InputError) as info:
        load_app("nope", inventory=tmp_path)
    assert "nope" in str(info.value) and "shop" in str(info.value)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(BASE + "env: [unclosed\n")
    with pytest.raises(PlaybookError) as info:
        load_app(str(path), inventory=tmp_path)
    assert info.value.path == str(path) and info.value.line is not None
