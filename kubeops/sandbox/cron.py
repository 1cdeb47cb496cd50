"""Cron schedules as the CronJob controller reads them: five fields, or a ``@daily``-style descriptor (pure).

Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC), day of week (0-6, 7 is Sunday
too, or SUN-SAT); each a ``*``, ``?``, value, ``a-b`` range or comma list, with an optional ``/step``. As in cron,
when both day fields are restricted a day matches either of them. ``TZ=``/``CRON_TZ=`` prefixes are refused: a
CronJob names its zone in ``spec.timeZone``. Parse errors read like the ones kube-apiserver returns.

Why our own: the sandbox needs "the next run after t" (to arm one timer per CronJob) and the API server's
validation text, both small; a dependency would bring neither message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "Schedule", "as_zone", "parse_schedule", "zone"]

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                                       "DEC"), start=1)}
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}), ("month", 1, 12, _MONTHS),
           ("day of week", 0, 7, _DAYS))
_SEARCH_YEARS = 5  # "30 2 30 2 *" (February 30th) never comes: give up after this many years, as cron does


class CronError(ValueError):
    """A schedule the API server would refuse; the message is the one it gives."""


@dataclass(frozen=True, slots=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month given as * or ?
    any_weekday: bool
    every: timedelta | None = None  # "@every 90m": a fixed delay instead of the fields

    def _day_matches(self, day: datetime) -> bool:
        dom, dow = day.day in self.days, (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, when: datetime) -> datetime | None:
        """The first minute strictly after `when` that the schedule fires, in `when`'s zone (None: never)."""
        if self.every is not None:
            return when.replace(microsecond=0) + self.every
        t = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = when + timedelta(days=366 * _SEARCH_YEARS)
        while t <= limit:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self._day_matches(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t
        return None


def parse_schedule(text: str) -> Schedule:
    """`text` as a Schedule; CronError with the API server's words otherwise."""
    spec = text.strip()
    if "TZ" in spec:
        raise CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if spec.startswith("@every "):
        delay = _go_duration(spec[len("@every "):].strip(), spec)
        everything = frozenset[int]()
        return Schedule(everything, everything, everything, everything, everything, True, True, every=delay)
    if spec.startswith("@"):
        if spec not in _DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = _DESCRIPTORS[spec]
    parts = spec.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: [{' '.join(parts)}]")
    sets = [_field(part, *field) for part, field in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Schedule(sets[0], sets[1], sets[2], sets[3], weekdays, any_day=parts[2] in ("*", "?"),
                    any_weekday=parts[4] in ("*", "?"))


def zone(name: str | None) -> tzinfo:
    """`spec.timeZone` (None: UTC, the sandbox controller's own zone); CronError for an unknown name."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name}") from None


def _field(text: str, what: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        body, _, step_text = item.partition("/")
        step = 1
        if step_text:
            step = _value(step_text, {}, item)
            if step == 0:
                raise CronError(f"step of range should be a positive number: {item}")
        if body in ("*", "?"):
            start, end = low, high
        else:
            first, _, last = body.partition("-")
            start = _value(first, names, item)
            end = _value(last, names, item) if last else (high if step_text else start)
        if start < low or end > high:
            raise CronError(f"end of range ({end}) above maximum ({high}): {item}" if end > high
                            else f"beginning of range ({start}) below minimum ({low}): {item}")
        if start > end:
            raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {item}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _go_duration(text: str, spec: str) -> timedelta:
    """A Go duration ("1h30m", "90s"), rounded down to whole seconds and at least one, as cron's @every takes it."""
    import re

    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise CronError(f"failed to parse duration {spec}: time: invalid duration \"{text}\"")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    return timedelta(seconds=max(1, int(seconds)))


def _value(text: str, names: dict[str, int], item: str) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def as_zone(when: float, tz: tzinfo) -> datetime:
    """Epoch seconds as an aware datetime in `tz`."""
    return datetime.fromtimestamp(when, tz=tz)
