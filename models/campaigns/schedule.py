"""Campaign schedules: validation and fire times. Pure: no clock is read, `now` and windows are passed in.

Semantics (DESIGN §3, AJO "Schedule"):
- ONCE fires once, at `start_at`, or at activation when `start_at` is null. `time_of_day` and days are
  refused for ONCE; `end_at` only bounds it (it still must not be before the start).
- DAILY / WEEKLY / MONTHLY fire at `time_of_day`, wall-clock time in `timezone` (IANA), on every day /
  on `days_of_week` (ISO: 1 = Monday … 7 = Sunday) / on `days_of_month` (1-31), from the start
  (`start_at`, or activation) to `end_at` inclusive; null `end_at` = until stopped.
- Daylight saving: a wall time that does not exist that day (spring forward) fires that much later
  (02:30 in a 02:00→03:00 gap fires at 03:30); a wall time that occurs twice (fall back) fires once, at
  its first occurrence. So no run is missed and none doubled.
- Month ends: a day of month the month lacks is skipped, as cron does (the 31st fires in 7 months of
  the year; the 29th of February only in leap years). Clamping would fire the 30th and 31st on the same
  February day; skipping keeps one run per chosen date. Choose 28 or lower to fire every month.
- `deliver_at` PROFILE_TIME_ZONE reads each fire time as a wall-clock time that every recipient gets on their
  own clock: see models.campaigns.local_time. The fire times here stay those of the campaign's zone.
All fire times are returned as aware UTC datetimes, ascending.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.campaigns.rules import Frequency

MAX_FIRE_TIMES = 1_000


class ScheduleCode(StrEnum):
    TIMEZONE_INVALID = "TIMEZONE_INVALID"
    NAIVE_DATETIME = "NAIVE_DATETIME"
    END_BEFORE_START = "END_BEFORE_START"
    FREQUENCY_INVALID = "FREQUENCY_INVALID"
    LOCAL_TIME_INVALID = "LOCAL_TIME_INVALID"


class DeliverAt(StrEnum):
    """Whose clock the schedule's wall-clock time is read on (models.campaigns.local_time)."""

    CAMPAIGN_TIME_ZONE = "CAMPAIGN_TIME_ZONE"
    PROFILE_TIME_ZONE = "PROFILE_TIME_ZONE"


class PassedTime(StrEnum):
    """A recipient whose local time had passed when the run started: at once, or the next day."""

    SEND_NOW = "SEND_NOW"
    NEXT_DAY = "NEXT_DAY"


@dataclass(frozen=True)
class ScheduleProblem:
    field: str  # relative to the schedule, as the input names it: "timeZone", "endAt", "daysOfWeek", …
    code: ScheduleCode
    message: str


