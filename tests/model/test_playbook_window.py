"""A playbook's own `window:`: loaded with the inventory's rules, part of the content hash, carried from includes,
described by the JSON Schema; a bad field is refused naming the playbook file, line and field."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import jsonschema
import pytest

from kubeops.errors import PlaybookError
from kubeops.model.loader import load_playbook
from kubeops.model.schema import base_schema
from kubeops.yamlsource import load_yaml
from tests.engine.toy_actions import make_registry

STEPS = "steps:\n  - {name: a, action: noop}\n"


def _write(tmp_path: Path, text: str, name: str = "pb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _window(body: str) -> str:
    return f"name: t\nwindow:\n{body}{STEPS}"


def test_the_window_is_loaded_with_the_inventory_rules(tmp_path: Path) -> None:
    path = _write(tmp_path, _window('  days: [fri-mon]\n  start: "22:00"\n  end: "04:00"\n  timezone: Europe/Berlin\n'))
    (window,) = load_playbook(path, registry=make_registry()).windows
    assert window.days == frozenset({4, 5, 6, 0})  # fri-mon wraps
    assert (window.start, window.end, window.timezone) == (time(22), time(4), "Europe/Berlin")
    assert window.crosses_midnight()


def test_no_window_or_a_null_one_means_none(tmp_path: Path) -> None:
    assert load_playbook(_write(tmp_path, f"name: t\n{STEPS}"), registry=make_registry()).windows == ()
    assert load_playbook(_write(tmp_path, f"name: t\nwindow:\n{STEPS}"), registry=make_registry()).windows == ()


def test_the_window_is_part_of_the_content_hash(tmp_path: Path) -> None:
    def digest(start: str) -> str:
        text = _window(f'  start: "{start}"\n  end: "04:00"\n')
        return load_playbook(_write(tmp_path, text), registry=make_registry()).content_hash

    plain = load_playbook(_write(tmp_path, f"name: t\n{STEPS}"), registry=make_registry()).content_hash
    assert digest("22:00") == digest("22:00")
    assert len({digest("22:00"), digest("23:00"), plain}) == 3


def test_an_included_playbooks_window_binds_the_including_run_too(tmp_path: Path) -> None:
    _write(tmp_path, _window('  days: [sat]\n'), name="inner.yaml")
    outer = _write(
        tmp_path,
        'name: outer\nwindow:\n  start: "01:00"\n  end: "05:00"\nsteps:\n  - {name: in, include: inner.yaml}\n',
    )
    pb = load_playbook(outer, registry=make_registry())
    assert [w.describe() for w in pb.windows] == ["every day 01:00-05:00 UTC", "sat 00:00-00:00 UTC"]


@pytest.mark.parametrize(
    ("body", "line", "field", "fragment"),
    [
        ('  start: "22:00"\n  end: "04:00"\n  timezone: Europe/Berlinn\n', 5, "window.timezone", "Europe/Berlinn"),
        ("  days: [mon, someday]\n", 3, "window.days", "unknown day 'someday'"),
        ('  start: 22:00\n  end: "04:00"\n', 3, "window.start", 'quoted time like "22:00"'),
        ('  start: "25:00"\n  end: "04:00"\n', 3, "window.start", "must be a time"),
        ('  start: "22:00"\n', 2, "window.end", "start and end go together"),
        ('  begin: "22:00"\n', 3, "window.begin", "unknown field"),
        ("  days: 3\n", 3, "window.days", "must be a list of days"),
    ],
)
def test_a_bad_window_field_names_the_playbook_file_line_and_field(
    tmp_path: Path, body: str, line: int, field: str, fragment: str
) -> None:
    path = _write(tmp_path, _window(body))
    with pytest.raises(PlaybookError) as err:
        load_playbook(path, registry=make_registry())
    assert (err.value.path, err.value.line, err.value.field) == (str(path), line, field)
    assert fragment in err.value.message


def test_a_window_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError) as err:
        load_playbook(_write(tmp_path, f"name: t\nwindow: nightly\n{STEPS}"), registry=make_registry())
    assert (err.value.line, err.value.field) == (2, "window")


def test_the_schema_describes_the_window(tmp_path: Path) -> None:
    schema = base_schema()
    good = load_yaml(_write(tmp_path, _window('  days: [mon-fri]\n  start: "22:00"\n  end: "04:00"\n'))).data
    jsonschema.validate(good, schema)
    for bad in ({"start": 1320, "end": "04:00"}, {"start": "22:00"}, {"dayz": ["mon"]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**good, "window": bad}, schema)
