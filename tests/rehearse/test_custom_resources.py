"""Custom resources in a rehearsal: the snapshot reads every CRD's custom resources (GET only, within
--namespaces), and the private sandbox serves the CRDs and holds their objects verbatim, so `kubectl get` (and a
rehearsed playbook) on the copy sees them; only kinds without their CRD are reported as not loaded."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from kubeops.rehearse.private import PrivateSandbox
from kubeops.rehearse.rehearsal import rehearse
from kubeops.rehearse.snapshot import take, write
from kubeops.sandbox.testing import kubectl_binary

pytestmark = pytest.mark.timeout(180)

CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "backups.ops.example.com"},
       "spec": {"group": "ops.example.com", "scope": "Namespaced",
                "names": {"plural": "backups", "singular": "backup", "kind": "Backup", "shortNames": ["bk"]},
                "versions": [{"name": "v1beta1", "served": True, "storage": False,
                              "schema": {"openAPIV3Schema": {"type": "object",
                                                             "x-kubernetes-preserve-unknown-fields": True}}},
                             {"name": "v1", "served": True, "storage": True,
                              "subresources": {"status": {}},
                              "schema": {"openAPIV3Schema": {"type": "object",
                                                             "x-kubernetes-preserve-unknown-fields": True}}}]}}


def _backup(namespace: str, name: str, node: str) -> dict:
    return {"apiVersion": "ops.example.com/v1", "kind": "Backup",
            "metadata": {"name": name, "namespace": namespace, "labels": {"team": "storage"}},
            "spec": {"schedule": "0 3 * * *", "node": node}}


def _original_with_backups(original_factory):
    orig = original_factory("default")
    status, _ = orig.sb.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
    assert status == 201
    for ns, name in (("apps", "nightly"), ("kube-system", "etcd")):
        for _ in range(50):  # the CRD is served at once, like kube-apiserver once Established
            status, body = orig.sb.request("POST", f"/apis/ops.example.com/v1/namespaces/{ns}/backups",
                                           _backup(ns, name, "worker-1"))
            if status != 404:
                break
            time.sleep(0.1)
        assert status == 201, body
    return orig


def test_custom_resources_are_snapshotted_read_only_and_served_by_the_private_sandbox(original_factory,
                                                                                     tmp_path) -> None:
    orig = _original_with_backups(original_factory)
    mark = orig.mark()
    doc = take(orig.settings)
    only_apps = take(orig.settings, namespaces=["apps"])
    assert orig.mutations(mark) == []
    got = [r for r in orig.sb.requests()[mark:] if "backups" in r.get("path", "")]
    assert got and {r["method"] for r in got} == {"GET"}
    backups = doc["objects"]["backups.ops.example.com"]
    assert sorted(b["metadata"]["name"] for b in backups) == ["etcd", "nightly"]
    assert [b["metadata"]["name"] for b in only_apps["objects"]["backups.ops.example.com"]] == ["nightly"]
    uid = next(b["metadata"]["uid"] for b in backups if b["metadata"]["name"] == "nightly")

    with PrivateSandbox(write(doc, tmp_path / "snap.json")) as sandbox:
        kubeconfig = sandbox.settings(orig.settings).kube.kubeconfig
        out = subprocess.run([kubectl_binary(), f"--kubeconfig={kubeconfig}", "get", "bk", "-A", "-o", "json"],
                             capture_output=True, text=True, timeout=30, check=True)
        crd = subprocess.run([kubectl_binary(), f"--kubeconfig={kubeconfig}", "get", "crd",
                              "backups.ops.example.com", "-o", "jsonpath={.status.conditions[?(@.type=="
                              "'Established')].status}"], capture_output=True, text=True, timeout=30, check=True)
        not_loaded = dict(sandbox.info.get("not_loaded") or {})
    loaded = {b["metadata"]["name"]: b for b in json.loads(out.stdout)["items"]}
    assert sorted(loaded) == ["etcd", "nightly"] and crd.stdout == "True"
    assert loaded["nightly"]["metadata"]["uid"] == uid and loaded["nightly"]["spec"]["node"] == "worker-1"
    assert loaded["nightly"]["metadata"]["labels"] == {"team": "storage"}
    assert not_loaded == {}


def test_a_rehearsal_names_only_what_still_cannot_be_loaded(original_factory, tmp_path) -> None:
    orig = _original_with_backups(original_factory)
    doc = take(orig.settings)
    report = rehearse(doc, "drain-node", params={"node": "worker-1"}, settings=orig.settings, speed=5)
    assert report.status == "done" and not any("not in the" in n for n in report.notes), report.notes
    # a custom resource whose CRD is not in the snapshot (kubectl get -o json files of the objects alone)
    doc["objects"]["customresourcedefinitions.apiextensions.k8s.io"] = []
    with PrivateSandbox(write(doc, tmp_path / "no-crd.json")) as sandbox:
        not_loaded = dict(sandbox.info.get("not_loaded") or {})
    assert not_loaded == {"ops.example.com/v1 Backup": 2}
