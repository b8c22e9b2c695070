"""Deployment windows and blackouts: when a rollout may move traffic forward.

::

    windows:      # traffic moves forward only inside one of these (omitted: any time)
      - {days: [Mon, Tue, Wed, Thu, Fri], start: "09:00", end: "16:00", timezone: Europe/Berlin}
    blackouts:    # ... and never inside one of these
      - {start: "2026-12-20T00:00:00+01:00", end: "2027-01-04T00:00:00+01:00", reason: year-end freeze}

The models validate the spec keys; :func:`window_decision` is pure (the clock and the zone data
come in as arguments) and says whether traffic may move now, and if not, why and until when.

Windows are wall-clock times in their zone, so a 09:00 window opens at 09:00 local time on both
sides of a daylight-saving change. On the day of a change, a window opens at the first instant its
zone's clock reads ``start`` or later and closes at the first instant after that it reads ``end``
or later: a time the clocks skip (02:30 when they jump from 02:00 to 03:00) means the moment of the
jump; a time they pass twice (02:30 when they fall back from 03:00 to 02:00) means its first pass.
A window lies within one day (``end`` after ``start``; ``24:00`` is the end of the day): a window
across midnight is written as two, ``22:00-24:00`` on one day and ``00:00-06:00`` on the next.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from workflows._base import _Model, _SpecModel

__all__ = [
    "DAYS",
    "Blackout",
    "DeploymentWindow",
    "WindowDecision",
    "WindowInput",
    "describe_windows",
    "window_decision",
]

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MAX_WINDOWS = 20
MAX_BLACKOUTS = 50
"""Bounds on what one spec may list: the search below is linear in both."""
SEARCH_DAYS = 15
"""How far past now (and past each blackout's end) openings are looked for: every listed weekday
comes twice, so a window shortened to nothing by a clock change one week opens the next."""

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
Zones = Callable[[str], tzinfo]
"""The zone data: an IANA name to its ``tzinfo`` (``zoneinfo.ZoneInfo`` in the activity)."""


def _day(value: str) -> str:
    if value not in DAYS:
        raise ValueError(f"unknown day {value!r} (Mon..Sun)")
    return value


def _clock_time(value: Any) -> Any:
    """``"HH:MM"``; ``24:00`` passes here and is refused as a start below."""
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 16:00 as the base-60 number 960.
        raise ValueError(
            f'must be a quoted time "HH:MM" (YAML reads an unquoted HH:MM as a number), got {value}'
        )
    if not isinstance(value, str) or not (_TIME.match(value) or value == "24:00"):
        raise ValueError(f'must be a time "HH:MM" (00:00..24:00), got {value!r}')
    return value


def _zone_name(value: str) -> str:
    # Only whether the name exists is decided here, in the workflow (zoneinfo reads the zone's file
    # once per process; Temporal's sandbox allows it). IANA never removes a name (old ones stay as
    # links), so a replay on a worker with newer tzdata decides the same. What the zone's clock
    # reads is asked of the ``deployment_window`` activity, whose answer history keeps.
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown IANA time zone {value!r} (e.g. Europe/Berlin, America/New_York, UTC)"
        ) from None
    return value


def _minutes(value: str) -> int:
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


Day = Annotated[str, AfterValidator(_day)]
ClockTime = Annotated[str, BeforeValidator(_clock_time)]


class DeploymentWindow(_SpecModel):
    """Weekly hours during which traffic may move forward, in one IANA time zone."""

    days: list[Day]
    start: ClockTime
    end: ClockTime
    timezone: Annotated[str, AfterValidator(_zone_name)]

    @field_validator("days")
    @classmethod
    def _some_days(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one day (Mon..Sun)")
        return value

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        if value == "24:00":
            raise ValueError("must be 00:00..23:59 (24:00 ends a day), got '24:00'")
        return value

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("start")
        if isinstance(start, str) and _minutes(value) <= _minutes(start):
            raise ValueError(
                f"must be after start {start} (a window lies within one day; for one across midnight "
                "write two: 22:00-24:00 on one day and 00:00-06:00 on the next)"
            )
        return value

    def describe(self) -> str:
        """``Mon-Fri 09:00-16:00 Europe/Berlin``."""
        return f"{_describe_days(self.days)} {self.start}-{self.end} {self.timezone}"


def _aware(value: Any) -> Any:
    """An absolute time with its UTC offset: a blackout means the same instant to everyone."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"must be a date and time like 2026-12-20T00:00:00+01:00, got {value!r}"
            ) from None
    if isinstance(value, datetime) and value.tzinfo is None:
        shown = value.isoformat()
        raise ValueError(f"needs a UTC offset (e.g. {shown}+01:00 or {shown}Z), got {shown!r}")
    return value


AwareTime = Annotated[datetime, BeforeValidator(_aware)]


class Blackout(_SpecModel):
    """An absolute period during which no traffic moves forward (a freeze), with its reason."""

    start: AwareTime
    end: AwareTime
    reason: str = ""

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if isinstance(start, datetime) and value <= start:
            raise ValueError(f"must be after start {start.isoformat()}, got {value.isoformat()!r}")
        return value

    def describe(self) -> str:
        until = self.end.isoformat(timespec="minutes")
        return f"blackout: {self.reason or 'no reason given'} until {until}"


