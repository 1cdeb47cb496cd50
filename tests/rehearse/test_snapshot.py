"""Snapshots: what is kept (objects as the API returned them, status included, Auto Scaling groups), what is
never read (Secrets, ConfigMaps) or dropped (env values, last-applied, managedFields), and the other inputs
SREs already have: a `kubectl cluster-info dump` folder and `kubectl get -o json` files, made by the real kubectl."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

from kubeops.clients.snapshot import LAST_APPLIED, sanitize
from kubeops.rehearse.rehearsal import rehearse
from kubeops.rehearse.snapshot import load_input, take, write
from kubeops.sandbox.testing import kubectl_binary

pytestmark = pytest.mark.timeout(180)


def test_sanitize_drops_env_values_last_applied_and_managed_fields_but_keeps_references() -> None:
    pod = {"metadata": {"name": "p", "annotations": {LAST_APPLIED: "{...}", "keep": "me"},
                        "managedFields": [{"manager": "kubectl"}]},
           "spec": {"containers": [{"name": "c", "env": [
               {"name": "PASSWORD", "value": "hunter2"},
               {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}}]}],
               "initContainers": [{"name": "i", "env": [{"name": "K", "value": "v"}]}]}}
    deployment = {"metadata": {"name": "d"}, "spec": {"template": {"metadata": {}, "spec": {
        "containers": [{"name": "c", "env": [{"name": "API_KEY", "value": "abc"}]}]}}}}
    sanitize(pod)
    sanitize(deployment)
    text = json.dumps([pod, deployment])
    assert "hunter2" not in text and "abc" not in text and '"v"' not in text
    assert pod["metadata"]["annotations"] == {"keep": "me"} and "managedFields" not in pod["metadata"]
    assert pod["spec"]["containers"][0]["env"][1]["valueFrom"]["secretKeyRef"]["key"] == "token"


def test_a_snapshot_reads_only_and_never_secrets_or_configmaps(original_factory, tmp_path: Path) -> None:
    orig = original_factory("default", aws=True)
    code, _ = orig.sb.request("POST", "/api/v1/namespaces/apps/secrets", {
        "metadata": {"name": "db"}, "stringData": {"password": "hunter2"}})
    assert code == 201
    code, _ = orig.sb.request("POST", "/api/v1/namespaces/apps/configmaps", {
        "metadata": {"name": "cfg"}, "data": {"dsn": "postgres://u:hunter2@db"}})
    assert code == 201
    groups_before = orig.groups()
    mark = orig.mark()

    doc = take(orig.settings)
    path = write(doc, tmp_path / "snap.json.gz")

    seen = orig.sb.requests()[mark:]
    assert orig.mutations(mark) == []
    assert not [r for r in seen if r.get("resource") in ("secrets", "configmaps")]
    assert orig.groups() == groups_before
    raw = gzip.decompress(path.read_bytes())
    assert b"hunter2" not in raw
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_input(path)
    header = again["header"]
    assert header["format"] == "kubeops.io/snapshot/v1" and header["cluster"] == "prod"
    assert header["server_version"] and "secrets" in header["dropped"]
    pods = again["objects"]["pods"]
    assert len(pods) == header["counts"]["pods"] and all(p["status"]["phase"] for p in pods)
    assert all(p["kind"] == "Pod" and p["apiVersion"] == "v1" for p in pods)
    (group,) = again["autoscaling_groups"]
    assert (group["name"], group["min"], group["max"], group["desired"]) == ("workers", 3, 6, 3)
    assert len(group["instances"]) == 3 and group["launch_template"]


def test_namespaces_limit_namespaced_objects_only(original_factory) -> None:
    orig = original_factory("default")
    doc = take(orig.settings, namespaces=["apps"], aws=False)
    assert {p["metadata"]["namespace"] for p in doc["objects"]["pods"]} == {"apps"}
    assert len(doc["objects"]["nodes"]) == 4
    assert [n["metadata"]["name"] for n in doc["objects"]["namespaces"]] == ["apps"]


def test_a_cluster_info_dump_and_list_files_from_the_real_kubectl_rehearse(original_factory, tmp_path: Path) -> None:
    orig = original_factory("default")
    kubectl = kubectl_binary()
    dump = tmp_path / "dump"
    subprocess.run([kubectl, f"--kubeconfig={orig.sb.kubeconfig}", "cluster-info", "dump", "--all-namespaces",
                    f"--output-directory={dump}"], check=True, capture_output=True, timeout=120)
    doc = load_input(dump)
    assert doc["header"]["source"].startswith("kubectl cluster-info dump")
    dumped = sum(len(json.loads(f.read_text())["items"]) for f in dump.glob("*/pods.json"))
    assert len(doc["objects"]["nodes"]) == 4 and len(doc["objects"]["pods"]) == dumped > 10
    assert {"deployments.apps", "replicasets.apps", "daemonsets.apps", "services"} <= set(doc["objects"])

    listing = tmp_path / "extra.json"
    out = subprocess.run([kubectl, f"--kubeconfig={orig.sb.kubeconfig}", "get", "pdb,statefulsets", "-A",
                          "-o", "json"], check=True, capture_output=True, timeout=60).stdout
    listing.write_bytes(out)
    merged = load_input(f"{dump / 'nodes.json'},{listing}")
    assert len(merged["objects"]["poddisruptionbudgets.policy"]) == 2 and len(merged["objects"]["nodes"]) == 4

    mark = orig.mark()
    report = rehearse(dump, "drain-node", params={"node": "worker-2"}, settings=orig.settings)
    assert report.exit_code == 0 and report.nodes_cordoned == ["worker-2"]
    assert {m["from"] for m in report.pods_moved} == {"worker-2"}
    assert orig.mutations(mark) == []


def test_bad_inputs_are_refused_naming_the_file(tmp_path: Path) -> None:
    from kubeops.errors import InputError

    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.json"):
        load_input(bad)
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"kind": "List", "items": [{"metadata": {"name": "x"}}]}), encoding="utf-8")
    with pytest.raises(InputError, match=r"odd\.json: items\[0\].kind"):
        load_input(odd)
    with pytest.raises(InputError, match="no such file"):
        load_input(tmp_path / "missing.json")
