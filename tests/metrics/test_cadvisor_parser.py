"""The cAdvisor parser reads the numbers a kubelet really sends, and refuses garbage with a line number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubeops.metrics.cadvisor import CPU_METRIC, MEMORY_METRIC, CadvisorParseError, parse_cadvisor

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
UPSTREAM = FIXTURES / "cadvisor" / "prometheus_metrics"
GKE = FIXTURES / "kubelet" / "cadvisor_metrics.txt"
FLUENTD_APP = (
    "/kubepods/burstable/pod2edfd4d9-10ce-11e8-bd5a-42010af00137/"
    "5741ed2471c0e458b6b95db40ba05d1a5ee168256638a0264f08703e48d76561"
)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class TestUpstreamGoldenFile:
    def test_sums_the_per_cpu_counters_of_the_test_container(self) -> None:
        scrape = parse_cadvisor(UPSTREAM.read_bytes())
        cg = scrape.cgroups["testcontainer"]
        assert cg._cpu_per_cpu == {"cpu00": 2e-09, "cpu01": 3e-09, "cpu02": 4e-09, "cpu03": 5e-09}
        assert cg.cpu_seconds == pytest.approx(1.4e-08, rel=1e-12)
        assert cg.memory_working_set_bytes == 9
        assert cg.timestamp_ms == 1395066363000
        assert (cg.image, cg.name) == ("test", "testcontaineralias")
        assert cg.kind == "other"  # standalone cAdvisor: no pod labels at all

    def test_ignores_lookalike_families_sharing_the_prefix(self) -> None:
        scrape = parse_cadvisor((FIXTURES / "cadvisor" / "prometheus_metrics_whitelist_filtered").read_bytes())
        assert scrape.series == 5  # 4 per-CPU counters + 1 working set; `workingset_refault_*` skipped
        assert scrape.cgroups["testcontainer"].memory_working_set_bytes == 9

    def test_scrape_error_file_parses_to_nothing(self) -> None:
        scrape = parse_cadvisor((FIXTURES / "cadvisor" / "prometheus_metrics_failure").read_bytes())
        assert scrape.cgroups == {}
        assert scrape.lines == 3


class TestGkeCapture:
    def test_reads_old_label_names_and_per_cpu_counters(self) -> None:
        scrape = parse_cadvisor(GKE.read_bytes())
        app = scrape.cgroups[FLUENTD_APP]
        assert (app.namespace, app.pod, app.container) == (
            "kube-system",
            "fluentd-gcp-v2.0.10-9q9t4",
            "fluentd-gcp",
        )
        assert app.cpu_seconds == pytest.approx(1228.32 + 825.32)
        assert app.memory_working_set_bytes == 129007616
        assert scrape.cgroups["/"].memory_working_set_bytes == 964743168
        assert scrape.cgroups["/"].cpu_seconds == pytest.approx(11155.288817375)
        assert scrape.lines == 3319

    def test_unescapes_backslashes_in_cgroup_ids(self) -> None:
        scrape = parse_cadvisor(GKE.read_bytes())
        cg = scrape.cgroups["/system.slice/system-serial\\x2dgetty.slice"]
        assert cg.memory_working_set_bytes == 172032

    def test_classifies_every_kind_of_cgroup(self) -> None:
        kinds: dict[str, int] = {}
        for cg in parse_cadvisor(GKE.read_bytes()).cgroups.values():
            kinds[cg.kind] = kinds.get(cg.kind, 0) + 1
        assert kinds == {"root": 1, "pod": 5, "pause": 5, "container": 6, "other": 55}

    @pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20])
    def test_streaming_in_any_chunk_size_gives_the_same_result(self, size: int) -> None:
        data = GKE.read_bytes()
        whole = parse_cadvisor(data)
        streamed = parse_cadvisor(chunked(data, size) if size > 1 else chunked(data[:60000], 1))
        if size == 1:
            whole = parse_cadvisor(data[:60000])
        assert streamed.cgroups == whole.cgroups
        assert streamed.lines == whole.lines

    def test_agrees_with_prometheus_client_on_every_kept_sample(self) -> None:
        parser = pytest.importorskip("prometheus_client.parser")
        text = GKE.read_text()
        theirs: dict[tuple[str, str, str], float] = {}
        for family in parser.text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in (CPU_METRIC, MEMORY_METRIC):
                    theirs[(sample.name, sample.labels["id"], sample.labels.get("cpu", ""))] = sample.value
        ours: dict[tuple[str, str, str], float] = {}
        for cg in parse_cadvisor(text).cgroups.values():
            for cpu, value in cg._cpu_per_cpu.items():
                ours[(CPU_METRIC, cg.id, cpu)] = value
            if cg.memory_working_set_bytes is not None:
                ours[(MEMORY_METRIC, cg.id, "")] = cg.memory_working_set_bytes
        assert len(ours) == 117
        assert ours == theirs


MODERN = """\
# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="",cpu="total",id="/",image="",pod=""} 100.5 1700000000000
container_cpu_usage_seconds_total{container="app",id="/a/b",image="x",namespace="ns",pod="p\\"q\\\\r\\nz"} 1.5e+01
container_cpu_usage_seconds_total{ container = "app" , id = "/spaced" , } +Inf
container_memory_working_set_bytes{id="/nan"} NaN
container_memory_working_set_bytes{id="/neg"} -Inf
container_memory_working_set_bytes{id="/exp"} 1.5E3
container_memory_working_set_bytes{id="/int"} 42 -5
container_memory_working_set_bytes 7
"""


def test_handles_escapes_spacing_special_values_timestamps_and_no_labels() -> None:
    scrape = parse_cadvisor(MODERN)
    assert scrape.cgroups["/"].cpu_seconds == 100.5
    assert scrape.cgroups["/"].timestamp_ms == 1700000000000
    assert scrape.cgroups["/a/b"].pod == 'p"q\\r\nz'
    assert scrape.cgroups["/a/b"].cpu_seconds == 15.0
    assert scrape.cgroups["/spaced"].cpu_seconds == float("inf")
    assert scrape.cgroups["/spaced"].container == "app"
    nan = scrape.cgroups["/nan"].memory_working_set_bytes
    assert nan is not None and nan != nan
    assert scrape.cgroups["/neg"].memory_working_set_bytes == float("-inf")
    assert scrape.cgroups["/exp"].memory_working_set_bytes == 1500.0
    assert scrape.cgroups["/int"].timestamp_ms == -5
    assert scrape.series == 8
    assert sum(1 for cg in scrape.cgroups.values() if cg.memory_working_set_bytes == 7) == 1


def test_crlf_line_endings_are_accepted() -> None:
    scrape = parse_cadvisor('container_memory_working_set_bytes{id="/x"} 5\r\n')
    assert scrape.cgroups["/x"].memory_working_set_bytes == 5


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ('# ok\ncontainer_memory_working_set_bytes{id="/x" 5\n', 2, "malformed sample"),
        ('\n\ncontainer_memory_working_set_bytes{id="/x"} five\n', 3, "'five' of container_memory"),
        ('container_cpu_usage_seconds_total{id="/x"} 1_000\n', 1, "is not a number"),
        ('container_cpu_usage_seconds_total{id="/x} 1\n', 1, "malformed sample"),
        ('container_cpu_usage_seconds_total{id=/x} 1\n', 1, "malformed sample"),
        ('container_cpu_usage_seconds_total{id="/x"}\n', 1, "malformed sample"),
        ('container_cpu_usage_seconds_total{id="/x"} 1 2 3\n', 1, "malformed sample"),
        ('container_cpu_usage_seconds_total{id="/x"} 1 1.5\n', 1, "malformed sample"),
        ("a 1\n" * 10 + 'container_memory_working_set_bytes{id="/x"} 1\ncontainer_memory_working_set_bytes{id=', 12,
         "malformed sample"),
        ("<html><body>403 Forbidden</body></html>", 1, "looks like HTML"),
        ('{"kind": "Status"}', 1, "looks like JSON"),
    ],
)
def test_malformed_kept_lines_raise_with_their_line_number(body: str, line: int, reason: str) -> None:
    with pytest.raises(CadvisorParseError) as info:
        parse_cadvisor(body)
    assert info.value.line == line
    assert f"line {line}:" in str(info.value)
    assert reason in str(info.value)


def test_invalid_utf8_is_a_parse_error_not_a_crash() -> None:
    with pytest.raises(CadvisorParseError, match="line 1: not valid UTF-8"):
        parse_cadvisor(b'container_memory_working_set_bytes{id="/\xff"} 1\n')


def test_line_numbers_stay_right_across_chunk_boundaries() -> None:
    body = ("x 1\n" * 5000 + 'container_memory_working_set_bytes{id="/x"} nope\n').encode()
    with pytest.raises(CadvisorParseError) as info:
        parse_cadvisor(chunked(body, 333))
    assert info.value.line == 5001


def test_lines_of_other_families_are_not_validated() -> None:
    """The point of the prefix filter: a broken line we do not need cannot fail the scrape."""
    scrape = parse_cadvisor('machine_cpu_cores{{{ broken\ncontainer_memory_working_set_bytes{id="/x"} 3\n')
    assert scrape.cgroups["/x"].memory_working_set_bytes == 3


def test_gke_memory_matches_a_line_by_line_reading() -> None:
    """Every working-set line of the capture, read naively line by line, matches the streaming parser."""
    text = GKE.read_text()
    expected = {}
    for raw in text.splitlines():
        if raw.startswith(MEMORY_METRIC + "{"):
            cgroup_id = re.search(r'[{,]id="((?:[^"\\]|\\.)*)"', raw).group(1).replace("\\\\", "\\")  # type: ignore[union-attr]
            expected[cgroup_id] = float(raw.rsplit(" ", 1)[1])
    scrape = parse_cadvisor(text)
    got = {cg.id: cg.memory_working_set_bytes for cg in scrape.cgroups.values()}
    assert got == expected
    assert len(expected) == 72
