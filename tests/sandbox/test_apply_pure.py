"""Server-side apply and field ownership as pure functions: the fieldsV1 a manager gets, the merge, conflicts,
forcing, shared ownership and the removal of fields a manager stops applying (kubeops.sandbox.apply and
kubeops.sandbox.managedfields)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeops.sandbox import managedfields as mf
from kubeops.sandbox.apply import ApplyConflict, apply
from kubeops.sandbox.patch import PatchError

KUBECTL = mf.Manager("kubectl", "Apply", "apps/v1")
FLUX = mf.Manager("flux", "Apply", "apps/v1")
SCALE = mf.Manager("kubectl", "Update", "apps/v1", "scale")
CSA = mf.Manager("kubectl-client-side-apply", "Update", "apps/v1")


def deployment(*, replicas: int = 2, image: str = "nginx:1", env: Any = None, labels: Any = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": image, "ports": [{"containerPort": 80}]}
    if env is not None:
        container["env"] = env
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "apps", "labels": labels or {"app": "web"},
                         "finalizers": ["example.com/keep"]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [container], "tolerations": [{"operator": "Exists"}]}}}}


def entry(obj: dict[str, Any], who: mf.Manager) -> dict[str, Any]:
    rows = [r for r in obj["metadata"]["managedFields"]
            if (r["manager"], r["operation"], r.get("subresource", "")) == (who.name, who.operation, who.subresource)]
    assert len(rows) == 1, obj["metadata"]["managedFields"]
    return rows[0]


def test_an_apply_records_the_fields_it_set_in_the_real_encoding() -> None:
    obj = apply(None, deployment(env=[{"name": "A", "value": "1"}]), KUBECTL, force=False, now="T1")
    row = entry(obj, KUBECTL)
    assert (row["apiVersion"], row["fieldsType"], row["time"]) == ("apps/v1", "FieldsV1", "T1")
    fields = row["fieldsV1"]
    assert fields["f:metadata"] == {"f:labels": {"f:app": {}}, "f:finalizers": {'v:"example.com/keep"': {}}}
    assert fields["f:spec"]["f:replicas"] == {}
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert container == {".": {}, "f:name": {}, "f:image": {},
                         "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                         "f:env": {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}}}
    assert fields["f:spec"]["f:template"]["f:spec"]["f:tolerations"] == {}  # an atomic list: owned whole
    assert "f:name" not in fields["f:metadata"] and "f:apiVersion" not in fields  # never owned


def test_fieldsv1_decodes_back_to_the_same_paths_and_renders_like_the_api_server() -> None:
    paths = mf.fieldset(deployment())
    assert mf.decode(mf.encode(paths)) == paths
    path = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"c"}', "f:image")
    assert path in paths
    assert mf.render(path) == '.spec.template.spec.containers[name="c"].image'
    assert mf.render(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'


def test_a_field_changed_by_another_manager_is_a_conflict_unless_forced() -> None:
    live = apply(None, deployment(), KUBECTL, force=False, now="T1")
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    mf.record_update(live, scaled, SCALE, "T2")
    assert entry(scaled, SCALE)["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in entry(scaled, KUBECTL)["fieldsV1"]["f:spec"]  # the Update took it over

    with pytest.raises(ApplyConflict) as caught:
        apply(scaled, deployment(replicas=3), KUBECTL, force=False, now="T3")
    assert caught.value.message == ('Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" '
                                    "using apps/v1: .spec.replicas")
    assert caught.value.causes == [{"reason": "FieldManagerConflict", "field": ".spec.replicas",
                                    "message": 'conflict with "kubectl" with subresource "scale" using apps/v1'}]

    forced = apply(scaled, deployment(replicas=3), KUBECTL, force=True, now="T3")
    assert forced["spec"]["replicas"] == 3
    assert "f:replicas" in entry(forced, KUBECTL)["fieldsV1"]["f:spec"]
    assert [r["manager"] for r in forced["metadata"]["managedFields"]] == ["kubectl"]  # the scaler owns nothing now


def test_several_conflicts_are_listed_by_manager() -> None:
    live = apply(None, deployment(), KUBECTL, force=False, now="T1")
    with pytest.raises(ApplyConflict) as caught:
        apply(live, deployment(replicas=4, image="nginx:2"), FLUX, force=False, now="T2")
    assert caught.value.message == ('Apply failed with 2 conflicts: conflicts with "kubectl":\n'
                                    "- .spec.replicas\n"
                                    '- .spec.template.spec.containers[name="c"].image')


def test_applying_the_same_value_shares_the_field_and_keeps_the_others_fields() -> None:
    live = apply(None, deployment(env=[{"name": "A", "value": "1"}]), KUBECTL, force=False, now="T1")
    partial = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": 2, "template": {"spec": {"containers": [
                   {"name": "c", "env": [{"name": "B", "value": "2"}]}]}}}}
    shared = apply(live, partial, FLUX, force=False, now="T2")
    assert shared["spec"]["replicas"] == 2
    container = shared["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1" and container["env"] == [{"name": "A", "value": "1"},
                                                                     {"name": "B", "value": "2"}]
    assert "f:replicas" in entry(shared, KUBECTL)["fieldsV1"]["f:spec"]
    assert "f:replicas" in entry(shared, FLUX)["fieldsV1"]["f:spec"]

    # kubectl stops applying replicas: flux still owns it, so the value stays and only kubectl's claim goes
    without = deployment(env=[{"name": "A", "value": "1"}])
    del without["spec"]["replicas"]
    after = apply(shared, without, KUBECTL, force=False, now="T3")
    assert after["spec"]["replicas"] == 2
    assert "f:replicas" not in entry(after, KUBECTL)["fieldsV1"]["f:spec"]


def test_fields_and_list_items_a_manager_stops_applying_are_removed() -> None:
    live = apply(None, deployment(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                                  labels={"app": "web", "tier": "front"}), KUBECTL, force=False, now="T1")
    trimmed = deployment(env=[{"name": "A", "value": "1"}])
    trimmed["metadata"]["finalizers"] = []
    after = apply(live, trimmed, KUBECTL, force=False, now="T2")
    assert after["metadata"]["labels"] == {"app": "web"}
    assert after["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    assert after["metadata"].get("finalizers") in (None, [])
    fields = entry(after, KUBECTL)["fieldsV1"]
    assert "f:tier" not in fields["f:metadata"]["f:labels"]


def test_fields_nobody_applied_are_never_removed() -> None:
    live = apply(None, deployment(), KUBECTL, force=False, now="T1")
    live["spec"]["strategy"] = {"type": "RollingUpdate"}  # a default the server filled in
    after = apply(live, deployment(image="nginx:2"), KUBECTL, force=False, now="T2")
    assert after["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"


def test_an_unchanged_apply_keeps_its_time_and_a_managed_fields_body_is_refused() -> None:
    live = apply(None, deployment(), KUBECTL, force=False, now="T1")
    again = apply(live, deployment(), KUBECTL, force=False, now="T2")
    assert again == live
    bad = deployment()
    bad["metadata"]["managedFields"] = [{"manager": "me"}]
    with pytest.raises(PatchError, match="managedFields must be nil"):
        apply(live, bad, KUBECTL, force=False, now="T3")


def test_an_update_takes_changed_fields_from_others_and_an_idle_one_changes_nothing() -> None:
    created = deployment()
    mf.record_update(None, created, CSA, "T1")
    assert entry(created, CSA)["fieldsV1"]["f:spec"]["f:replicas"] == {}
    same = copy.deepcopy(created)
    mf.record_update(created, same, mf.Manager("kubectl-edit", "Update", "apps/v1"), "T2")
    assert same["metadata"]["managedFields"] == created["metadata"]["managedFields"]
    edited = copy.deepcopy(created)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    del edited["metadata"]["labels"]
    mf.record_update(created, edited, mf.Manager("kubectl-edit", "Update", "apps/v1"), "T3")
    edit = entry(edited, mf.Manager("kubectl-edit", "Update", "apps/v1"))
    assert edit["fieldsV1"] == {"f:spec": {"f:template": {"f:spec": {"f:containers": {
        'k:{"name":"c"}': {"f:image": {}}}}}}}
    csa = entry(edited, CSA)["fieldsV1"]
    assert "f:image" not in csa["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert "f:labels" not in csa["f:metadata"]  # removed fields leave every set


def test_a_status_write_owns_status_only() -> None:
    old = deployment()
    mf.record_update(None, old, CSA, "T1")
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]}
    who = mf.Manager("kube-controller-manager", "Update", "apps/v1", "status")
    mf.record_update(old, new, who, "T2")
    assert entry(new, who)["fieldsV1"] == {"f:status": {"f:replicas": {}, "f:conditions": {
        'k:{"type":"Available"}': {".": {}, "f:type": {}, "f:status": {}}}}}
    assert entry(new, CSA) == entry(old, CSA)


def test_an_item_another_manager_owns_fields_of_stays_whole_with_its_key() -> None:
    live = apply(None, deployment(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]), KUBECTL,
                 force=False, now="T1")
    edited = copy.deepcopy(live)
    edited["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] = "3"
    mf.record_update(live, edited, mf.Manager("kubectl-edit", "Update", "apps/v1"), "T2")  # owns B's value only
    after = apply(edited, deployment(env=[{"name": "A", "value": "1"}]), KUBECTL, force=False, now="T3")
    assert after["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"},
                                                                         {"name": "B", "value": "3"}]
