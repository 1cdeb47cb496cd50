"""The reboot decisions that keep a resumed `ssh.reboot` from rebooting a node twice (pure: no servers)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kubeops.actions.ssh import NoRebootSeen, RebootWatch, must_send, rebooted, wait_rebooted
from kubeops.errors import ActionError

SENT_AT = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def node(*, ready: bool = True, boot: str | None = "boot-1", since: str = "2023-11-01T00:00:00Z") -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": since}]
    }
    if boot:
        status["nodeInfo"] = {"bootID": boot}
    return {"metadata": {"name": "n"}, "status": status}


def intent(boot: str | None = "boot-1", sent_at: float = SENT_AT) -> dict[str, Any]:
    return {"phase": "reboot-sent", "host": "10.0.0.1", "boot_id": boot, "sent_at": sent_at}


class TestMustSend:
    def test_a_first_attempt_sends(self) -> None:
        assert must_send(None, node(), now=SENT_AT, down_timeout_s=300) == "send"
        assert must_send({"something": "else"}, node(), now=SENT_AT, down_timeout_s=300) == "send"

    def test_a_new_boot_id_means_the_reboot_happened_so_only_wait(self) -> None:
        assert must_send(intent(), node(boot="boot-2"), now=SENT_AT + 60, down_timeout_s=300) == "wait"

    def test_a_not_ready_node_is_rebooting_so_only_wait(self) -> None:
        assert must_send(intent(), node(ready=False), now=SENT_AT + 60, down_timeout_s=300) == "wait"

    def test_a_ready_transition_after_the_send_means_it_already_came_back(self) -> None:
        back = node(boot=None, since="2023-11-14T22:15:00Z")
        assert must_send(intent(boot=None), back, now=SENT_AT + 600, down_timeout_s=300) == "wait"

    def test_no_sign_yet_shortly_after_sending_waits_before_sending_again(self) -> None:
        assert must_send(intent(), node(), now=SENT_AT + 10, down_timeout_s=300) == "wait-or-resend"

    def test_no_sign_long_after_sending_means_the_reboot_never_happened(self) -> None:
        assert must_send(intent(), node(), now=SENT_AT + 301, down_timeout_s=300) == "send"


class TestRebooted:
    def test_an_unchanged_ready_node_has_not_rebooted(self) -> None:
        assert not rebooted(node(), boot_id_before="boot-1", sent_at=SENT_AT)

    def test_a_missing_boot_id_is_not_taken_for_a_new_one(self) -> None:
        assert not rebooted(node(boot=None), boot_id_before="boot-1", sent_at=SENT_AT)


    def test_a_node_that_became_ready_just_before_the_send_has_not_rebooted(self) -> None:
        fresh = "2023-11-14T22:13:20Z"  # the send's own second
        assert not rebooted(node(since=fresh), boot_id_before="boot-1", sent_at=SENT_AT, ready_since_before=fresh)
        assert not rebooted(node(boot=None, since=fresh), boot_id_before=None, sent_at=SENT_AT + 0.4)

    def test_a_ready_transition_other_than_the_recorded_one_counts(self) -> None:
        later = node(boot=None, since="2023-11-14T22:13:21Z")
        assert rebooted(later, boot_id_before=None, sent_at=SENT_AT, ready_since_before="2023-11-14T22:13:20Z")


class FakeTime:
    def __init__(self) -> None:
        self.now = SENT_AT

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_wait(reads: list[dict[str, Any]], *, boot: str | None = "boot-1", **kw: Any) -> dict[str, Any]:
    fake = FakeTime()
    seq = iter(reads)
    last: list[dict[str, Any]] = []

    def read() -> dict[str, Any]:
        current = next(seq, None)  # the last read repeats once the script runs out
        if current is not None:
            last[:] = [current]
        return last[0]

    options = {"timeout_s": 900, "down_timeout_s": 300, "poll_interval_s": 5, **kw}
    return wait_rebooted(
        RebootWatch(boot_id_before=boot, sent_at=SENT_AT), read, node="n", clock=fake.clock, sleep=fake.sleep,
        **options,
    )


class TestWaitRebooted:
    def test_waits_through_not_ready_until_ready_again(self) -> None:
        final = run_wait([node(), node(ready=False), node(ready=False), node(boot="boot-2")])
        assert final["status"]["nodeInfo"]["bootID"] == "boot-2"

    def test_a_ready_node_before_it_went_down_is_not_back(self) -> None:
        reads = [node(), node(), node(ready=False), node(ready=True, since="2023-11-14T22:14:00Z")]
        final = run_wait(reads)
        assert final is reads[-1]

    def test_a_quick_reboot_seen_only_by_its_new_boot_id_counts(self) -> None:
        assert run_wait([node(), node(boot="boot-2")])["status"]["nodeInfo"]["bootID"] == "boot-2"

    def test_without_boot_ids_a_not_ready_phase_is_required(self) -> None:
        with pytest.raises(NoRebootSeen):
            run_wait([node(boot=None)], boot=None, down_timeout_s=30)

    def test_a_node_that_never_goes_down_raises_no_reboot_seen(self) -> None:
        with pytest.raises(NoRebootSeen, match="no sign of rebooting within 300s"):
            run_wait([node()])

    def test_a_node_that_never_comes_back_times_out_naming_its_state(self) -> None:
        with pytest.raises(ActionError) as info:
            run_wait([node(ready=False, boot="boot-2")], timeout_s=60)
        assert not isinstance(info.value, NoRebootSeen)
        assert "did not become Ready again within 60s" in str(info.value)
        assert "Ready=False" in str(info.value) and "boot-2" in str(info.value)

    def test_the_step_deadline_is_checked_between_reads(self) -> None:
        def expired() -> None:
            raise ActionError("step 'reboot' timed out")

        watch = RebootWatch(boot_id_before="boot-1", sent_at=time.time())
        with pytest.raises(ActionError, match="timed out"):
            wait_rebooted(
                watch, node, node="n", timeout_s=900, down_timeout_s=300, poll_interval_s=0, check=expired
            )
