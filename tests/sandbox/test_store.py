"""Store semantics without HTTP: resourceVersion, conflicts, watch history, selectors, pagination, deletion."""

from __future__ import annotations

from typing import Any

import pytest

from kubeops.sandbox.cluster import build_cluster
from kubeops.sandbox.status import ApiError
from kubeops.sandbox.store import Store


def _pod(name: str, node: str = "n1", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx:1.27"}]}}


@pytest.fixture
def store() -> Store:
    cluster = build_cluster(plugins=())
    s = cluster.store
    s.create("namespaces", {"metadata": {"name": "default"}})
    s.create("nodes", {"metadata": {"name": "n1"}})
    return s


class TestResourceVersion:
    def test_every_write_bumps_a_global_version_and_stamps_the_object(self, store: Store) -> None:
        a = store.create("pods", _pod("a"), namespace="default")
        b = store.create("pods", _pod("b"), namespace="default")
        assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
        listed = store.list("pods", namespace="default")
        assert listed.resource_version == b["metadata"]["resourceVersion"]
        assert a["metadata"]["uid"] != b["metadata"]["uid"]

    def test_a_write_that_changes_nothing_commits_nothing(self, store: Store) -> None:
        node = store.get("nodes", None, "n1")
        before = store.resource_version
        same = store.update("nodes", node)
        assert store.resource_version == before
        assert same["metadata"]["resourceVersion"] == node["metadata"]["resourceVersion"]

    def test_stale_update_is_a_conflict_with_the_real_message(self, store: Store) -> None:
        node = store.get("nodes", None, "n1")
        store.patch("nodes", None, "n1", {"spec": {"unschedulable": True}}, "application/merge-patch+json")
        node["metadata"]["labels"] = {"x": "y"}
        with pytest.raises(ApiError) as exc:
            store.update("nodes", node)
        assert exc.value.code == 409
        assert exc.value.message == ('Operation cannot be fulfilled on nodes "n1": the object has been modified; '
                                     "please apply your changes to the latest version and try again")

    def test_generation_bumps_on_spec_changes_only(self, store: Store) -> None:
        d = store.create("deployments.apps", {
            "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}}, namespace="default")
        assert d["metadata"]["generation"] == 1
        d2 = store.patch("deployments.apps", "default", "web", {"metadata": {"labels": {"a": "b"}}},
                         "application/merge-patch+json")
        assert d2["metadata"]["generation"] == 1
        d3 = store.patch("deployments.apps", "default", "web", {"spec": {"replicas": 3}},
                         "application/merge-patch+json")
        assert d3["metadata"]["generation"] == 2

    def test_status_subresource_and_main_resource_do_not_overwrite_each_other(self, store: Store) -> None:
        store.patch("nodes", None, "n1", {"status": {"phase": "x"}}, "application/merge-patch+json")
        assert "phase" not in store.get("nodes", None, "n1").get("status", {})
        store.patch("nodes", None, "n1", {"status": {"phase": "x"}, "spec": {"unschedulable": True}},
                    "application/merge-patch+json", subresource="status")
        node = store.get("nodes", None, "n1")
        assert node["status"]["phase"] == "x"
        assert not node.get("spec", {}).get("unschedulable")


class TestDryRun:
    def test_dry_run_validates_and_returns_but_changes_nothing(self, store: Store) -> None:
        before = store.resource_version
        out = store.create("pods", _pod("dry"), namespace="default", dry_run=True)
        assert out["metadata"]["name"] == "dry"
        store.patch("nodes", None, "n1", {"spec": {"unschedulable": True}}, "application/merge-patch+json",
                    dry_run=True)
        store.delete("nodes", None, "n1", dry_run=True)
        assert store.resource_version == before
        assert store.try_get("pods", "default", "dry") is None
        assert not store.get("nodes", None, "n1").get("spec", {}).get("unschedulable")

    def test_dry_run_still_reports_errors(self, store: Store) -> None:
        store.create("pods", _pod("dup"), namespace="default")
        with pytest.raises(ApiError) as exc:
            store.create("pods", _pod("dup"), namespace="default", dry_run=True)
        assert exc.value.code == 409 and exc.value.message == 'pods "dup" already exists'


class TestWatchLog:
    def test_events_after_a_version_replay_in_order(self, store: Store) -> None:
        start = store.resource_version
        store.create("pods", _pod("a"), namespace="default")
        store.patch("pods", "default", "a", {"metadata": {"labels": {"x": "1"}}}, "application/merge-patch+json")
        store.delete("pods", "default", "a", grace_period_s=0)
        events = [(e.type, e.name) for e in store.events_since(start) if e.resource == "pods"]
        assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]

    def test_versions_older_than_the_history_are_gone(self) -> None:
        cluster = build_cluster(plugins=())
        store = cluster.store
        store._history = 10  # a tiny history so compaction happens quickly
        store.create("namespaces", {"metadata": {"name": "default"}})
        first = store.resource_version
        for i in range(40):
            store.create("configmaps", {"metadata": {"name": f"cm{i}"}}, namespace="default")
        with pytest.raises(ApiError) as exc:
            store.events_since(first)
        assert exc.value.code == 410 and "too old resource version" in exc.value.message
        assert store.events_since(store.resource_version - 3)

    def test_subscribers_see_every_commit(self, store: Store) -> None:
        seen: list[tuple[str, str]] = []
        store.subscribe(lambda ev: seen.append((ev.type, ev.name)))
        store.create("pods", _pod("s"), namespace="default")
        assert seen == [("ADDED", "s")]


class TestListing:
    def test_label_and_field_selectors(self, store: Store) -> None:
        store.create("nodes", {"metadata": {"name": "n2"}})
        store.create("pods", _pod("a", "n1", app="web", tier="fe"), namespace="default")
        store.create("pods", _pod("b", "n2", app="web"), namespace="default")
        store.create("pods", _pod("c", "n2", app="db"), namespace="default")

        def names(**kw: Any) -> list[str]:
            return [p["metadata"]["name"] for p in store.list("pods", **kw).items]

        assert names(label_selector="app=web") == ["a", "b"]
        assert names(label_selector="app in (web,db),tier!=fe") == ["b", "c"]
        assert names(label_selector="tier") == ["a"]
        assert names(label_selector="!tier") == ["b", "c"]
        assert names(label_selector="app notin (web)") == ["c"]
        assert names(field_selector="spec.nodeName=n2") == ["b", "c"]
        assert names(field_selector="metadata.name!=b,spec.nodeName=n2") == ["c"]
        assert names(field_selector="status.phase=Pending") == ["a", "b", "c"]

    def test_unknown_field_is_a_bad_request_like_the_real_server(self, store: Store) -> None:
        with pytest.raises(ApiError) as exc:
            store.list("pods", field_selector="spec.bogus=1")
        assert exc.value.code == 400
        assert exc.value.message.endswith("field label not supported: spec.bogus")

    def test_pagination_returns_every_object_once(self, store: Store) -> None:
        for i in range(23):
            store.create("configmaps", {"metadata": {"name": f"cm-{i:02d}"}}, namespace="default")
        seen: list[str] = []
        token = None
        pages = 0
        while True:
            page = store.list("configmaps", limit=5, continue_token=token)
            seen += [o["metadata"]["name"] for o in page.items]
            pages += 1
            token = page.continue_token
            if not token:
                break
            assert page.remaining is not None
        assert seen == sorted(f"cm-{i:02d}" for i in range(23))
        assert pages == 5


    def test_list_order_stays_sorted_as_objects_come_and_go_between_pages(self, store: Store) -> None:
        for i in range(0, 20, 2):
            store.create("configmaps", {"metadata": {"name": f"cm-{i:02d}"}}, namespace="default")
        assert len(store.list("configmaps").items) == 10  # the sorted key index now exists
        first = store.list("configmaps", limit=4)
        assert [o["metadata"]["name"] for o in first.items] == ["cm-00", "cm-02", "cm-04", "cm-06"]
        store.delete("configmaps", "default", "cm-06")  # the page's last key
        store.delete("configmaps", "default", "cm-10")
        for i in (1, 7, 19):
            store.create("configmaps", {"metadata": {"name": f"cm-{i:02d}"}}, namespace="default")
        rest = store.list("configmaps", limit=100, continue_token=first.continue_token)
        # the rest of the list as of the first page (a snapshot): cm-10 still there, cm-07 and cm-19 not yet
        assert [o["metadata"]["name"] for o in rest.items] == ["cm-08", "cm-10", "cm-12", "cm-14", "cm-16",
                                                                "cm-18"]
        names = [o["metadata"]["name"] for o in store.list("configmaps").items]
        assert names == sorted(["cm-00", "cm-01", "cm-02", "cm-04", "cm-07", "cm-08", "cm-12", "cm-14", "cm-16",
                                "cm-18", "cm-19"])


class TestDeletion:
    def test_pods_without_a_deletion_handler_go_at_once(self, store: Store) -> None:
        store.create("pods", _pod("a"), namespace="default")
        _, removed = store.delete("pods", "default", "a")
        assert removed and store.try_get("pods", "default", "a") is None

    def test_graceful_pod_deletion_waits_for_the_handler(self, store: Store) -> None:
        terminating: list[str] = []
        store.deletion_handlers["pods"] = lambda pod: terminating.append(pod["metadata"]["name"])
        created = store.create("pods", _pod("a"), namespace="default")
        out, removed = store.delete("pods", "default", "a", grace_period_s=20)
        assert not removed and terminating == ["a"]
        assert out["metadata"]["deletionGracePeriodSeconds"] == 20 and out["metadata"]["deletionTimestamp"]
        assert store.finish_deletion("pods", "default", "a", uid=created["metadata"]["uid"])
        assert store.try_get("pods", "default", "a") is None

    def test_force_delete_of_a_terminating_pod_removes_it(self, store: Store) -> None:
        store.deletion_handlers["pods"] = lambda pod: None
        store.create("pods", _pod("a"), namespace="default")
        store.delete("pods", "default", "a")
        _, removed = store.delete("pods", "default", "a", grace_period_s=0)
        assert removed and store.try_get("pods", "default", "a") is None

    def test_finalizers_hold_an_object_until_removed(self, store: Store) -> None:
        store.create("configmaps", {"metadata": {"name": "held", "finalizers": ["example.com/x"]}},
                     namespace="default")
        obj, removed = store.delete("configmaps", "default", "held")
        assert not removed and obj["metadata"]["deletionTimestamp"]
        store.patch("configmaps", "default", "held", {"metadata": {"finalizers": None}},
                    "application/merge-patch+json")
        assert store.try_get("configmaps", "default", "held") is None

    def test_dependents_are_garbage_collected_unless_orphaned(self, store: Store) -> None:
        owner = store.create("configmaps", {"metadata": {"name": "owner"}}, namespace="default")
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
        store.create("configmaps", {"metadata": {"name": "child", "ownerReferences": [ref]}}, namespace="default")
        store.delete("configmaps", "default", "owner")
        assert store.try_get("configmaps", "default", "child") is None
        owner = store.create("configmaps", {"metadata": {"name": "owner"}}, namespace="default")
        ref["uid"] = owner["metadata"]["uid"]
        store.create("configmaps", {"metadata": {"name": "child", "ownerReferences": [ref]}}, namespace="default")
        store.delete("configmaps", "default", "owner", propagation_policy="Orphan")
        child = store.get("configmaps", "default", "child")
        assert "ownerReferences" not in child["metadata"]

    def test_uid_precondition_mismatch_is_a_conflict(self, store: Store) -> None:
        store.create("pods", _pod("a"), namespace="default")
        with pytest.raises(ApiError) as exc:
            store.delete("pods", "default", "a", preconditions={"uid": "other"})
        assert exc.value.code == 409 and "Precondition failed: UID in precondition: other" in exc.value.message


class TestValidation:
    def test_missing_namespace_is_not_found(self, store: Store) -> None:
        with pytest.raises(ApiError) as exc:
            store.create("pods", _pod("a"), namespace="nope")
        assert exc.value.code == 404 and exc.value.message == 'namespaces "nope" not found'

    def test_invalid_name_is_unprocessable(self, store: Store) -> None:
        with pytest.raises(ApiError) as exc:
            store.create("pods", _pod("Bad_Name"), namespace="default")
        assert exc.value.code == 422 and exc.value.reason == "Invalid"
        assert exc.value.message.startswith('Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"')

    def test_generate_name(self, store: Store) -> None:
        out = store.create("pods", {"metadata": {"generateName": "web-"},
                                    "spec": {"containers": [{"name": "c", "image": "x"}]}}, namespace="default")
        assert out["metadata"]["name"].startswith("web-") and len(out["metadata"]["name"]) == 9


def test_response_encoder_round_trips_and_falls_back_for_what_the_fast_path_refuses() -> None:
    import json

    from kubeops.sandbox.server import _dumps

    body = {"kind": "PodList", "items": [{"metadata": {"name": "é"}, "spec": {"n": 2**40, "f": 0.25}}]}
    assert json.loads(_dumps(body)) == body
    assert json.loads(_dumps({1: "int keys, as json.dumps takes them"})) == {"1": "int keys, as json.dumps takes them"}
