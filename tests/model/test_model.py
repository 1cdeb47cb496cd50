"""Loader, references, parameters and checkpoint store: the pure parts of the engine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kubeops.engine.checkpoints import latest_unfinished
from kubeops.engine.file_store import FileCheckpointStore
from kubeops.errors import InputError
from kubeops.model import refs
from kubeops.model.loader import load_playbook, parse_duration
from kubeops.model.params import bind_params
from tests.engine.toy_actions import make_registry


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_include_inlines_renamed_steps_with_bound_parameters(tmp_path: Path) -> None:
    write(
        tmp_path,
        "inner.yaml",
        """
name: inner
params:
  path: {type: string, required: true}
  n: {type: integer, default: 7}
steps:
  - name: read
    action: t.read
    args: {path: "${params.path}"}
  - name: typed
    action: t.typed
    args: {name: "from ${steps.read.outputs.content} n=${params.n}", count: "${params.n}"}
cleanup:
  - name: tidy
    action: noop
    always: true
""",
    )
    outer = write(
        tmp_path,
        "outer.yaml",
        """
name: outer
params:
  target: {type: string, default: /etc/hostname}
steps:
  - name: first
    action: noop
  - name: inc
    include: inner.yaml
    when: "${params.target}"
    params: {path: "${params.target}"}
  - name: after
    action: t.typed
    args: {name: "${steps.inc/typed.outputs.echo.name}", count: 1}
""",
    )
    pb = load_playbook(outer, registry=make_registry())
    assert [s.name for s in pb.steps] == ["first", "inc/read", "inc/typed", "after"]
    assert [s.name for s in pb.cleanup] == ["inc/tidy"] and pb.cleanup[0].always
    read, typed = pb.steps[1], pb.steps[2]
    assert read.args == {"path": "${params.target}"}
    assert typed.args == {"name": "from ${steps.inc/read.outputs.content} n=7", "count": 7}
    assert read.when == "${params.target}"
    assert read.source is not None and read.source.path.endswith("inner.yaml") and read.source.line == 7


def test_literal_include_parameter_with_dollar_braces_stays_literal(tmp_path: Path) -> None:
    write(
        tmp_path,
        "inner.yaml",
        "name: inner\nparams:\n  text: {type: string}\nsteps:\n"
        "  - {name: say, action: log, args: {message: 'said: ${params.text}'}}\n",
    )
    outer = write(
        tmp_path,
        "outer.yaml",
        "name: outer\nsteps:\n  - {name: inc, include: inner, params: {text: 'cost $${price}'}}\n",
    )
    pb = load_playbook(outer, registry=make_registry())
    scope = refs.Scope(params={}, outputs={}, run={})
    assert refs.resolve(pb.steps[0].args, scope) == {"message": "said: cost ${price}"}


def test_refs_split_and_resolve() -> None:
    scope = refs.Scope(
        params={"n": 3, "items": ["a", "b"], "m": {"k.x": True}},
        outputs={"s": {"pods": [{"name": "p0"}], "count": 2}},
        run={"id": "r1", "dry_run": False},
    )
    assert refs.resolve("${params.items}", scope) == ["a", "b"]
    assert refs.resolve("${ params.n }", scope) == 3
    assert refs.resolve("n=${params.n} ok=${run.dry_run}", scope) == "n=3 ok=false"
    assert refs.resolve("${steps.s.outputs.pods[0].name}", scope) == "p0"
    assert refs.resolve('${params.m["k.x"]}', scope) is True
    assert refs.resolve("$${params.n}", scope) == "${params.n}"
    assert refs.resolve({"a": ["${run.id}", 1]}, scope) == {"a": ["r1", 1]}
    with pytest.raises(refs.RefError, match="no 5"):
        refs.resolve("${steps.s.outputs.pods[5]}", scope)
    with pytest.raises(refs.RefError, match="has not run"):
        refs.resolve("${steps.t.outputs.x}", scope)


def test_conditions() -> None:
    scope = refs.Scope(params={"a": "x", "on": "false", "n": 0}, outputs={}, run={})
    assert refs.evaluate({"equals": ["${params.a}", "x"]}, scope)
    assert not refs.evaluate("${params.on}", scope)
    assert not refs.evaluate("${params.n}", scope)
    assert refs.evaluate({"any": ["${params.n}", {"not": "${params.on}"}]}, scope)
    assert not refs.evaluate({"all": [True, "${steps.never.outputs.x}"]}, scope)
    assert refs.check_condition({"equals": [1]}) == ("equals",)
    assert refs.check_condition({"all": [True, {"nope": 1}]}) == ("all", 1, "nope")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("90", 90), (12, 12), (1.5, 1.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "m5", "", "-3", 0, True, "1h 30m"])
def test_bad_durations(text: object) -> None:
    assert parse_duration(text) is None


def test_bind_params_converts_and_layers(tmp_path: Path) -> None:
    pb = load_playbook(
        write(
            tmp_path,
            "p.yaml",
            """
