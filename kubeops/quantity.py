"""Kubernetes resource quantities: exact parsing and short formatting for tables.

Why our own: usage maths (capacity checks, redistribution) compares requests written as
``250m``/``1.5Gi`` with measured usage in cores and bytes; floats parsed by hand drift and
the client library's helper does not explain what was wrong with a bad value. Grammar follows
``k8s.io/apimachinery/pkg/api/resource``: ``<sign?><digits[.digits]><suffix>`` where the suffix is
a decimal SI prefix (``n u m "" k M G T P E``), a binary one (``Ki .. Ei``) or an exponent
(``e3``/``E-2``).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, localcontext
from functools import lru_cache

__all__ = [
    "format_bytes",
    "format_cpu",
    "parse_bytes",
    "parse_cpu",
    "parse_quantity",
]

_DECIMAL_SI: dict[str, int] = {
    "n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18,
}
_BINARY_SI: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_NUMBER = re.compile(r"([+-]?)(\d+(?:\.\d*)?|\.\d+)(.*)", re.DOTALL)
_EXPONENT = re.compile(r"[eE]([+-]?\d+)")
# Wide enough that no quantity a cluster can hold is rounded (Ei with 30 decimals fits).
_PRECISION = 80
_MAX_EXPONENT = 100  # beyond this it is a typo, not a quantity; keeps Decimal from huge ints
_SUFFIXES = "n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent such as 1e3"


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """Return the exact value of a quantity (``"250m"`` -> ``Decimal("0.250")``).

    Raises ValueError saying what is wrong, e.g. an unknown suffix or a stray space.
    """
    if isinstance(value, bool):  # bool is an int; True cores is a bug upstream
        raise ValueError(f"invalid Kubernetes quantity {value!r}: expected a string or number")
    if isinstance(value, Decimal):
        return _finite(value, value)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return _finite(Decimal(repr(value)), value)
    if not isinstance(value, str):
        raise ValueError(f"invalid Kubernetes quantity {value!r}: expected a string or number")
    return _parse_text(value)


@lru_cache(maxsize=4096)
def _parse_text(value: str) -> Decimal:
    """A quantity string's value, remembered: a cluster repeats a handful of them ("100m", "128Mi") across
    tens of thousands of pods, and capacity checks read every one (Decimal is immutable, so sharing is safe)."""
    if value == "":
        raise ValueError("invalid Kubernetes quantity '': empty string")
    if value != value.strip():
        raise ValueError(f"invalid Kubernetes quantity {value!r}: surrounding whitespace is not allowed")
    match = _NUMBER.fullmatch(value)
    if match is None:
        raise ValueError(
            f"invalid Kubernetes quantity {value!r}: expected a number such as 250m, 1.5Gi or 1e3"
        )
    sign, digits, suffix = match.groups()
    number = Decimal(digits)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        if suffix in _DECIMAL_SI:
            result = number.scaleb(_DECIMAL_SI[suffix])
        elif suffix in _BINARY_SI:
            result = number * (1 << _BINARY_SI[suffix])
        else:
            exp = _EXPONENT.fullmatch(suffix)
            if exp is None:
                raise ValueError(
                    f"invalid Kubernetes quantity {value!r}: unknown suffix {suffix!r} (expected {_SUFFIXES})"
                )
            power = int(exp.group(1))
            if abs(power) > _MAX_EXPONENT:
                raise ValueError(f"invalid Kubernetes quantity {value!r}: exponent {power} is out of range")
            result = number.scaleb(power)
        return -result if sign == "-" else +result


def parse_cpu(value: str | int | float | Decimal) -> float:
    """CPU quantity in cores as a float (``"250m"`` -> 0.25), for usage arithmetic."""
    return float(parse_quantity(value))


def parse_bytes(value: str | int | float | Decimal) -> int:
    """Memory/storage quantity in whole bytes, rounded up as the API server does (``"1.5Ki"`` -> 1536)."""
    return math.ceil(parse_quantity(value))


def format_cpu(cores: float | Decimal) -> str:
    """Short CPU text for tables: ``250m`` under one core, ``1.5`` from one core up."""
    value = float(cores)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1:
        return _trim(f"{value:.3f}")
    millis = value * 1000
    if abs(millis) >= 10:
        return f"{round(millis)}m"
    return _trim(f"{millis:.2f}") + "m"


def format_bytes(n: float | int | Decimal) -> str:
    """Short memory text for tables in binary units: ``512Ki``, ``256Mi``, ``1.5Gi``."""
    value = float(n)
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    for suffix, shift in reversed(_BINARY_SI.items()):
        unit = float(1 << shift)
        if size >= unit:
            return _trim(f"{value / unit:.2f}") + suffix
    return _trim(f"{value:.2f}")


def _trim(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _finite(number: Decimal, original: object) -> Decimal:
    if not number.is_finite():
        raise ValueError(f"invalid Kubernetes quantity {original!r}: not a finite number")
    return number
