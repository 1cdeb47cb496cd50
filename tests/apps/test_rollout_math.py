"""Surge rollout arithmetic: the new version grows by surge, the old shrinks only by what is ready."""

from __future__ import annotations

from kubeops.apps.rollout import PlannedStep, next_new_count, old_total_after, plan_steps, shrink


def test_new_version_grows_by_surge_and_stops_at_target() -> None:
    assert next_new_count(target=5, surge=2, current=0) == 2
    assert next_new_count(target=5, surge=2, current=4) == 5
    assert next_new_count(target=3, surge=1, current=5) == 3  # replicas lowered in the config: come down to it


def test_old_pods_only_go_as_new_ones_are_ready() -> None:
    assert old_total_after(target=3, new_ready=1, old_total=3) == 2
    assert old_total_after(target=3, new_ready=3, old_total=3) == 0
    assert old_total_after(target=3, new_ready=1, old_total=1) == 1  # never scales an old version up


def test_plan_of_a_three_replica_rollout_with_surge_one() -> None:
    assert plan_steps(target=3, surge=1, new_current=0, old_total=3) == [
        PlannedStep(1, 2),
        PlannedStep(2, 1),
        PlannedStep(3, 0),
    ]


def test_plan_with_surge_two_and_a_larger_old_version() -> None:
    assert plan_steps(target=4, surge=2, new_current=0, old_total=6) == [PlannedStep(2, 2), PlannedStep(4, 0)]


def test_plan_resumes_from_the_current_state_and_is_empty_when_done() -> None:
    assert plan_steps(target=3, surge=1, new_current=2, old_total=1) == [PlannedStep(3, 0)]
    assert plan_steps(target=3, surge=1, new_current=3, old_total=0) == []


def test_first_deploy_without_an_old_version() -> None:
    assert plan_steps(target=2, surge=1, new_current=0, old_total=0) == [PlannedStep(1, 0), PlannedStep(2, 0)]


def test_every_planned_step_keeps_at_least_the_target_serving() -> None:
    for target in range(1, 6):
        for surge in range(1, 4):
            for old in range(1, 7):
                for step in plan_steps(target=target, surge=surge, new_current=0, old_total=old):
                    assert step.new + step.old >= min(target, old)


def test_shrink_takes_pods_from_the_last_controllers_first() -> None:
    assert shrink([("a", 2), ("b", 2)], 3) == [("b", 1)]
    assert shrink([("a", 2), ("b", 2)], 1) == [("b", 0), ("a", 1)]
    assert shrink([("a", 2)], 5) == []