name: p
params:
  node: string
  count: {type: integer, default: 1}
  ratio: {type: number, default: 0.5}
  force: {type: boolean, default: false}
  nodes: {type: list, default: []}
  labels: {type: mapping, default: {}}
steps:
  - {name: a, action: noop}
""",
        ),
        registry=make_registry(),
    )
    bound = bind_params(
        pb,
        {"node": "w1", "count": "3", "force": "yes", "nodes": "a, b", "labels": '{"x": "1"}'},
        defaults={"ratio": "0.9", "other": "ignored"},
    )
    assert bound == {"node": "w1", "count": 3, "ratio": 0.9, "force": True, "nodes": ["a", "b"], "labels": {"x": "1"}}
    with pytest.raises(InputError, match="needs parameter 'node'"):
        bind_params(pb, {})
    with pytest.raises(InputError, match="'count' must be integer"):
        bind_params(pb, {"node": "w", "count": "three"})
    with pytest.raises(InputError, match="has no parameter 'nod'"):
        bind_params(pb, {"nod": "w"})


def test_file_store_roundtrip_listing_and_latest(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path)
    records = [
        {"id": "20260101T000000Z-0001", "cluster": "a", "status": "failed", "steps": [{"name": "s", "n": 1}]},
        {"id": "20260102T000000Z-0002", "cluster": "a", "status": "done", "steps": []},
        {"id": "20260103T000000Z-0003", "cluster": "b", "status": "running", "steps": []},
        {"id": "20260104T000000Z-0004", "cluster": "a", "status": "paused", "dry_run": False, "steps": []},
    ]
    for r in records:
        store.save(record=r)  # type: ignore[arg-type]
    records[0]["steps"][0]["n"] = 2
    store.save(record=records[0])  # type: ignore[arg-type]
    assert store.load(run_id="20260101T000000Z-0001") == records[0]
    assert json.loads((tmp_path / "runs" / "20260101T000000Z-0001.json").read_text()) == records[0]
    assert [r["id"] for r in store.list(cluster="a")] == [records[0]["id"], records[1]["id"], records[3]["id"]]
    assert latest_unfinished(store, cluster="a")["id"] == "20260104T000000Z-0004"  # type: ignore[index]
    # two runs started in the same second: the later start wins, whatever the ids' random tails say
    store.save(record={"id": "20260105T000000Z-ffff", "cluster": "a", "status": "failed", "steps": [],  # type: ignore[typeddict-item]
                       "started": "2026-01-05T00:00:00.100Z"})
    store.save(record={"id": "20260105T000000Z-0000", "cluster": "a", "status": "failed", "steps": [],  # type: ignore[typeddict-item]
                       "started": "2026-01-05T00:00:00.900Z"})
    assert latest_unfinished(store, cluster="a")["id"] == "20260105T000000Z-0000"  # type: ignore[index]
    assert store.load(run_id="nope") is None
    with pytest.raises(InputError):
        store.load(run_id="../etc/passwd")
    assert oct(os.stat(tmp_path / "runs").st_mode & 0o777) == "0o700"
