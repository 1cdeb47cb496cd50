"""The Lease lock against the sandbox API over HTTP: exclusion, races, renewal, TTL takeover, concurrency, loss."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from kubeops.clients.kube import KubeClient
from kubeops.engine.lock import ClusterLock, LeaseState
from kubeops.errors import LockHeld
from kubeops.sandbox.testing import SandboxProcess
from kubeops.settings import KubeSettings


def _lock(sb: SandboxProcess, host: str, *, ttl_s: float = 2, concurrency: int = 1) -> ClusterLock:
    kube = KubeClient.from_settings(KubeSettings(kubeconfig=str(sb.kubeconfig)))
    return ClusterLock(kube, namespace="kube-system", name="kubeops-lock", ttl_s=ttl_s, concurrency=concurrency,
                       host=host)


def _lease(sb: SandboxProcess, name: str = "kubeops-lock") -> dict:
    status, body = sb.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}")
    assert status == 200, body
    return body


@pytest.mark.timeout(120)
def test_second_holder_is_refused_with_holder_and_since_then_gets_it_after_release(sandbox: SandboxProcess) -> None:
    first, second = _lock(sandbox, "host-a"), _lock(sandbox, "host-b")
    first.acquire(run_id="run-1", playbook="drain-node")
    with pytest.raises(LockHeld) as caught:
        second.acquire(run_id="run-2", playbook="drain-node")
    text = str(caught.value)
    assert "held by run-1@host-a (playbook drain-node) since 20" in text
    assert "--wait-for-lock" in text and "invoke lock --break" in text
    first.release()
    lease = _lease(sandbox)
    assert "holderIdentity" not in lease["spec"]
    assert lease["metadata"]["annotations"]["kubeops.io/last-holder"] == "run-1@host-a"
    second.acquire(run_id="run-2", playbook="drain-node")
    assert _lease(sandbox)["spec"]["holderIdentity"] == "run-2@host-b"
    second.release()


@pytest.mark.timeout(120)
def test_renewal_keeps_a_live_holder_past_its_ttl_and_a_dead_one_is_taken_over(sandbox: SandboxProcess) -> None:
    live, other = _lock(sandbox, "host-a", ttl_s=1.5), _lock(sandbox, "host-b", ttl_s=1.5)
    live.acquire(run_id="run-1", playbook="p")
    time.sleep(4)  # well past the TTL: the background thread renewed it
    with pytest.raises(LockHeld):
        other.acquire(run_id="run-2", playbook="p")
    renewed = _lease(sandbox)["spec"]["renewTime"]
    assert renewed != _lease(sandbox)["spec"]["acquireTime"]
    # the holder dies without releasing (its renewal stops): after the TTL the lease is taken over
    live._stop.set()
    live._thread.join()  # type: ignore[union-attr]
    with pytest.raises(LockHeld):
        other.acquire(run_id="run-2", playbook="p")
    time.sleep(2)
    other.acquire(run_id="run-2", playbook="p")
    spec = _lease(sandbox)["spec"]
    assert spec["holderIdentity"] == "run-2@host-b" and spec["leaseTransitions"] == 1
    other.release()


@pytest.mark.timeout(120)
def test_waiting_for_the_lock_gets_it_once_released(sandbox: SandboxProcess) -> None:
    holder, waiter = _lock(sandbox, "host-a", ttl_s=10), _lock(sandbox, "host-b", ttl_s=10)
    holder.acquire(run_id="run-1", playbook="p")
    threading.Timer(1.0, holder.release).start()
    began = time.monotonic()
    waiter.acquire(run_id="run-2", playbook="p", wait_s=30)
    assert 0.9 < time.monotonic() - began < 20
    waiter.release()
    holder2 = _lock(sandbox, "host-a", ttl_s=10)
    holder2.acquire(run_id="run-3", playbook="p")
    with pytest.raises(LockHeld, match=r"after waiting 0\.5s"):
        _lock(sandbox, "host-b").acquire(run_id="run-4", playbook="p", wait_s=0.5)
    holder2.release()


@pytest.mark.timeout(120)
def test_racing_runs_exactly_one_wins(sandbox: SandboxProcess) -> None:
    locks = [_lock(sandbox, f"host-{i}", ttl_s=30) for i in range(6)]
    results: dict[int, str] = {}
    barrier = threading.Barrier(len(locks))

    def contend(i: int) -> None:
        barrier.wait()
        try:
            locks[i].acquire(run_id=f"run-{i}", playbook="p")
            results[i] = "won"
        except LockHeld:
            results[i] = "busy"

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(locks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in results.items() if r == "won"]
    assert len(winners) == 1, results
    assert _lease(sandbox)["spec"]["holderIdentity"] == f"run-{winners[0]}@host-{winners[0]}"
    locks[winners[0]].release()


@pytest.mark.timeout(120)
def test_concurrency_two_admits_two_runs_and_refuses_the_third(sandbox: SandboxProcess) -> None:
    locks = [_lock(sandbox, f"host-{i}", concurrency=2, ttl_s=30) for i in range(3)]
    assert locks[0].acquire(run_id="run-0", playbook="p") == "kubeops-lock-0"
    assert locks[1].acquire(run_id="run-1", playbook="p") == "kubeops-lock-1"
    with pytest.raises(LockHeld) as caught:
        locks[2].acquire(run_id="run-2", playbook="p")
    assert "run-0@host-0" in str(caught.value) and "run-1@host-1" in str(caught.value)
    locks[1].release()
    assert locks[2].acquire(run_id="run-2", playbook="p") == "kubeops-lock-1"
    locks[0].release()
    locks[2].release()


@pytest.mark.timeout(120)
def test_a_broken_lock_is_noticed_as_lost_by_its_holder(sandbox: SandboxProcess) -> None:
    holder = _lock(sandbox, "host-a", ttl_s=1.5)
    holder.acquire(run_id="run-1", playbook="p")
    assert _lock(sandbox, "host-admin").break_lock() == ["kube-system/kubeops-lock"]
    deadline = time.monotonic() + 10
    while holder.lost is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert holder.lost is not None and "deleted" in holder.lost
    holder.release()  # a lost lock is not touched on release
    status, _ = sandbox.request("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kubeops-lock")
    assert status == 404


def test_lease_state_describes_expiry_and_freedom() -> None:
    now = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    held = LeaseState(lease="kube-system/l", holder="r@h", playbook="p", acquired=now - timedelta(minutes=5),
                      renewed=now - timedelta(seconds=10), ttl_s=30)
    assert not held.is_free(now) and "expires at 2026-03-02T03:00:20+00:00 unless renewed" in held.describe(now)
    assert held.is_free(now + timedelta(seconds=21))
    assert "expired at" in held.describe(now + timedelta(seconds=21))
    free = LeaseState(lease="kube-system/l", holder=None, playbook=None, acquired=None, renewed=None, ttl_s=30,
                      last_holder="r@h")
    assert free.is_free(now) and free.describe(now) == "lease kube-system/l is free (last held by r@h)"


@pytest.mark.timeout(120)
def test_a_guard_gives_back_the_lease_and_closes_its_lock_client(sandbox: SandboxProcess) -> None:
    from kubeops.engine.guard import Guard
    from kubeops.model.playbook import Playbook, Step

    made: list[ClusterLock] = []

    def factory() -> ClusterLock:
        made.append(_lock(sandbox, "host-g"))
        return made[-1]

    playbook = Playbook(name="drain-node", path="drain-node.yaml", steps=(Step(name="s", action="k8s.cordon"),))
    guard = Guard(cluster="sandbox", lock_factory=factory)
    guard.acquire(run_id="run-g", playbook=playbook, resumed=False)
    guard.before_change(run_id="run-g", step=playbook.steps[0])
    assert _lease(sandbox)["spec"]["holderIdentity"] == "run-g@host-g"
    pools = made[0].kube.api_client.rest_client.pool_manager.pools
    assert len(pools) > 0  # it did talk to the API server
    guard.release(run_id="run-g")
    assert "holderIdentity" not in _lease(sandbox)["spec"]
    assert len(pools) == 0  # no connection left open until the garbage collector finds the client
    # a run that stopped before taking the lock (e.g. a bad step) closes the client of the lock it had checked
    guard.acquire(run_id="run-h", playbook=playbook, resumed=False)
    pending = made[1].kube.api_client.rest_client.pool_manager.pools
    assert len(pending) > 0
    guard.release(run_id="run-h")
    assert len(pending) == 0
