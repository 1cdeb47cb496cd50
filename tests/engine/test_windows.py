"""Maintenance windows (pure): days, crossing midnight, time zones, DST gaps and repeats, bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kubeops.model.windows import Window, WindowError, parse_days

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str, zone: ZoneInfo = BERLIN, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold)


def window(days: list[str], start: str | None, end: str | None, tz: str = "Europe/Berlin") -> Window:
    return Window.parse(days=days, start=start, end=end, timezone=tz)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        ("2026-03-02T22:00", True),  # Monday, opening instant
        ("2026-03-02T21:59", False),
        ("2026-03-03T02:00", True),  # Tuesday 02:00 belongs to Monday's window
        ("2026-03-03T03:59", True),
        ("2026-03-03T04:00", False),  # closing instant is outside
        ("2026-03-03T23:00", False),  # Tuesday's own night: not a window day
        ("2026-03-08T23:00", False),  # Sunday
    ],
)
def test_a_window_crossing_midnight_belongs_to_the_day_it_opens(moment: str, inside: bool) -> None:
    assert window(["mon"], "22:00", "04:00").contains(at(moment)) is inside


def test_plain_daytime_window_on_weekdays_in_another_zone() -> None:
    w = window(["mon-fri"], "09:00", "17:00", "America/New_York")
    assert w.contains(at("2026-03-04T12:00", NEW_YORK))
    assert not w.contains(at("2026-03-07T12:00", NEW_YORK))  # Saturday
    # 15:00 UTC is 10:00 in New York (EST): inside, although it is 16:00 in Berlin
    assert w.contains(datetime(2026, 3, 4, 15, 0, tzinfo=UTC))
    assert not w.contains(datetime(2026, 3, 4, 13, 0, tzinfo=UTC))  # 08:00 in New York


def test_days_ranges_wrap_and_full_names_are_accepted() -> None:
    assert parse_days(["fri-mon"]) == {4, 5, 6, 0}
    assert parse_days(["Monday", "wed"]) == {0, 2}
    assert parse_days([]) == set(range(7))
    assert parse_days(["sat,sun"]) == {5, 6}


def test_no_times_means_whole_days_and_equal_times_mean_24_hours() -> None:
    whole = window(["sat", "sun"], None, None)
    assert whole.contains(at("2026-03-07T00:00")) and whole.contains(at("2026-03-08T23:59"))
    assert not whole.contains(at("2026-03-09T00:00"))
    day = window(["sat"], "06:00", "06:00")
    assert day.contains(at("2026-03-08T05:59")) and not day.contains(at("2026-03-08T06:00"))


def test_spring_forward_gap_opens_when_the_clocks_jump() -> None:
    # Europe/Berlin 2026-03-29: 02:00 CET -> 03:00 CEST; 02:30 does not exist that night
    w = window([], "02:30", "05:00")
    opening, closing = w.span(datetime(2026, 3, 29).date())
    assert opening == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, the jump
    assert closing == datetime(2026, 3, 29, 3, 0, tzinfo=UTC)  # 05:00 CEST
    assert not w.contains(datetime(2026, 3, 29, 0, 59, tzinfo=UTC))  # 01:59 CET
    assert w.contains(datetime(2026, 3, 29, 1, 0, tzinfo=UTC))


def test_fall_back_repeat_uses_the_first_occurrence_so_the_window_never_overruns() -> None:
    # Europe/Berlin 2026-10-25: 03:00 CEST -> 02:00 CET; 02:00-03:00 happens twice
    w = window([], "00:00", "02:30")
    first_0230 = at("2026-10-25T02:30", fold=0)
    second_0215 = at("2026-10-25T02:15", fold=1)
    assert w.contains(at("2026-10-25T02:15", fold=0))
    assert not w.contains(first_0230)
    assert not w.contains(second_0215)  # the wall clock reads 02:15 again, but the window closed at the first 02:30
    opening = window([], "02:30", "04:00").span(datetime(2026, 10, 25).date())[0]
    assert opening == first_0230.astimezone(UTC)  # opens at the first 02:30 (CEST)


def test_a_window_spanning_the_fall_back_lasts_an_hour_longer() -> None:
    opening, closing = window([], "01:00", "05:00", "America/New_York").span(datetime(2026, 11, 1).date())
    assert (closing - opening).total_seconds() == 5 * 3600


def test_outside_message_names_the_window_and_the_next_opening() -> None:
    w = window(["mon-fri"], "22:00", "04:00")
    text = w.outside_message(at("2026-03-07T12:00"))  # Saturday noon
    assert text == (
        "maintenance window mon,tue,wed,thu,fri 22:00-04:00 Europe/Berlin is closed; next opens 2026-03-09T22:00+01:00"
    )


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"days": ["mon"], "start": "22:00", "end": "04:00", "timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus"),
        ({"days": ["funday"], "start": "22:00", "end": "04:00", "timezone": "UTC"}, "days", "funday"),
        ({"days": [], "start": "25:00", "end": "04:00", "timezone": "UTC"}, "start", "25:00"),
        ({"days": [], "start": "22h", "end": "04:00", "timezone": "UTC"}, "start", "22h"),
        ({"days": [], "start": "22:00", "end": None, "timezone": "UTC"}, "end", "go together"),
    ],
)
def test_bad_fields_are_named(kwargs: dict, field: str, fragment: str) -> None:
    with pytest.raises(WindowError) as caught:
        Window.parse(**kwargs)
    assert caught.value.field == field and fragment in str(caught.value)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window([], "01:00", "02:00").contains(datetime(2026, 1, 1, 1, 30))
