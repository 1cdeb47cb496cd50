"""Quantities as users write them in manifests, parsed exactly and shown back short."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kubeops.quantity import format_bytes, format_cpu, parse_bytes, parse_cpu, parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250m", Decimal("0.25")),
        ("1", Decimal(1)),
        ("0", Decimal(0)),
        ("100n", Decimal("0.0000001")),
        ("5u", Decimal("0.000005")),
        ("1k", Decimal(1000)),
        ("2M", Decimal(2_000_000)),
        ("3G", Decimal(3 * 10**9)),
        ("1T", Decimal(10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),
        ("1Ki", Decimal(1024)),
        ("256Mi", Decimal(256 * 2**20)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("2Ti", Decimal(2 * 2**40)),
        ("1Pi", Decimal(2**50)),
        ("1Ei", Decimal(2**60)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("12e-3", Decimal("0.012")),
        ("1.5e+2", Decimal(150)),
        ("0.5", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("+2", Decimal(2)),
        ("-1.5Gi", Decimal(-(3 * 2**29))),
        ("123456789012345678901234567890Ei", Decimal(123456789012345678901234567890 * 2**60)),
    ],
)
def test_parses_every_suffix_exactly(text: str, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


def test_numbers_from_json_are_accepted() -> None:
    assert parse_quantity(2) == 2
    assert parse_quantity(0.25) == Decimal("0.25")


def test_cpu_in_cores_and_memory_in_bytes() -> None:
    assert parse_cpu("250m") == 0.25
    assert parse_cpu("1500m") == 1.5
    assert parse_cpu("1050505n") == pytest.approx(0.001050505)
    assert parse_bytes("256Mi") == 268435456
    assert parse_bytes("1G") == 1_000_000_000
    assert parse_bytes("1.5Ki") == 1536
    assert parse_bytes("100m") == 1  # a fraction of a byte rounds up, as the API server does


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (" 1Gi", "whitespace"),
        ("1Gi ", "whitespace"),
        ("1 Gi", "unknown suffix ' Gi'"),
        ("1gi", "unknown suffix 'gi'"),
        ("1KB", "unknown suffix 'KB'"),
        ("1K", "unknown suffix 'K'"),
        ("Gi", "expected a number"),
        ("abc", "expected a number"),
        ("1.2.3", "unknown suffix '.3'"),
        ("--1", "expected a number"),
        ("1e", "unknown suffix 'e'"),
        ("1e1.5", "unknown suffix 'e1.5'"),
        ("1e999", "out of range"),
        ("1Mi1", "unknown suffix 'Mi1'"),
    ],
)
def test_invalid_input_raises_value_error_naming_the_problem(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_quantity(text)
    message = str(info.value)
    assert repr(text) in message
    assert reason in message


@pytest.mark.parametrize("value", [True, None, float("nan"), float("inf"), [1]])
def test_non_quantities_raise_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="invalid Kubernetes quantity"):
        parse_quantity(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cores", "text"),
    [(0.25, "250m"), (0, "0"), (1, "1"), (1.5, "1.5"), (12.25, "12.25"), (0.0045, "4.5m"), (0.001, "1m")],
)
def test_formats_cpu_for_tables(cores: float, text: str) -> None:
    assert format_cpu(cores) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (512, "512"),
        (1024, "1Ki"),
        (256 * 2**20, "256Mi"),
        (3 * 2**29, "1.5Gi"),
        (2**40, "1Ti"),
        (1_000_000, "976.56Ki"),
    ],
)
def test_formats_bytes_for_tables(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize("text", ["250m", "1.5Gi", "256Mi", "2", "4.5m"])
def test_formatting_round_trips_through_the_parser(text: str) -> None:
    value = parse_quantity(text)
    shown = format_bytes(value) if text.endswith("i") else format_cpu(value)
    assert parse_quantity(shown) == value
