"""Business rules as plain values: frequency caps and quiet hours, their periods and windows in a profile's time
zone (zoneinfo, DST-correct), and the check of a rule set's shape. Pure: imports neither Tortoise nor Strawberry.

Calendar periods (DAY, WEEK, MONTH) start at local midnight in the profile's zone (the sandbox's when the profile
has none); a week starts on Monday. ROLLING_HOURS(n) is the last n hours. A quiet-hours window starts on one of its
weekdays at `from` and ends at `until` the same day, or the next day when `until` is not after `from` (it wraps
past midnight). Local times that do not exist (the hour skipped in spring) resolve as zoneinfo does with fold=0,
the instant the clocks jump; repeated local times (autumn) take their first occurrence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class CapPeriod(StrEnum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    ROLLING_HOURS = "ROLLING_HOURS"


class QuietAction(StrEnum):
    DELAY = "DELAY"  # the send waits, QUEUED, until the window closes
    SKIP = "SKIP"  # the send is EXCLUDED with reason QUIET_HOURS


class Weekday(StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @property
    def number(self) -> int:  # date.weekday(): Monday is 0
        return list(Weekday).index(self)


MAX_ROLLING_HOURS = 24 * 31
MAX_CAP_LIMIT = 10_000
MAX_RULES = 50


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    channel: str  # a models.campaigns.rules.Channel value
    category: str  # a models.campaigns.rules.Category value
    limit: int
    period: CapPeriod
    hours: int | None = None  # ROLLING_HOURS only

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "category": self.category,
            "limit": self.limit,
            "period": self.period.value,
            "hours": self.hours,
        }


@dataclass(frozen=True, slots=True)
class QuietHours:
    channel: str
    weekdays: tuple[Weekday, ...]
    start: time  # `from`
    until: time
    action: QuietAction

    @property
    def wraps(self) -> bool:
        return self.until <= self.start

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "weekdays": [d.value for d in self.weekdays],
            "from": self.start.strftime("%H:%M"),
            "until": self.until.strftime("%H:%M"),
            "action": self.action.value,
        }


@dataclass(frozen=True, slots=True)
class RuleSet:
    caps: tuple[FrequencyCap, ...] = ()
    quiet_hours: tuple[QuietHours, ...] = ()

    def caps_for(self, channel: str, category: str) -> tuple[FrequencyCap, ...]:
        return tuple(c for c in self.caps if c.channel == channel and c.category == category)

    def quiet_for(self, channel: str) -> tuple[QuietHours, ...]:
        return tuple(q for q in self.quiet_hours if q.channel == channel)

    def to_json(self) -> dict[str, Any]:
        return {"caps": [c.to_json() for c in self.caps], "quietHours": [q.to_json() for q in self.quiet_hours]}


def rule_set_from_json(value: Mapping[str, Any]) -> RuleSet:
    """The stored form back to values (stored values were checked by `check_rule_set` before they were saved)."""
    caps = tuple(
        FrequencyCap(c["channel"], c["category"], int(c["limit"]), CapPeriod(c["period"]), c.get("hours"))
        for c in value.get("caps") or ()
    )
    quiet = tuple(
        QuietHours(
            q["channel"],
            tuple(Weekday(d) for d in q["weekdays"]),
            parse_clock(q["from"]),
            parse_clock(q["until"]),
            QuietAction(q["action"]),
        )
        for q in value.get("quietHours") or ()
    )
    return RuleSet(caps, quiet)


def parse_clock(text: str) -> time:
    """ "HH:MM" (00:00 to 23:59) → time; ValueError otherwise."""
    hours, _, minutes = text.partition(":")
    if len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(f"{text!r} is not HH:MM")
    return time(int(hours), int(minutes))


def zone_of(name: str | None, fallback: str) -> ZoneInfo:
    """The profile's zone, the fallback (the sandbox's default) when it has none or an unknown one, else UTC."""
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def period_bounds(
    now: datetime, zone: ZoneInfo, period: CapPeriod, hours: int | None = None
) -> tuple[datetime, datetime]:
    """The cap period holding `now` (aware), as UTC instants [start, end). ROLLING_HOURS(n) counts the sends of the
    last n hours, and its end, n hours ahead, bounds the queued sends that compete for the same budget (a send due
    within n hours of another counts against it)."""
    if period is CapPeriod.ROLLING_HOURS:
        window = timedelta(hours=hours or 1)
        return (now - window).astimezone(UTC), (now + window).astimezone(UTC)
    today = now.astimezone(zone).date()
    if period is CapPeriod.DAY:
        first, after = today, today + timedelta(days=1)
    elif period is CapPeriod.WEEK:
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    else:
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    return _local_midnight(first, zone), _local_midnight(after, zone)


def _windows_around(now_local: datetime, quiet: QuietHours, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The windows of `quiet` that start yesterday, today or tomorrow (local), as aware UTC instants."""
    days = {d.number for d in quiet.weekdays}
    windows = []
    for offset in (-1, 0, 1):
        day = now_local.date() + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        start = datetime.combine(day, quiet.start, tzinfo=zone).astimezone(UTC)
        end_day = day + timedelta(days=1) if quiet.wraps else day
        end = datetime.combine(end_day, quiet.until, tzinfo=zone).astimezone(UTC)
        windows.append((start, end))
    return windows


