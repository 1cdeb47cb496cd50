"""Maintenance windows: is a given instant inside one? Pure logic (no clock is read here; callers pass `now`).

A window is a set of days, a local start and end time, and an IANA time zone::

    window: {days: [mon-fri], start: "22:00", end: "04:00", timezone: Europe/Berlin}

Rules, chosen so a run never operates when a human would say the window is shut:
- `days` name the day a window *opens*: ``mon 22:00-04:00`` covers Monday 22:00 to Tuesday 04:00. Days are
  ``mon``..``sun`` (or full names), ranges like ``mon-fri`` (``fri-mon`` wraps); no days means every day;
- ``end <= start`` means the window crosses midnight (``start == end`` is a full 24 hours); no start and end
  means whole days;
- the window is ``[opening, closing)`` in real time, where opening/closing are the first instants the local
  wall clock shows `start`/`end` on that day:
  - a time that does not exist that day (the hour skipped when clocks go forward) is taken as the moment the
    clocks jump, e.g. ``02:30`` on a spring-forward night in Europe/Berlin opens (or closes) at 03:00 CEST;
  - a time that exists twice (the hour repeated when clocks go back) is its first occurrence, so the window
    opens as early and closes as early as the wall clock allows: a window never outlasts the wall-clock
    reading of its end (``00:00-02:30`` closes at the first 02:30, not after the repeat);
  hence a window spanning a DST change is an hour shorter or longer in real time than on other days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = {
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri",
    "saturday": "sat", "sunday": "sun",
}


class WindowError(ValueError):
    """A window field is invalid; `field` names it (days, start, end, timezone)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _day(token: str) -> int:
    name = token.strip().lower()
    name = _FULL.get(name, name)
    if name not in DAY_NAMES:
        raise WindowError("days", f"unknown day {token!r}; use mon, tue, wed, thu, fri, sat, sun or a range mon-fri")
    return DAY_NAMES.index(name)


def parse_days(values: tuple[str, ...] | list[str]) -> frozenset[int]:
    """``["mon-fri", "sun"]`` -> weekday numbers (Monday = 0); empty -> every day."""
    days: set[int] = set()
    for value in values:
        for part in str(value).split(","):
            if not part.strip():
                continue
            first, sep, last = part.partition("-")
            if not sep:
                days.add(_day(first))
                continue
            a, b = _day(first), _day(last)
            i = a
            while True:
                days.add(i)
                if i == b:
                    break
                i = (i + 1) % 7
    return frozenset(days or range(7))


def parse_time(value: str | None, field: str) -> time | None:
    """``"22:00"`` (or ``"22:00:30"``) -> time; ``"24:00"`` is accepted as an end-of-day midnight."""
    if value is None:
        return None
    text = str(value).strip()
    if text == "24:00":
        return time(0, 0)
    try:
        parts = [int(p) for p in text.split(":")]
        if len(parts) not in (2, 3):
            raise ValueError(text)
        return time(*parts)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise WindowError(field, f"must be a time like 22:00, got {value!r}") from None


