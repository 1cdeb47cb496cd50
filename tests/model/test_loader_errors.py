"""Every malformed playbook is refused at load time with one message naming its file, line and field, and exit 2.

Each case marks the line the error must point at with ``#HERE`` (YAML comment). The cases run through the API
(load_playbook) and the one exit-code door (`kubeops.tasks._common.exit_codes`); a few also run through the real
CLI in a subprocess (see test_cli_reports_file_line_field).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Exit

from kubeops.errors import PlaybookError
from kubeops.model.loader import load_playbook
from kubeops.tasks._common import exit_codes
from tests.engine.toy_actions import make_registry

REPO = Path(__file__).resolve().parents[2]

HEAD = """\
name: t
params:
  node: {type: string, required: true}
  count: {type: integer, default: 2}
steps:
"""

# (id, yaml text, expected field, expected message fragment)
CASES: list[tuple[str, str, str | None, str]] = [
    (
        "unknown-top-level-key",
        "name: t\nstepz: [] #HERE\nsteps:\n  - {name: a, action: noop}\n",
        "stepz",
        "unknown field",
    ),
    ("missing-name", "description: x #HERE\nsteps:\n  - {name: a, action: noop}\n", "name", "required"),
    ("name-not-string", "name: [a] #HERE\nsteps:\n  - {name: a, action: noop}\n", "name", "non-empty string"),
    ("steps-empty", "name: t\nsteps: [] #HERE\n", "steps", "non-empty list"),
    ("top-level-list", "- name: t #HERE\n", "(document)", "must be a mapping"),
    ("step-not-mapping", "name: t\nsteps:\n  - noop #HERE\n", "steps[0]", "must be a mapping"),
    ("step-missing-name", "name: t\nsteps:\n  - action: noop #HERE\n", "steps[0].name", "required"),
    (
        "duplicate-step-name",
        "name: t\nsteps:\n  - name: a\n    action: noop\n  - name: a #HERE\n    action: noop\n",
        "steps[1].name",
        "duplicate step name 'a'",
    ),
    ("bad-step-name", "name: t\nsteps:\n  - name: a b #HERE\n    action: noop\n", "steps[0].name", "step names"),
    (
        "action-and-include",
        "name: t\nsteps:\n  - name: a\n    action: noop #HERE\n    include: other\n",
        "steps[0].action",
        "exactly one of",
    ),
    ("neither-action-nor-include", "name: t\nsteps:\n  - name: a #HERE\n", "steps[0].action", "exactly one of"),
    (
        "unknown-action",
        "name: t\nsteps:\n  - name: a\n    action: t.raed #HERE\n",
        "steps[0].action",
        "unknown action 't.raed'",
    ),
    (
        "unknown-argument",
        HEAD + "  - name: a\n    action: t.read\n    args:\n      path: /x\n      pth: /y #HERE\n",
        "steps[0].args.pth",
        "unknown argument",
    ),
    (
        "missing-required-argument",
        HEAD + "  - name: a\n    action: t.read\n    args: {} #HERE\n",
        "steps[0].args",
        "missing required argument 'path'",
    ),
    (
        "string-for-integer",
        HEAD + "  - name: a\n    action: t.typed\n    args:\n      name: x\n      count: three #HERE\n",
        "steps[0].args.count",
        "must be integer",
    ),
    (
        "boolean-for-integer",
        HEAD + "  - name: a\n    action: t.typed\n    args:\n      name: x\n      count: true #HERE\n",
        "steps[0].args.count",
        "must be integer",
    ),
    (
        "wrong-list-item-type",
        HEAD
        + "  - name: a\n    action: t.typed\n    args:\n      name: x\n      count: 1\n      items: [1, 2] #HERE\n",
        "steps[0].args.items",
        "must be list of string",
    ),
    (
        "wrong-mapping-value-type",
        HEAD
        + "  - name: a\n    action: t.typed\n    args:\n      name: x\n      count: 1\n      labels: {a: [1]} #HERE\n",
        "steps[0].args.labels",
        "must be mapping",
    ),
    (
        "unknown-parameter-reference",
        HEAD + "  - name: a\n    action: t.read\n    args:\n      path: /tmp/${params.nod} #HERE\n",
        "steps[0].args.path",
        "unknown parameter 'nod'",
    ),
    (
        "integer-param-into-string-arg",
        HEAD + "  - name: a\n    action: t.read\n    args:\n      path: ${params.count} #HERE\n",
        "steps[0].args.path",
        "must be string, got integer parameter 'count'",
    ),
    (
        "reference-to-later-step",
        HEAD
        + "  - name: a\n    action: t.read\n    args:\n      path: ${steps.b.outputs.content} #HERE\n"
        + "  - name: b\n    action: t.read\n    args: {path: /x}\n",
        "steps[0].args.path",
        "runs later",
    ),
    (
        "reference-to-unknown-step",
        HEAD + "  - name: a\n    action: t.read\n    args:\n      path: ${steps.zz.outputs.content} #HERE\n",
        "steps[0].args.path",
        "unknown step 'zz'",
    ),
    (
        "reference-to-own-outputs",
        HEAD + "  - name: a\n    action: t.read\n    args:\n      path: ${steps.a.outputs.content} #HERE\n",
        "steps[0].args.path",
        "its own outputs",
    ),
    (
        "unknown-output-key",
        HEAD
        + "  - name: a\n    action: t.read\n    args: {path: /x}\n"
        + "  - name: b\n    action: t.read\n    args:\n      path: ${steps.a.outputs.contnt} #HERE\n",
        "steps[1].args.path",
        "has no output 'contnt'",
    ),
    (
        "malformed-reference",
        HEAD + "  - name: a\n    action: t.read\n    args:\n      path: ${params.} #HERE\n",
        "steps[0].args.path",
        "malformed reference",
    ),
    (
        "reference-with-unknown-root",
        HEAD + "  - name: a\n    action: t.read\n    args:\n      path: ${env.HOME} #HERE\n",
        "steps[0].args.path",
        "starts with params., steps. or run.",
    ),
    (
        "unknown-when-operator",
        HEAD + "  - name: a\n    action: noop\n    when:\n      eq: [1, 2] #HERE\n",
        "steps[0].when.eq",
        "invalid condition",
    ),
    (
        "when-references-unknown-param",
        HEAD + "  - name: a\n    action: noop\n    when: ${params.dry} #HERE\n",
        "steps[0].when",
        "unknown parameter 'dry'",
    ),
    (
        "retry-zero-attempts",
        HEAD + "  - name: a\n    action: noop\n    retry:\n      attempts: 0 #HERE\n",
        "steps[0].retry.attempts",
        "integer >= 1",
    ),
    (
        "retry-unknown-field",
        HEAD + "  - name: a\n    action: noop\n    retry:\n      tries: 3 #HERE\n",
        "steps[0].retry.tries",
        "unknown field",
    ),
    ("bad-timeout", HEAD + "  - name: a\n    action: noop\n    timeout: 5x #HERE\n", "steps[0].timeout", "duration"),
    (
        "bad-on-failure",
        HEAD + "  - name: a\n    action: noop\n    on_failure: ignore #HERE\n",
        "steps[0].on_failure",
        "'abort' or 'continue'",
    ),
    (
        "unknown-step-field",
        HEAD + "  - name: a\n    action: noop\n    agrs: {} #HERE\n",
        "steps[0].agrs",
        "unknown field",
    ),
    (
        "always-on-main-step",
        HEAD + "  - name: a\n    action: noop\n    always: true #HERE\n",
        "steps[0].always",
        "only cleanup steps",
    ),
    (
        "unknown-param-type",
        "name: t\nparams:\n  n:\n    type: str #HERE\nsteps:\n  - {name: a, action: noop}\n",
        "params.n.type",
        "unknown type 'str'",
    ),
    (
        "param-default-wrong-type",
        "name: t\nparams:\n  n:\n    type: integer\n    default: two #HERE\nsteps:\n  - {name: a, action: noop}\n",
        "params.n.default",
        "must be of type integer",
    ),
    (
        "duplicate-yaml-key",
        "name: t\nsteps:\n  - name: a\n    action: noop\n    action: log #HERE\n",
        "steps[0].action",
        "duplicate key",
    ),
    (
        "cleanup-reference-to-later-cleanup",
        HEAD
        + "  - {name: a, action: noop}\ncleanup:\n  - name: c1\n    action: t.read\n    args:\n"
        + "      path: ${steps.c2.outputs.content} #HERE\n  - {name: c2, action: t.read, args: {path: /x}}\n",
        "cleanup[0].args.path",
        "runs later",
    ),
    (
        "include-not-found",
        HEAD + "  - name: a\n    include: no-such-playbook #HERE\n",
        "steps[0].include",
        "no playbook 'no-such-playbook'",
    ),
    (
        "include-with-args",
        HEAD + "  - name: a\n    include: inner\n    args: {} #HERE\n",
        "steps[0].args",
        "not allowed on an include step",
    ),
]


def _write(tmp_path: Path, text: str, name: str = "pb.yaml") -> tuple[Path, int]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    marked = [i + 1 for i, line in enumerate(text.splitlines()) if "#HERE" in line]
    assert len(marked) == 1, "each case marks exactly one line"
    return path, marked[0]


def _exit_code_of(fn) -> int:  # type: ignore[no-untyped-def]
    try:
        with exit_codes():
            fn()
    except Exit as exc:
        return int(exc.code)
    return 0


@pytest.mark.parametrize(("case", "text", "field", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_malformed_playbook_names_file_line_and_field(
    tmp_path: Path, case: str, text: str, field: str | None, fragment: str
) -> None:
    """The error points at the marked line and field, says what is wrong, and maps to exit code 2."""
    path, line = _write(tmp_path, text)
    registry = make_registry()
    with pytest.raises(PlaybookError) as info:
        load_playbook(path, registry=registry)
    err = info.value
    assert err.path == str(path)
    assert err.line == line, str(err)
    assert err.field == field, str(err)
    assert fragment in str(err)
    assert str(err).startswith(f"{path}:{line}: {field}: ")
    assert _exit_code_of(lambda: load_playbook(path, registry=registry)) == 2


def test_there_are_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "pb.yaml"
    path.write_text("name: t\nsteps:\n  - name: a\n    action: [noop\n", encoding="utf-8")
    with pytest.raises(PlaybookError) as info:
        load_playbook(path, registry=make_registry())
    assert info.value.path == str(path)
    assert info.value.line is not None and info.value.line >= 4
    assert "invalid YAML" in str(info.value)


def test_include_cycle_is_reported_where_the_cycle_closes(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nsteps:\n  - name: to-b\n    include: b.yaml\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("name: b\nsteps:\n  - name: to-a\n    include: a.yaml\n", encoding="utf-8")
    with pytest.raises(PlaybookError) as info:
        load_playbook(tmp_path / "a.yaml", registry=make_registry())
    assert info.value.path == str(tmp_path / "b.yaml")
    assert info.value.line == 4
    assert info.value.field == "steps[0].include"
    assert "include cycle: a.yaml -> b.yaml -> a.yaml" in str(info.value)


def _inner(tmp_path: Path) -> None:
    (tmp_path / "inner.yaml").write_text(
        "name: inner\nparams:\n  path: {type: string, required: true}\n  n: {type: integer, default: 1}\n"
        "steps:\n  - name: r\n    action: t.read\n    args: {path: '${params.path}'}\n",
        encoding="utf-8",
    )


def test_include_missing_required_parameter(tmp_path: Path) -> None:
    _inner(tmp_path)
    path, line = _write(tmp_path, HEAD + "  - name: a\n    include: inner\n    params: {n: 3} #HERE\n")
    with pytest.raises(PlaybookError) as info:
        load_playbook(path, registry=make_registry())
    assert (info.value.path, info.value.line, info.value.field) == (str(path), line, "steps[0].params")
    assert "missing required parameter 'path'" in str(info.value)


def test_include_unknown_parameter(tmp_path: Path) -> None:
    _inner(tmp_path)
    path, line = _write(
        tmp_path, HEAD + "  - name: a\n    include: inner\n    params:\n      path: /x\n      m: 1 #HERE\n"
    )
    with pytest.raises(PlaybookError) as info:
        load_playbook(path, registry=make_registry())
    assert (info.value.line, info.value.field) == (line, "steps[0].params.m")
    assert "has no parameter 'm'" in str(info.value)


def test_include_parameter_of_wrong_type(tmp_path: Path) -> None:
    _inner(tmp_path)
    path, line = _write(
        tmp_path, HEAD + "  - name: a\n    include: inner\n    params:\n      path: /x\n      n: many #HERE\n"
    )
    with pytest.raises(PlaybookError) as info:
        load_playbook(path, registry=make_registry())
    assert (info.value.line, info.value.field) == (line, "steps[0].params.n")


def test_error_inside_included_playbook_names_the_included_file(tmp_path: Path) -> None:
    (tmp_path / "inner.yaml").write_text("name: inner\nsteps:\n  - name: r\n    action: t.nope\n", encoding="utf-8")
    path, _ = _write(tmp_path, HEAD + "  - name: a #HERE\n    include: inner\n")
    with pytest.raises(PlaybookError) as info:
        load_playbook(path, registry=make_registry())
    assert (info.value.path, info.value.line, info.value.field) == (str(tmp_path / "inner.yaml"), 4, "steps[0].action")


CLI_CASES = ["unknown-action", "unknown-argument", "reference-to-later-step", "bad-timeout"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_reports_file_line_field_and_exits_2(tmp_path: Path, case: str) -> None:
    """Through the real `kubeops` CLI: `validate` and `run` both refuse, exit 2, and name file:line: field."""
    _, text, field, fragment = next(c for c in CASES if c[0] == case)
    path, line = _write(tmp_path, text)
    env = {
        **os.environ,
        "KUBEOPS_STATE_DIR": str(tmp_path / "state"),
        "KUBEOPS_ACTION_MODULES": "tests.engine.toy_default_actions",
        "PYTHONPATH": str(REPO),
    }
    for task in (["validate", f"--playbook={path}"], ["run", f"--playbook={path}", "--param", "node=x"]):
        proc = subprocess.run(
            [sys.executable, "-c", "from kubeops.cli import main; main()", *task],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert f"{path}:{line}: {field}: " in proc.stderr
        assert fragment in proc.stderr
    assert not (tmp_path / "state" / "runs").exists() or not list((tmp_path / "state" / "runs").iterdir())