def quiet_window(now: datetime, zone: ZoneInfo, rules: Sequence[QuietHours]) -> tuple[QuietAction, datetime] | None:
    """None when `now` is outside every window; else the action (SKIP wins over DELAY) and when the quiet time
    ends: the first instant inside no window (windows that touch or overlap are followed to their end)."""
    instant = now.astimezone(UTC)
    hit: QuietAction | None = None
    for _ in range(16):  # at most a week of touching windows, twice over
        local = instant.astimezone(zone)
        inside = [
            (rule, end) for rule in rules for start, end in _windows_around(local, rule, zone) if start <= instant < end
        ]
        if not inside:
            break
        if hit is None:
            hit = QuietAction.SKIP if any(r.action is QuietAction.SKIP for r, _ in inside) else QuietAction.DELAY
        instant = max(end for _, end in inside)
    if hit is None:
        return None
    return hit, instant


def check_rule_set(
    caps: Sequence[Mapping[str, Any]],
    quiet_hours: Sequence[Mapping[str, Any]],
    channels: Sequence[str],
    categories: Sequence[str],
) -> list[tuple[str, str, str]]:
    """(field, code, message) for each problem of a rule set's input; empty when it may be saved."""
    errors: list[tuple[str, str, str]] = []
    if len(caps) + len(quiet_hours) > MAX_RULES:
        errors.append(("input", "TOO_MANY", f"A rule set holds at most {MAX_RULES} rules."))
    for i, cap in enumerate(caps):
        where = f"input.caps[{i}]"
        if cap.get("channel") not in channels:
            errors.append((f"{where}.channel", "INVALID_CHOICE", f"Choose one of {', '.join(channels)}."))
        if cap.get("category") not in categories:
            errors.append((f"{where}.category", "INVALID_CHOICE", f"Choose one of {', '.join(categories)}."))
        limit = cap.get("limit")
        if not isinstance(limit, int) or not 0 <= limit <= MAX_CAP_LIMIT:
            errors.append((f"{where}.limit", "OUT_OF_RANGE", f"limit must be between 0 and {MAX_CAP_LIMIT}."))
        period, hours = cap.get("period"), cap.get("hours")
        if period == CapPeriod.ROLLING_HOURS.value:
            if not isinstance(hours, int) or not 1 <= hours <= MAX_ROLLING_HOURS:
                errors.append(
                    (f"{where}.hours", "OUT_OF_RANGE", f"ROLLING_HOURS needs hours between 1 and {MAX_ROLLING_HOURS}.")
                )
        elif period not in {p.value for p in CapPeriod}:
            errors.append((f"{where}.period", "INVALID_CHOICE", "Choose DAY, WEEK, MONTH or ROLLING_HOURS."))
        elif hours is not None:
            errors.append((f"{where}.hours", "NOT_ALLOWED", "hours is only for ROLLING_HOURS."))
    seen = [(c.get("channel"), c.get("category"), c.get("period"), c.get("hours")) for c in caps]
    if len(set(seen)) != len(seen):
        errors.append(("input.caps", "INVALID", "Two caps have the same channel, category and period."))
    for i, quiet in enumerate(quiet_hours):
        where = f"input.quietHours[{i}]"
        if quiet.get("channel") not in channels:
            errors.append((f"{where}.channel", "INVALID_CHOICE", f"Choose one of {', '.join(channels)}."))
        weekdays = quiet.get("weekdays") or []
        if not weekdays or any(d not in {w.value for w in Weekday} for d in weekdays):
            errors.append((f"{where}.weekdays", "INVALID_CHOICE", "Name one or more weekdays (MONDAY … SUNDAY)."))
        clocks = []
        for name in ("from", "until"):
            try:
                clocks.append(parse_clock(str(quiet.get(name))))
            except ValueError:
                errors.append((f"{where}.{name}", "INVALID_FORMAT", f"{name} must be HH:MM, 00:00 to 23:59."))
        if len(clocks) == 2 and clocks[0] == clocks[1]:
            errors.append((f"{where}.until", "EMPTY", "from and until must differ."))
        if quiet.get("action") not in {a.value for a in QuietAction}:
            errors.append((f"{where}.action", "INVALID_CHOICE", "Choose DELAY or SKIP."))
    return errors
