"""Prometheus textfile: valid exposition format, one entry per playbook kept across runs, atomic replacement."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from kubeops.engine.textfile import TextfileWriter


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_each_playbook_keeps_its_last_run_and_last_success(tmp_path: Path) -> None:
    writer = TextfileWriter(tmp_path, cluster="prod-eu")
    writer.record(playbook="drain-node", status="done", finished_s=1_700_000_000.5, duration_s=12.25)
    writer.record(playbook="scale-up", status="failed", finished_s=1_700_000_100, duration_s=3)
    writer.record(playbook="drain-node", status="failed", finished_s=1_700_000_200, duration_s=1)
    samples = _samples(tmp_path / "kubeops_prod-eu.prom")
    drain = (("cluster", "prod-eu"), ("playbook", "drain-node"))
    scale = (("cluster", "prod-eu"), ("playbook", "scale-up"))
    assert samples[("kubeops_last_run_timestamp_seconds", drain)] == 1_700_000_200
    assert samples[("kubeops_last_run_duration_seconds", drain)] == 1
    assert samples[("kubeops_last_run_success", drain)] == 0
    assert samples[("kubeops_last_success_timestamp_seconds", drain)] == 1_700_000_000.5  # still the old success
    assert ("kubeops_last_success_timestamp_seconds", scale) not in samples  # never succeeded
    assert samples[("kubeops_last_run_status", (*drain, ("status", "failed")))] == 1
    assert samples[("kubeops_last_run_status", (*drain, ("status", "done")))] == 0
    assert samples[("kubeops_last_run_timestamp_seconds", scale)] == 1_700_000_100


def test_only_the_prom_file_is_visible_to_the_collector_and_no_temp_files_remain(tmp_path: Path) -> None:
    writer = TextfileWriter(tmp_path / "metrics", cluster="a/b")
    for i in range(5):
        writer.record(playbook="p", status="done", finished_s=float(i), duration_s=0.1)
    names = sorted(p.name for p in (tmp_path / "metrics").iterdir())
    assert [n for n in names if n.endswith(".prom")] == ["kubeops_a_b.prom"]
    assert not [n for n in names if n.endswith(".tmp")]
    assert (tmp_path / "metrics" / "kubeops_a_b.prom").stat().st_mode & 0o444 == 0o444


def test_label_values_are_escaped(tmp_path: Path) -> None:
    writer = TextfileWriter(tmp_path, cluster='we"ird')
    writer.record(playbook="p\\q", status="paused", finished_s=1, duration_s=1)
    samples = _samples(tmp_path / "kubeops_we_ird.prom")
    assert samples[("kubeops_last_run_success", (("cluster", 'we"ird'), ("playbook", "p\\q")))] == 0