def _some_windows(value: list[DeploymentWindow]) -> list[DeploymentWindow]:
    if not value:
        raise ValueError("needs at least one window (omit windows to allow any time)")
    return value


Windows = Annotated[list[DeploymentWindow], Field(max_length=MAX_WINDOWS), AfterValidator(_some_windows)]
Blackouts = Annotated[list[Blackout], Field(max_length=MAX_BLACKOUTS)]


class WindowInput(_Model):
    """What the ``deployment_window`` activity decides on."""

    windows: list[DeploymentWindow] = Field(default_factory=list)
    blackouts: list[Blackout] = Field(default_factory=list)
    now: datetime


class WindowDecision(_Model):
    """Whether traffic may move forward now; if not, why and until when."""

    open: bool
    until: datetime | None = None
    """The next moment a window is open and no blackout is on (None: open now, or none ahead)."""
    reason: str = ""


def _describe_days(days: Sequence[str]) -> str:
    """``Mon-Fri``, ``Mon,Wed,Sat-Sun``: runs of three or more days as a range."""
    numbers = sorted({DAYS.index(d) for d in days})
    runs: list[list[int]] = []
    for number in numbers:
        if runs and runs[-1][-1] == number - 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    parts = [f"{DAYS[r[0]]}-{DAYS[r[-1]]}" if len(r) >= 3 else ",".join(DAYS[n] for n in r) for r in runs]
    return ",".join(parts)


def describe_windows(windows: Sequence[DeploymentWindow]) -> str:
    """All windows in one line, as status shows them."""
    return ", ".join(w.describe() for w in windows)


def _first_instant_reading(zone: tzinfo, day: date, minutes: int) -> datetime:
    """The first instant (UTC) at which the clock of ``zone`` on ``day`` reads ``minutes`` or later."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minutes)
    instant = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first pass of a repeated time
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # A time the clocks skip: find the jump between the two readings of the offsets around it.
    low = min(instant, wall.replace(tzinfo=zone, fold=1).astimezone(UTC))
    high = max(instant, wall.replace(tzinfo=zone, fold=1).astimezone(UTC))
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _occurrences(
    window: DeploymentWindow, zone: tzinfo, around: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The window's open spans (UTC) on the local days from one before ``around`` to SEARCH_DAYS after."""
    start, end = _minutes(window.start), _minutes(window.end)
    try:
        first = around.astimezone(zone).date() - timedelta(days=1)
        for offset in range(SEARCH_DAYS + 2):
            day = first + timedelta(days=offset)
            opens = _first_instant_reading(zone, day, start)
            closes = _first_instant_reading(zone, day, end)
            if DAYS[day.weekday()] in window.days and closes > opens:
                yield opens, closes
    except (OverflowError, ValueError):
        return  # the end of the calendar (a blackout until the year 9999)


def _union(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted, overlapping or touching spans merged."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _past_blackouts(blackouts: list[tuple[datetime, datetime]], moment: datetime) -> datetime:
    """``moment``, or the end of the (merged) blackout it falls in."""
    for start, end in blackouts:
        if start <= moment < end:
            return end
    return moment


def window_decision(
    windows: Sequence[DeploymentWindow], blackouts: Sequence[Blackout], now: datetime, zones: Zones
) -> WindowDecision:
    """May traffic move forward at ``now`` (aware)? If not: until when, and why.

    The search is bounded: openings are looked for within :data:`SEARCH_DAYS` of now and of each
    blackout's end, which always finds the next one (every window has a day, and a blackout-free
    stretch after the last blackout that matters holds an opening within a week or two)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    closed = _union([(b.start.astimezone(UTC), b.end.astimezone(UTC)) for b in blackouts])
    bases = [now, *(end for _, end in closed if end > now)]
    spans: list[tuple[datetime, datetime, DeploymentWindow]] = []
    for window in windows:
        zone = zones(window.timezone)
        for base in bases:
            spans.extend((opens, closes, window) for opens, closes in _occurrences(window, zone, base))
    opening: datetime | None = None
    opened_by: DeploymentWindow | None = None
    if not windows:
        opening = _past_blackouts(closed, now)
    for opens, closes, window in sorted(spans, key=lambda s: (s[0], s[1])):
        if closes <= now or (opening is not None and opening <= opens):
            continue
        candidate = _past_blackouts(closed, max(opens, now))  # merged: no blackout starts at its end
        if candidate < closes and (opening is None or candidate < opening):
            opening, opened_by = candidate, window
    if opening == now:
        where = f"inside deployment window {opened_by.describe()}" if opened_by else "no blackout is on"
        return WindowDecision(open=True, reason=where)
    blackout = next((b for b in blackouts if b.start <= now < b.end), None)
    reason = (
        blackout.describe()
        if blackout is not None
        else f"outside deployment windows ({describe_windows(windows)})"
    )
    if opening is None:
        return WindowDecision(open=False, reason=f"{reason}; no opening ahead")
    if blackout is None or opening != blackout.end:
        reason += f"; next opening {_local(opening, opened_by, zones)}"
    return WindowDecision(open=False, until=opening, reason=reason)


def _local(moment: datetime, window: DeploymentWindow | None, zones: Zones) -> str:
    """``Mon 2026-12-07 09:00 CET`` in the window's zone (ISO with offset without one)."""
    if window is None:
        return moment.isoformat(timespec="minutes")
    local = moment.astimezone(zones(window.timezone))
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"
