"""Cron schedules as the sandbox's CronJob controller reads them: next times and the API server's refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubeops.sandbox.cron import CronError, as_zone, parse_schedule, zone

FRIDAY_1750 = datetime(2026, 12, 4, 17, 50, tzinfo=UTC)


@pytest.mark.parametrize(("schedule", "after", "expected"), [
    ("*/15 9-17 * * MON-FRI", FRIDAY_1750, datetime(2026, 12, 7, 9, 0, tzinfo=UTC)),  # over the weekend
    ("*/15 9-17 * * 1-5", datetime(2026, 12, 4, 9, 14, tzinfo=UTC), datetime(2026, 12, 4, 9, 15, tzinfo=UTC)),
    ("@daily", FRIDAY_1750, datetime(2026, 12, 5, 0, 0, tzinfo=UTC)),
    ("@hourly", datetime(2026, 12, 4, 17, 0, tzinfo=UTC), datetime(2026, 12, 4, 18, 0, tzinfo=UTC)),  # strictly after
    ("0 0 1 JAN *", FRIDAY_1750, datetime(2027, 1, 1, tzinfo=UTC)),
    # both day fields set: the 13th OR a Friday, whichever comes first (the 13th is a Sunday)
    ("0 12 13 * FRI", FRIDAY_1750, datetime(2026, 12, 11, 12, 0, tzinfo=UTC)),
    ("0 0 * * 7", FRIDAY_1750, datetime(2026, 12, 6, tzinfo=UTC)),  # 7 is Sunday too
    ("@every 1h30m", FRIDAY_1750, datetime(2026, 12, 4, 19, 20, tzinfo=UTC)),
])
def test_next_time(schedule: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(schedule).next_after(after) == expected


def test_a_time_zone_moves_the_wall_clock_and_an_impossible_date_never_comes() -> None:
    berlin = as_zone(FRIDAY_1750.timestamp(), zone("Europe/Berlin"))  # 18:50 there
    nxt = parse_schedule("0 3 * * *").next_after(berlin)
    assert nxt is not None and nxt.isoformat() == "2026-12-05T03:00:00+01:00"
    assert parse_schedule("30 2 30 2 *").next_after(FRIDAY_1750) is None  # February 30th


@pytest.mark.parametrize(("schedule", "message"), [
    ("bad", "expected exactly 5 fields, found 1: [bad]"),
    ("61 * * * *", "end of range (61) above maximum (59): 61"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("TZ=UTC 0 0 * * *", "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("@every 5x", 'failed to parse duration @every 5x: time: invalid duration "5x"'),
])
def test_refusals_read_like_the_api_server(schedule: str, message: str) -> None:
    with pytest.raises(CronError) as refused:
        parse_schedule(schedule)
    assert str(refused.value) == message
    with pytest.raises(CronError, match="unknown time zone Mars/Olympus"):
        zone("Mars/Olympus")
