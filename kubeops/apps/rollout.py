"""The arithmetic of a surge rollout between versioned controllers (pure, so it is tested without a cluster).

A step adds up to `surge` pods to the new version, waits until they are ready, then removes as many old pods as
the ready new ones can replace: old pods never drop below ``target - ready_new``. So the Service always has at
least `target` ready pods behind it (or as many as the old version had), and never none.

Every quantity is recomputed from the cluster's state at each step, so a resumed rollout simply continues.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step: scale the new version to `new`, wait for it, then bring the old versions to `old` in total."""

    new: int
    old: int


def next_new_count(*, target: int, surge: int, current: int) -> int:
    """The new version's next replica count: up by `surge`, never past `target` (down to it if above)."""
    if current >= target:
        return target
    return min(target, current + max(1, surge))


def old_total_after(*, target: int, new_ready: int, old_total: int) -> int:
    """How many old pods may remain once `new_ready` new pods are ready: never more than there were."""
    return min(old_total, max(0, target - new_ready))


def shrink(old: list[tuple[str, int]], total: int) -> list[tuple[str, int]]:
    """New replica counts for the old controllers (name, replicas) so they sum to at most `total`.

    The last-listed controllers give up pods first; only changed entries are returned.
    """
    excess = sum(r for _, r in old) - total
    changes: list[tuple[str, int]] = []
    for name, replicas in reversed(old):
        if excess <= 0:
            break
        cut = min(replicas, excess)
        if cut:
            changes.append((name, replicas - cut))
            excess -= cut
    return changes


def plan_steps(*, target: int, surge: int, new_current: int, old_total: int) -> list[PlannedStep]:
    """The whole rollout from the current state, assuming every step becomes ready (for dry-run output)."""
    steps: list[PlannedStep] = []
    new, old = new_current, old_total
    if new == target and old == 0:
        return steps
    while True:
        new = next_new_count(target=target, surge=surge, current=new)
        old = old_total_after(target=target, new_ready=new, old_total=old)
        if steps and steps[-1] == PlannedStep(new, old):
            break
        steps.append(PlannedStep(new, old))
        if new == target and old == 0:
            break
    return steps
