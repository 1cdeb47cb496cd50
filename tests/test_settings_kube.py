"""The inventory's `kube` section: what a typo in it says (file, line, field), before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeops.errors import InputError
from kubeops.settings import load_settings


def test_stats_source_is_read_and_a_bad_one_names_the_file_line_and_field(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "big.yaml").write_text("name: big\nkube:\n  stats_source: resource\n")
    assert load_settings("big", inventory=inventory, state_dir=tmp_path).kube.stats_source == "resource"
    assert load_settings("big", inventory=inventory, state_dir=tmp_path).kube.scrape_concurrency == 16
    (inventory / "typo.yaml").write_text("name: typo\nkube:\n  context: prod\n  stats_source: summary\n")
    with pytest.raises(InputError) as info:
        load_settings("typo", inventory=inventory, state_dir=tmp_path)
    text = str(info.value)
    assert "typo.yaml" in text and ":4" in text and "stats_source" in text
    assert "must be 'cadvisor' or 'resource', got 'summary'" in text
