"""The kubelet summary capture (CRLF) gives per-pod usage from the pod cgroup, containers as fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeops.metrics.summary import SummaryParseError, parse_summary

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "kubelet" / "stats_summary.json"


def test_reads_node_and_pod_usage_from_the_crlf_capture() -> None:
    raw = CAPTURE.read_bytes()
    assert b"\r\n" in raw
    node, usage = parse_summary(raw)
    assert node == "gke-lenaic-pool-1-1c8b424c-wnkn"
    assert usage.cpu_cores == pytest.approx(0.112148031)
    assert usage.memory_bytes == 1447833600
    pods = {(p.namespace, p.pod): p for p in usage.pods}
    assert len(pods) == 11
    fluentd = pods[("kube-system", "fluentd-gcp-v2.0.10-9q9t4")]
    assert fluentd.uid == "2edfd4d9-10ce-11e8-bd5a-42010af00137"
    assert fluentd.memory_bytes == 124628992  # the pod cgroup, not containers 86441984 + 27553792 + 9662464
    assert fluentd.cpu_cores == pytest.approx(0.031039055)
    assert [c.container for c in fluentd.containers] == ["agent", "process-agent", "trace-agent"]
    assert fluentd.containers[0].memory_bytes == 86441984


@pytest.mark.parametrize(
    ("body", "message"),
    [("{", "not JSON"), ("[]", "no 'node' object"), ('{"node": {}, "pods": [{"podRef": {}}]}', "pods[0]")],
)
def test_malformed_summary_is_a_clear_error(body: str, message: str) -> None:
    with pytest.raises(SummaryParseError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_summary(body)
