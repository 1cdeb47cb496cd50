"""Hostile YAML is refused by the one loader every file goes through: alias bombs, deep nesting, huge files.

Through the CLI (`kubeops validate`, an inventory via `runs --cluster`) the answer is exit 2 and one message naming
the file; the loader measures an alias bomb instead of expanding it (asserted on the count it reports, not on wall
time: timings live in benchmarks/bench_hostile.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubeops.errors import PlaybookError
from kubeops.sandbox import scenario
from kubeops.yamlsource import YamlLimits, expanded_size, load_yaml, parse_yaml

REPO = Path(__file__).resolve().parents[2]

BOMB = "name: bomb\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(ord('b') + i)}: &{chr(ord('b') + i)} [{', '.join(['*' + chr(ord('a') + i)] * 9)}]\n" for i in range(8)
) + "steps:\n  - {name: one, action: noop}\n"


def kubeops(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "KUBEOPS_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        [sys.executable, "-c", "from kubeops.cli import main; main()", *args],
        env=full, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )


def test_alias_bomb_is_measured_not_expanded() -> None:
    root = yaml.compose(BOMB, Loader=yaml.SafeLoader)
    assert expanded_size(root, limit=1000) == 1001  # stops counting just past the limit: 9**9 values never built
    assert expanded_size(root, limit=10**12) > 9**9


def test_alias_bomb_refused_by_validate(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMB)
    done = kubeops(tmp_path, "validate", "--playbook=bomb.yaml")
    assert done.returncode == 2, done.stderr
    assert "bomb.yaml:3: expands to more than 2,000,000 values" in done.stderr
    assert "KUBEOPS_YAML_MAX_NODES" in done.stderr
    assert "Traceback" not in done.stderr


def test_alias_bomb_in_an_inventory_is_refused(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "evil.yaml").write_text(BOMB.replace("name: bomb", "name: evil").split("steps:")[0])
    done = kubeops(tmp_path, "runs", "--cluster=evil", KUBEOPS_INVENTORY_DIR=str(inventory))
    assert done.returncode == 2, done.stderr
    assert "evil.yaml:3: expands to more than" in done.stderr


def test_alias_bomb_scenario_refused(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMB)
    with pytest.raises(PlaybookError, match="expands to more than"):
        scenario.load(tmp_path / "bomb.yaml")


def test_ordinary_aliases_and_merge_keys_still_load(tmp_path: Path) -> None:
    text = "base: &base {retries: 3, timeout_s: 30}\nsteps:\n  - {<<: *base, name: a}\n  - {<<: *base, name: b}\n"
    doc = parse_yaml(text, path="ok.yaml", limits=YamlLimits(max_nodes=100))
    assert doc.data["steps"][1] == {"retries": 3, "timeout_s": 30, "name": "b"}
    assert doc.line_of(("steps", 1, "name")) == 4


def test_deep_nesting_refused_with_line(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text("name: deep\nsteps: []\nx: " + "[" * 5000 + "]" * 5000 + "\n")
    done = kubeops(tmp_path, "validate", "--playbook=deep.yaml")
    assert done.returncode == 2, done.stderr
    assert "deep.yaml:3: nested more than 100 levels deep" in done.stderr
    assert "RecursionError" not in done.stderr and "Traceback" not in done.stderr


def test_oversize_file_refused_limit_configurable(tmp_path: Path) -> None:
    text = "name: big\nsteps:\n" + "".join(f"  - {{name: s{i}, action: noop}}\n" for i in range(100))
    (tmp_path / "big.yaml").write_text(text)
    assert kubeops(tmp_path, "validate", "--playbook=big.yaml").returncode == 0
    done = kubeops(tmp_path, "validate", "--playbook=big.yaml", KUBEOPS_YAML_MAX_BYTES="1000")
    assert done.returncode == 2
    assert f"big.yaml: file is {len(text):,} bytes, over the 1,000-byte limit" in done.stderr
    bad = kubeops(tmp_path, "validate", "--playbook=big.yaml", KUBEOPS_YAML_MAX_BYTES="lots")
    assert bad.returncode == 2 and "KUBEOPS_YAML_MAX_BYTES must be a positive integer" in bad.stderr


def test_pure_python_fallback_refuses_depth_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml, "__with_libyaml__", False)  # a machine without libyaml takes the other path
    path = tmp_path / "deep.yaml"
    path.write_text("a:\n  b: " + "[" * 500 + "]" * 500 + "\n")
    with pytest.raises(PlaybookError, match=r"deep.yaml:2: nested more than 100"):
        load_yaml(path)


@pytest.mark.timeout(60)
def test_the_sandbox_refuses_a_yaml_bomb_request_body(sandbox) -> None:  # type: ignore[no-untyped-def]
    path = "/api/v1/namespaces/default/configmaps/bomb"
    created = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bomb"}, "data": {"a": "b"}}
    status, _ = sandbox.request("POST", "/api/v1/namespaces/default/configmaps", created)
    assert status == 201
    body = BOMB.replace("name: bomb", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}").split("steps:")[0]
    status, answer = sandbox.request("PATCH", path + "?fieldManager=t", body.encode(),
                                     content_type="application/apply-patch+yaml")
    assert status == 400, answer
    assert "expands to more than" in answer["message"]
    status, now = sandbox.request("GET", path)
    assert status == 200 and now["data"] == {"a": "b"}
