"""Guessing tokens through the login form: after ten failures from one address (or a hundred from all) within ten
minutes, logins are refused with 429 and Retry-After, before the token is looked at, until the window moves on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kubeops.console.throttle import LoginThrottle
from tests.console.conftest import TOKENS, Console


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_address_is_held_back_after_its_failures_and_free_again_when_they_age_out() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_client=3, overall=100, window_s=60, clock=clock)
    for _ in range(3):
        assert throttle.wait_s("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
        clock.now += 1
    assert throttle.wait_s("10.0.0.1") == pytest.approx(57)  # the first failure leaves the window at 1060
    assert throttle.wait_s("10.0.0.2") == 0  # another address is not bothered
    clock.now = 1060.5
    assert throttle.wait_s("10.0.0.1") == 0
    throttle.failed("10.0.0.1")  # one more: three within the last 60 s again (1001, 1002, 1060.5)
    assert throttle.wait_s("10.0.0.1") == pytest.approx(0.5)


def test_a_success_forgets_the_address_and_the_overall_bound_catches_a_changing_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_client=3, overall=5, window_s=60, clock=clock)
    throttle.failed("a")
    throttle.failed("a")
    throttle.succeeded("a")
    throttle.failed("a")
    assert throttle.wait_s("a") == 0  # two forgotten, one counted
    for n in range(4):  # a guesser with a new address each time
        throttle.failed(f"rotating-{n}")
    assert throttle.wait_s("someone-new") == pytest.approx(60)  # five failures overall within the window
    clock.now += 61
    assert throttle.wait_s("someone-new") == 0
    with pytest.raises(ValueError):
        LoginThrottle(per_client=0)


def login(client: Any, token: str) -> Any:
    nonce = client.get("/login").cookies.get("kubeops_login")
    return client.post("/login", data={"token": token, "csrf": nonce})


def test_the_login_form_refuses_a_guesser_even_with_the_right_token_and_not_other_clients(
    console_factory: Callable[..., Console],
) -> None:
    from starlette.testclient import TestClient

    console = console_factory()
    guesser = TestClient(console.app, base_url="http://127.0.0.1", follow_redirects=False, client=("10.0.0.9", 4000))
    for n in range(10):
        assert login(guesser, f"guess-{n:04d}-0123456789").status_code == 401
    held = login(guesser, TOKENS["operator"])
    assert held.status_code == 429
    assert 590 <= int(held.headers["Retry-After"]) <= 600
    assert "too many failed logins" in held.text
    assert "kubeops_session" not in held.headers.get("set-cookie", "")  # no session: the token was not even tried
    assert guesser.get("/runs").status_code == 303  # still not logged in
    other = TestClient(console.app, base_url="http://127.0.0.1", follow_redirects=False, client=("10.0.0.10", 4000))
    assert login(other, TOKENS["viewer"]).status_code == 303


def test_a_huge_body_is_refused_before_the_console_reads_it(console_factory: Callable[..., Console]) -> None:
    console = console_factory()
    client = console.client()
    nonce = client.get("/login").cookies.get("kubeops_login")
    big = client.post("/login", data={"token": "x" * 200_000, "csrf": nonce})
    assert big.status_code == 413 and "at most 65536 bytes" in big.text

    def stream() -> Any:  # no Content-Length: sent chunked, counted as it comes
        for _ in range(100):
            yield b"token=" + b"y" * 4096

    streamed = client.post("/login", content=stream(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413
    assert client.get("/healthz").status_code == 200  # still serving
    assert login(console.client(), TOKENS["viewer"]).status_code == 303  # and a real login still works
