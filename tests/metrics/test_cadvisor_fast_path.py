"""The parser's fast path for canonical lines gives exactly what the full grammar gives, and never accepts a line
the grammar refuses (those go through the grammar, which names what is wrong)."""

from __future__ import annotations

import pytest

from kubeops.metrics.cadvisor import _REST, CadvisorParseError, _parse_canonical, parse_cadvisor, parse_line

NAME = "container_cpu_usage_seconds_total"
MEMORY = "container_memory_working_set_bytes"


def full_grammar(text: str) -> tuple[dict[str, str], float, int | None] | None:
    match = _REST.fullmatch(text, len(NAME))
    if match is None:
        return None
    label_text, value, ts = match.groups()
    from kubeops.metrics.cadvisor import _PAIR

    return dict(_PAIR.findall(label_text or "")), float(value), int(ts) if ts else None


def same(a: tuple[dict[str, str], float, int | None], b: tuple[dict[str, str], float, int | None]) -> bool:
    return (a[0], a[2]) == (b[0], b[2]) and (a[1] == b[1] or (a[1] != a[1] and b[1] != b[1]))  # NaN


CANONICAL = [
    '{container="app",id="/kubepods/pod1",namespace="web",pod="p"} 12.5 1700000000000',
    '{container="app",id="/kubepods/pod1"} 12.5',
    '{cpu="total",id="/"} 1e3 -5',
    '{a="x"} NaN',
    '{a="x"} +Inf 17',
    '{a="x,y=z"} 2',  # separators inside a value
]


@pytest.mark.parametrize("rest", CANONICAL)
def test_canonical_lines_take_the_fast_path_and_match_the_full_grammar(rest: str) -> None:
    fast = _parse_canonical((NAME + rest).encode(), len(NAME))
    expected = full_grammar(NAME + rest)
    assert fast is not None and expected is not None
    assert same(fast, expected)


@pytest.mark.parametrize("rest", [
    '{a="x y} z",b="w"} 1',  # "} " inside a value
    '{a="say \\"hi\\"", b="2",} 3',  # escapes, a space, a trailing comma
    '{a="1"}\t1',
    '{} 1',
    '{a="1"} 1 17\r',
])
def test_other_valid_lines_fall_back_to_the_grammar_with_the_same_result(rest: str) -> None:
    assert _parse_canonical((NAME + rest).encode(), len(NAME)) is None
    (cgroup,) = parse_cadvisor(NAME + rest + "\n").cgroups.values()
    name, _, value, ts = parse_line(NAME + rest)
    assert name == NAME and cgroup.cpu_seconds == value and cgroup.timestamp_ms == ts


@pytest.mark.parametrize("rest", [
    '{xa="1"b="2"} 1',  # no comma between labels
    '{a="1",,b="2"} 1',
    '{a="1"} 1 2 3',
    '{a="1"} one',
    '{a="1"} 1 17.5',  # a timestamp is an integer
    '{a="1"} 1_000',  # Python's float() would take it; Prometheus does not
    '{a="1" 1',
    '{a=1} 1',
    '{1a="1"} 1',
])
def test_lines_the_grammar_refuses_are_refused_with_the_line_number(rest: str) -> None:
    assert _parse_canonical((NAME + rest).encode(), len(NAME)) is None
    body = "# HELP x y\n" * 6 + NAME + rest + "\n"
    with pytest.raises(CadvisorParseError, match="line 7"):
        parse_cadvisor(body)


def test_a_first_scrape_can_keep_the_cpu_counters_alone() -> None:
    body = (f'{NAME}{{id="/a",pod="p"}} 4 1000\n{MEMORY}{{id="/a",pod="p"}} 300 1000\n'
            f'{MEMORY}{{id="/b",pod="q"}} 100 1000\n')
    full, cpu_only = parse_cadvisor(body), parse_cadvisor(body, memory=False)
    assert set(full.cgroups) == {"/a", "/b"} and full.cgroups["/a"].memory_working_set_bytes == 300
    assert set(cpu_only.cgroups) == {"/a"}
    assert cpu_only.cgroups["/a"].cpu_seconds == 4 and cpu_only.cgroups["/a"].memory_working_set_bytes is None