@dataclass(frozen=True)
class Schedule:
    frequency: Frequency = Frequency.ONCE
    start_at: datetime | None = None  # aware; None = at activation
    end_at: datetime | None = None  # aware; None = after one execution (ONCE) or until stopped
    time_of_day: time | None = None  # wall-clock time in `timezone`, recurring only
    days_of_week: tuple[int, ...] = ()  # ISO weekdays, WEEKLY only
    days_of_month: tuple[int, ...] = ()  # 1-31, MONTHLY only
    timezone: str = "UTC"
    deliver_at: DeliverAt = DeliverAt.CAMPAIGN_TIME_ZONE
    on_passed_time: PassedTime = PassedTime.SEND_NOW

    @property
    def local_time(self) -> bool:
        """Each recipient gets the message at the schedule's wall-clock time in their own zone."""
        return DeliverAt(self.deliver_at) is DeliverAt.PROFILE_TIME_ZONE

    @property
    def recurring(self) -> bool:
        return Frequency(self.frequency) is not Frequency.ONCE


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone called `name`, or None when there is no such zone."""
    if not name or len(name) > 64 or "\x00" in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def validate_schedule(schedule: Schedule) -> list[ScheduleProblem]:
    """Everything wrong with the schedule itself (not relative to now)."""
    problems: list[ScheduleProblem] = []

    def add(field: str, code: ScheduleCode, message: str) -> None:
        problems.append(ScheduleProblem(field, code, message))

    if zone(schedule.timezone) is None:
        add("timeZone", ScheduleCode.TIMEZONE_INVALID, f"unknown IANA time zone {schedule.timezone!r}")
    for field, value in (("startAt", schedule.start_at), ("endAt", schedule.end_at)):
        if value is not None and value.utcoffset() is None:
            add(field, ScheduleCode.NAIVE_DATETIME, "a date and time must carry its UTC offset")
    if (
        schedule.start_at is not None
        and schedule.end_at is not None
        and schedule.start_at.utcoffset() is not None
        and schedule.end_at.utcoffset() is not None
        and schedule.end_at < schedule.start_at
    ):
        add("endAt", ScheduleCode.END_BEFORE_START, "the end is before the start")

    bad = ScheduleCode.FREQUENCY_INVALID
    frequency = Frequency(schedule.frequency)
    if frequency is Frequency.ONCE:
        if schedule.time_of_day is not None:
            add("timeOfDay", bad, "a time of day only applies to a recurring schedule; set startAt instead")
    elif schedule.time_of_day is None:
        add("timeOfDay", bad, f"a {frequency.value.lower()} schedule needs a time of day")
    elif schedule.time_of_day.tzinfo is not None:
        add("timeOfDay", bad, "the time of day is wall-clock time in the schedule's time zone, without offset")

    if frequency is Frequency.WEEKLY:
        if not schedule.days_of_week:
            add("daysOfWeek", bad, "a weekly schedule needs at least one day of the week")
        elif any(d < 1 or d > 7 for d in schedule.days_of_week) or len(set(schedule.days_of_week)) != len(
            schedule.days_of_week
        ):
            add("daysOfWeek", bad, "days of the week are distinct numbers from 1 (Monday) to 7 (Sunday)")
    elif schedule.days_of_week:
        add("daysOfWeek", bad, "days of the week only apply to a weekly schedule")

    if frequency is Frequency.MONTHLY:
        if not schedule.days_of_month:
            add("daysOfMonth", bad, "a monthly schedule needs at least one day of the month")
        elif any(d < 1 or d > 31 for d in schedule.days_of_month) or len(set(schedule.days_of_month)) != len(
            schedule.days_of_month
        ):
            add("daysOfMonth", bad, "days of the month are distinct numbers from 1 to 31")
    elif schedule.days_of_month:
        add("daysOfMonth", bad, "days of the month only apply to a monthly schedule")
    if PassedTime(schedule.on_passed_time) is PassedTime.NEXT_DAY and not schedule.local_time:
        add(
            "onPassedTime",
            ScheduleCode.LOCAL_TIME_INVALID,
            "NEXT_DAY only applies when delivering at each profile's time zone (deliverAt: PROFILE_TIME_ZONE)",
        )
    return problems


def wall_time_to_utc(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The instant `wall` o'clock on `day` in `tz`: a gap moves it forward, a repeated hour takes the first.

    zoneinfo with fold=0 gives exactly that: a nonexistent time uses the offset in force before the
    transition (so it lands after the gap), a repeated time its first occurrence.
    """
    local = datetime.combine(day, wall.replace(tzinfo=None, fold=0), tzinfo=tz)
    return local.astimezone(UTC)


def _matches(schedule: Schedule, day: date) -> bool:
    frequency = Frequency(schedule.frequency)
    if frequency is Frequency.WEEKLY:
        return day.isoweekday() in schedule.days_of_week
    if frequency is Frequency.MONTHLY:
        return day.day in schedule.days_of_month
    return True


def _recurring(schedule: Schedule, tz: ZoneInfo, lower: datetime) -> Iterator[datetime]:
    assert schedule.time_of_day is not None
    # Start a day early: the local date of `lower` may differ from the date whose fire time follows it.
    day = lower.astimezone(tz).date() - timedelta(days=1)
    idle_days = 0
    while idle_days < 400:  # a valid schedule fires at least every 62 days; stop on one that never does
        if _matches(schedule, day):
            idle_days = 0
            yield wall_time_to_utc(day, schedule.time_of_day, tz)
        else:
            idle_days += 1
        day += timedelta(days=1)


def fire_times(
    schedule: Schedule,
    *,
    window_start: datetime,
    window_end: datetime | None = None,
    activated_at: datetime | None = None,
    limit: int = 10,
) -> list[datetime]:
    """Fire times t, in UTC, with window_start <= t < window_end, at most `limit` (≤ MAX_FIRE_TIMES).

    The schedule starts at `start_at`, or at `activated_at` when it has none; with neither there is no
    fire time yet. An invalid schedule has none either (validate it first).
    """
    if validate_schedule(schedule):
        return []
    start = schedule.start_at or activated_at
    if start is None:
        return []
    tz = zone(schedule.timezone)
    assert tz is not None
    limit = max(0, min(limit, MAX_FIRE_TIMES))
    lower = max(start, window_start)
    out: list[datetime] = []
    candidates = iter([start.astimezone(UTC)]) if not schedule.recurring else _recurring(schedule, tz, lower)
    for candidate in candidates:
        if len(out) >= limit:
            break
        if schedule.end_at is not None and candidate > schedule.end_at:
            break
        if window_end is not None and candidate >= window_end:
            break
        if candidate >= lower and (not out or candidate > out[-1]):
            out.append(candidate)
    return out


def next_fire_time(schedule: Schedule, *, after: datetime, activated_at: datetime | None = None) -> datetime | None:
    """The first fire time strictly after `after`, or None when the schedule is over."""
    found = fire_times(schedule, window_start=after + timedelta(microseconds=1), activated_at=activated_at, limit=1)
    return found[0] if found else None