@dataclass(frozen=True, slots=True)
class Window:
    """A weekly maintenance window in a time zone."""

    days: frozenset[int]
    start: time
    end: time
    timezone: str

    @classmethod
    def parse(cls, *, days: tuple[str, ...] | list[str], start: str | None, end: str | None, timezone: str) -> Window:
        """Validate the raw fields (WindowError names the bad one)."""
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            message = f"unknown time zone {timezone!r}; use an IANA name like Europe/Berlin"
            raise WindowError("timezone", message) from None
        begin = parse_time(start, "start")
        finish = parse_time(end, "end")
        if (begin is None) != (finish is None):
            missing = "end" if finish is None else "start"
            raise WindowError(missing, "start and end go together (leave both out for whole days)")
        return cls(days=parse_days(days), start=begin or time(0), end=finish or time(0), timezone=timezone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        """``mon,tue,wed,thu,fri 22:00-04:00 Europe/Berlin``."""
        days = "every day" if len(self.days) == 7 else ",".join(DAY_NAMES[d] for d in sorted(self.days))
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"

    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def span(self, day: date) -> tuple[datetime, datetime]:
        """The real-time interval [opening, closing) of the window that opens on local date `day`."""
        zone = self.zone
        end_day = day + timedelta(days=1) if self.crosses_midnight() else day
        return first_instant(day, self.start, zone), first_instant(end_day, self.end, zone)

    def contains(self, now: datetime) -> bool:
        """Whether the aware instant `now` lies inside an occurrence of the window."""
        return self.current(now) is not None

    def current(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence containing `now`, or None."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        moment = now.astimezone(UTC)
        local_day = moment.astimezone(self.zone).date()
        for day in (local_day - timedelta(days=1), local_day):
            if day.weekday() not in self.days:
                continue
            opening, closing = self.span(day)
            if opening <= moment < closing:
                return opening, closing
        return None

    def next_opening(self, now: datetime) -> datetime | None:
        """The first opening after `now` (within two weeks), for "outside window" messages."""
        moment = now.astimezone(UTC)
        local_day = moment.astimezone(self.zone).date()
        for offset in range(0, 15):
            day = local_day + timedelta(days=offset)
            if day.weekday() in self.days:
                opening, closing = self.span(day)
                if opening > moment and closing > opening:
                    return opening
        return None

    def outside_message(self, now: datetime, *, origin: str = "", others: Sequence[Window] = ()) -> str:
        """Why a run may not start now, with the next opening in the window's own time zone; `origin` says where
        the window was set (``playbook drain-node``); with `others` (windows that must be open too) the opening
        is the next time all of them are open together."""
        where = f" (set in {origin})" if origin else ""
        if others:
            nxt = next_opening_of_all([self, *others], now)
            when = "; the windows are not open together in the next two weeks"
            if nxt:
                when = f"; next open together {nxt.astimezone(self.zone).isoformat(timespec='minutes')}"
        else:
            nxt = self.next_opening(now)
            when = f"; next opens {nxt.astimezone(self.zone).isoformat(timespec='minutes')}" if nxt else ""
        return f"maintenance window {self.describe()}{where} is closed{when}"

    def canonical(self) -> dict[str, object]:
        """The window's meaning, for a playbook's content hash."""
        return {
            "days": sorted(self.days),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "timezone": self.timezone,
        }


def first_instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The first UTC instant the wall clock in `zone` shows `clock` on `day` (gap: when the clocks jump)."""
    naive = datetime.combine(day, clock)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first  # exists; fold=0 is the first occurrence when it exists twice
    # in the gap: fold=1 reads it with the offset in force before the jump, an instant before the transition
    probe = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    probe = min(probe, first)
    step = timedelta(minutes=1)
    while probe.astimezone(zone).replace(tzinfo=None) < naive:
        probe += step
    # refine to the second: transitions sit on whole minutes today, but historical ones need not
    back = probe - step
    while back.astimezone(zone).replace(tzinfo=None) < naive and back < probe:
        back += timedelta(seconds=1)
    return back


def next_opening_of_all(windows: Sequence[Window], now: datetime) -> datetime | None:
    """The first instant after `now` (within two weeks) when every window is open at once, or None.

    The common time of several windows starts where one of them opens, so only their openings are candidates.
    """
    candidates: set[datetime] = set()
    moment = now.astimezone(UTC)
    for window in windows:
        local_day = moment.astimezone(window.zone).date()
        for offset in range(-1, 15):
            day = local_day + timedelta(days=offset)
            if day.weekday() in window.days:
                opening, closing = window.span(day)
                if opening > moment and closing > opening:
                    candidates.add(opening)
    return next((c for c in sorted(candidates) if all(w.contains(c) for w in windows)), None)
