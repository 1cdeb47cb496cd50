"""Patch formats: JSON merge patch, JSON patch and strategic merge patch on built-in shapes."""

from __future__ import annotations

import pytest

from kubeops.sandbox.patch import PatchError, apply_patch, json_patch, merge_patch, strategic_merge_patch

POD = {
    "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {
        "containers": [{"name": "app", "image": "v1", "env": [{"name": "A", "value": "1"}]},
                       {"name": "side", "image": "s1"}],
        "tolerations": [{"key": "k", "operator": "Exists"}],
    },
}


def test_merge_patch_merges_maps_deletes_nulls_and_replaces_lists() -> None:
    out = merge_patch(POD, {"metadata": {"labels": {"a": None, "c": "3"}},
                            "spec": {"containers": [{"name": "only"}]}})
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert out["spec"]["containers"] == [{"name": "only"}]
    assert POD["metadata"]["labels"] == {"a": "1", "b": "2"}  # input untouched


def test_strategic_merge_patch_merges_containers_by_name() -> None:
    out = strategic_merge_patch(POD, {"spec": {"containers": [{"name": "app", "image": "v2"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["app", "side"]
    assert out["spec"]["containers"][0]["image"] == "v2"
    assert out["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_strategic_merge_patch_directives() -> None:
    out = strategic_merge_patch(POD, {
        "spec": {"containers": [{"name": "side", "$patch": "delete"}],
                 "$setElementOrder/containers": [{"name": "app"}]},
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]},
    })
    assert [c["name"] for c in out["spec"]["containers"]] == ["app"]
    assert out["metadata"]["finalizers"] == []
    replaced = strategic_merge_patch(POD, {"metadata": {"labels": {"$patch": "replace", "z": "9"}}})
    assert replaced["metadata"]["labels"] == {"z": "9"}


def test_strategic_merge_patch_replaces_lists_without_a_merge_key() -> None:
    out = strategic_merge_patch(POD, {"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}})
    assert out["spec"]["tolerations"] == [{"key": "other", "operator": "Exists"}]


def test_strategic_merge_patch_unions_finalizers() -> None:
    out = strategic_merge_patch(POD, {"metadata": {"finalizers": ["y", "x"]}})
    assert out["metadata"]["finalizers"] == ["x", "y"]


def test_json_patch_operations() -> None:
    out = json_patch(POD, [
        {"op": "add", "path": "/metadata/labels/c", "value": "3"},
        {"op": "remove", "path": "/metadata/labels/a"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "v9"},
        {"op": "test", "path": "/metadata/name", "value": "p"},
        {"op": "add", "path": "/spec/tolerations/-", "value": {"key": "t"}},
    ])
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert out["spec"]["containers"][0]["image"] == "v9"
    assert out["spec"]["tolerations"][-1] == {"key": "t"}


def test_json_patch_failures_are_patch_errors() -> None:
    with pytest.raises(PatchError):
        json_patch(POD, [{"op": "test", "path": "/metadata/name", "value": "q"}])
    with pytest.raises(PatchError):
        json_patch(POD, [{"op": "remove", "path": "/metadata/nothing"}])


def test_unknown_content_type_is_415() -> None:
    with pytest.raises(PatchError) as exc:
        apply_patch(POD, {}, "text/plain")
    assert exc.value.code == 415
