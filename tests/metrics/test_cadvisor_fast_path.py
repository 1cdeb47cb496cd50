"""The parser's fast path for canonical lines gives exactly what the full grammar gives, and never accepts a line
the grammar refuses (those go through the grammar, which names what is wrong)."""

from __future__ import annotations

import pytest

from kubeops.metrics.cadvisor import _REST, CadvisorParseError, parse_line

NAME = "container_cpu_usage_seconds_total"


def full_grammar(text: str) -> tuple[dict[str, str], float, int | None] | None:
    match = _REST.fullmatch(text, len(NAME))
    if match is None:
        return None
    label_text, value, ts = match.groups()
    from kubeops.metrics.cadvisor import _PAIR

    return dict(_PAIR.findall(label_text or "")), float(value), int(ts) if ts else None


@pytest.mark.parametrize("rest", [
    '{container="app",id="/kubepods/pod1",namespace="web",pod="p"} 12.5 1700000000000',
    '{container="app",id="/kubepods/pod1"} 12.5',
    '{cpu="total",id="/"} 1e3 -5',
    '{a="x"} NaN',
    '{a="x y} z",b="w"} 1',  # "} " inside a value
    '{a="x"} +Inf 17',
])
def test_canonical_lines_match_the_full_grammar(rest: str) -> None:
    name, labels, value, ts = parse_line(NAME + rest, line=3)
    expected = full_grammar(NAME + rest)
    assert expected is not None and name == NAME
    assert (labels, ts) == (expected[0], expected[2])
    assert value == expected[1] or (value != value and expected[1] != expected[1])  # NaN


@pytest.mark.parametrize("rest", [
    '{xa="1"b="2"} 1',  # no comma between labels
    '{a="1",,b="2"} 1',
    '{a="1"} 1 2 3',
    '{a="1"} one',
    '{a="1"} 1 17.5',  # a timestamp is an integer
    '{a="1" 1',
])
def test_lines_the_grammar_refuses_are_refused_with_the_line_number(rest: str) -> None:
    with pytest.raises(CadvisorParseError, match="line 7"):
        parse_line(NAME + rest, line=7)


def test_escapes_and_spaces_go_through_the_full_grammar() -> None:
    _, labels, value, _ = parse_line(NAME + '{a="say \\"hi\\"", b="2",} 3', line=1)
    assert labels == {"a": 'say "hi"', "b": "2"} and value == 3.0
