"""How an argument list becomes a remote command line (pure: no server)."""

from __future__ import annotations

import shlex

import pytest

from kubeops.clients.ssh import build_command, parse_gateway
from kubeops.errors import InputError


def test_every_argument_is_quoted_so_the_remote_shell_splits_back_the_same_list() -> None:
    argv = ["printf", "%s", "$(reboot)", "a b", "'q'", '"d"', "x;y|z&", "`id`", "*"]
    cmd = build_command(argv)
    assert shlex.split(cmd.line) == argv


def test_sudo_never_prompts_and_wraps_timeout_and_env_in_that_order() -> None:
    cmd = build_command(["systemctl", "restart", "kubelet"], sudo=True, env={"A": "1 2"}, timeout_s=30)
    assert shlex.split(cmd.line) == [
        "sudo", "-n", "--", "timeout", "--kill-after=5s", "30s", "env", "A=1 2", "systemctl", "restart", "kubelet",
    ]


def test_the_display_form_hides_environment_values_and_the_timeout_wrapper() -> None:
    cmd = build_command(["deploy"], sudo=True, env={"TOKEN": "s3cr3t"}, timeout_s=5)
    assert "s3cr3t" not in cmd.display
    assert cmd.display == "sudo env 'TOKEN=***' deploy"


@pytest.mark.parametrize("argv", ["echo hi", [], ()])
def test_a_string_or_empty_command_is_refused(argv: object) -> None:
    with pytest.raises(InputError, match="list of arguments"):
        build_command(argv)  # type: ignore[arg-type]


def test_an_invalid_environment_name_is_refused() -> None:
    with pytest.raises(InputError, match="not valid"):
        build_command(["true"], env={"A;rm": "x"})


def test_a_non_positive_timeout_is_refused() -> None:
    with pytest.raises(InputError, match="positive"):
        build_command(["true"], timeout_s=0)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("bastion.example.com", (None, "bastion.example.com", 22)),
        ("ops@bastion:2222", ("ops", "bastion", 2222)),
        ("ops@[2001:db8::1]:2200", ("ops", "2001:db8::1", 2200)),
        ("2001:db8::1", (None, "2001:db8::1", 22)),
    ],
)
def test_gateway_specs_parse(spec: str, expected: tuple[str | None, str, int]) -> None:
    assert parse_gateway(spec) == expected
