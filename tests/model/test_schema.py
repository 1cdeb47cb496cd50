"""The shipped JSON Schema accepts every shipped playbook and refuses obvious mistakes."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from kubeops.model.schema import base_schema, build_schema
from kubeops.yamlsource import load_yaml
from tests.engine.toy_actions import make_registry

PLAYBOOKS = sorted((Path(__file__).resolve().parents[2] / "playbooks").glob("*.yaml"))


@pytest.mark.parametrize("path", PLAYBOOKS, ids=[p.stem for p in PLAYBOOKS])
def test_shipped_playbooks_validate_against_the_schema(path: Path) -> None:
    jsonschema.validate(load_yaml(path).data, base_schema())


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(base_schema())


@pytest.mark.parametrize(
    "doc",
    [
        {"name": "x", "steps": []},
        {"name": "x", "stepz": [], "steps": [{"name": "a", "action": "noop"}]},
        {"name": "x", "steps": [{"name": "a"}]},
        {"name": "x", "steps": [{"name": "a", "action": "noop", "include": "y"}]},
        {"name": "x", "steps": [{"name": "a", "action": "noop", "timeout": "5x"}]},
        {"name": "x", "steps": [{"name": "a", "action": "noop", "on_failure": "ignore"}]},
        {"name": "x", "steps": [{"name": "a", "action": "noop", "when": {"eq": [1, 2]}}]},
    ],
)
def test_schema_refuses_malformed_documents(doc: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, base_schema())


def test_registry_schema_knows_each_actions_arguments() -> None:
    schema = build_schema(make_registry())
    jsonschema.Draft202012Validator.check_schema(schema)
    ok = {"name": "x", "steps": [{"name": "a", "action": "t.read", "args": {"path": "${params.p}"}}]}
    jsonschema.validate(ok, schema)
    for bad_args in ({"pth": "/x"}, {}, {"path": 3}):
        bad = {"name": "x", "steps": [{"name": "a", "action": "t.read", "args": bad_args}]}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
