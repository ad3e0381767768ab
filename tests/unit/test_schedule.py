"""Schedule validation and fire times, with explicit clocks around DST changes, month ends and leap years."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.campaigns.rules import Frequency
from models.campaigns.schedule import (
    Schedule,
    ScheduleCode,
    fire_times,
    next_fire_time,
    validate_schedule,
    wall_time_to_utc,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz)


def daily(tz: str, at: time, start: datetime, end: datetime | None = None) -> Schedule:
    return Schedule(Frequency.DAILY, start_at=start, end_at=end, time_of_day=at, timezone=tz)


def as_local(times: list[datetime], tz: ZoneInfo) -> list[str]:
    return [t.astimezone(tz).strftime("%m-%d %H:%M %Z") for t in times]


# --- ONCE -------------------------------------------------------------------------------------------


def test_once_fires_at_start() -> None:
    schedule = Schedule(start_at=utc(2026, 5, 1, 9))
    assert fire_times(schedule, window_start=utc(2026, 4, 1)) == [utc(2026, 5, 1, 9)]
    assert fire_times(schedule, window_start=utc(2026, 5, 1, 9)) == [utc(2026, 5, 1, 9)]  # inclusive
    assert fire_times(schedule, window_start=utc(2026, 5, 1, 9, 0, 1)) == []
    assert fire_times(schedule, window_start=utc(2026, 4, 1), window_end=utc(2026, 5, 1, 9)) == []  # exclusive


def test_once_without_start_fires_at_activation() -> None:
    schedule = Schedule()
    assert fire_times(schedule, window_start=utc(2026, 1, 1)) == []  # not activated yet
    activated = utc(2026, 3, 3, 12, 30)
    assert fire_times(schedule, window_start=activated, activated_at=activated) == [activated]
    assert next_fire_time(schedule, after=activated, activated_at=activated) is None


def test_once_start_is_returned_in_utc() -> None:
    schedule = Schedule(start_at=local(PARIS, 2026, 7, 14, 10), timezone="Europe/Paris")
    [fired] = fire_times(schedule, window_start=utc(2026, 1, 1))
    assert fired == utc(2026, 7, 14, 8) and fired.tzinfo is UTC


# --- DAILY across DST -------------------------------------------------------------------------------


def test_daily_paris_across_spring_forward_keeps_wall_time() -> None:
    schedule = daily("Europe/Paris", time(9, 0), local(PARIS, 2026, 3, 27, 0))
    times = fire_times(schedule, window_start=utc(2026, 3, 1), limit=4)
    assert as_local(times, PARIS) == ["03-27 09:00 CET", "03-28 09:00 CET", "03-29 09:00 CEST", "03-30 09:00 CEST"]
    assert times[2] - times[1] == timedelta(hours=23)


def test_daily_in_the_spring_gap_moves_forward_never_skips() -> None:
    # 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    schedule = daily("Europe/Paris", time(2, 30), local(PARIS, 2026, 3, 28, 0))
    times = fire_times(schedule, window_start=utc(2026, 3, 1), limit=3)
    assert as_local(times, PARIS) == ["03-28 02:30 CET", "03-29 03:30 CEST", "03-30 02:30 CEST"]
    assert times[1] == utc(2026, 3, 29, 1, 30)


def test_daily_in_the_autumn_overlap_fires_once_at_the_first_occurrence() -> None:
    # 2026-10-25 in Paris: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    schedule = daily("Europe/Paris", time(2, 30), local(PARIS, 2026, 10, 24, 0))
    times = fire_times(schedule, window_start=utc(2026, 10, 1), limit=3)
    assert as_local(times, PARIS) == ["10-24 02:30 CEST", "10-25 02:30 CEST", "10-26 02:30 CET"]
    assert times[1] == utc(2026, 10, 25, 0, 30)
    assert len(set(times)) == 3


def test_new_york_both_changes() -> None:
    # 2026-03-08: 02:00 EST -> 03:00 EDT. 2026-11-01: 02:00 EDT -> 01:00 EST (01:30 happens twice).
    spring = fire_times(
        daily("America/New_York", time(2, 15), local(NEW_YORK, 2026, 3, 7)), window_start=utc(2026, 1, 1), limit=3
    )
    assert as_local(spring, NEW_YORK) == ["03-07 02:15 EST", "03-08 03:15 EDT", "03-09 02:15 EDT"]
    autumn = fire_times(
        daily("America/New_York", time(1, 30), local(NEW_YORK, 2026, 10, 31)), window_start=utc(2026, 1, 1), limit=3
    )
    assert as_local(autumn, NEW_YORK) == ["10-31 01:30 EDT", "11-01 01:30 EDT", "11-02 01:30 EST"]
    assert autumn[1] == utc(2026, 11, 1, 5, 30)


def test_a_dispatcher_sweeping_in_small_windows_neither_misses_nor_doubles() -> None:
    # Sweep 26 October-to-November days in 7-minute windows; each wall time fires exactly once per day.
    for tz_name, at in [("Europe/Paris", time(2, 30)), ("America/New_York", time(1, 30)), ("Europe/Paris", time(2, 0))]:
        schedule = daily(tz_name, at, utc(2026, 10, 20))
        seen: list[datetime] = []
        cursor = utc(2026, 10, 20)
        while cursor < utc(2026, 11, 5):
            seen += fire_times(schedule, window_start=cursor, window_end=cursor + timedelta(minutes=7), limit=5)
            cursor += timedelta(minutes=7)
        assert len(seen) == len(set(seen)) == 16
        assert [t.astimezone(ZoneInfo(tz_name)).date() for t in seen] == [
            (utc(2026, 10, 20) + timedelta(days=i)).date() for i in range(16)
        ]


def test_recurring_start_in_the_middle_of_a_day_rolls_to_the_next_slot() -> None:
    schedule = daily("UTC", time(9, 0), utc(2026, 6, 1, 10))
    assert fire_times(schedule, window_start=utc(2026, 1, 1), limit=1) == [utc(2026, 6, 2, 9)]
    assert next_fire_time(schedule, after=utc(2026, 6, 2, 9)) == utc(2026, 6, 3, 9)


def test_end_is_inclusive_and_stops_the_series() -> None:
    schedule = daily("UTC", time(9, 0), utc(2026, 6, 1), end=utc(2026, 6, 3, 9))
    assert fire_times(schedule, window_start=utc(2026, 1, 1), limit=10) == [
        utc(2026, 6, 1, 9),
        utc(2026, 6, 2, 9),
        utc(2026, 6, 3, 9),
    ]
    assert next_fire_time(schedule, after=utc(2026, 6, 3, 9)) is None


def test_without_start_the_series_begins_at_activation() -> None:
    schedule = Schedule(Frequency.DAILY, time_of_day=time(8, 0), timezone="UTC")
    assert fire_times(schedule, window_start=utc(2026, 1, 1)) == []
    assert fire_times(schedule, window_start=utc(2026, 1, 1), activated_at=utc(2026, 2, 1, 8), limit=2) == [
        utc(2026, 2, 1, 8),
        utc(2026, 2, 2, 8),
    ]


# --- WEEKLY / MONTHLY -------------------------------------------------------------------------------


def test_weekly_on_chosen_days() -> None:
    schedule = Schedule(
        Frequency.WEEKLY, start_at=utc(2026, 6, 1), time_of_day=time(18, 0), days_of_week=(1, 5), timezone="UTC"
    )  # 2026-06-01 is a Monday
    times = fire_times(schedule, window_start=utc(2026, 6, 1), limit=4)
    assert [t.strftime("%a %d") for t in times] == ["Mon 01", "Fri 05", "Mon 08", "Fri 12"]


def test_monthly_skips_days_a_month_lacks() -> None:
    schedule = Schedule(
        Frequency.MONTHLY, start_at=utc(2026, 1, 1), time_of_day=time(12, 0), days_of_month=(30, 31), timezone="UTC"
    )
    times = fire_times(schedule, window_start=utc(2026, 1, 1), limit=6)
    assert [t.strftime("%m-%d") for t in times] == ["01-30", "01-31", "03-30", "03-31", "04-30", "05-30"]


def test_the_29th_of_february_fires_only_in_leap_years() -> None:
    schedule = Schedule(
        Frequency.MONTHLY, start_at=utc(2027, 1, 1), time_of_day=time(0, 0), days_of_month=(29,), timezone="UTC"
    )
    times = fire_times(schedule, window_start=utc(2027, 1, 1), window_end=utc(2029, 1, 1), limit=100)
    februaries = [t for t in times if t.month == 2]
    assert februaries == [utc(2028, 2, 29)]
    assert len(times) == 23  # 24 months, one February without a 29th


def test_monthly_in_another_zone_uses_the_local_date() -> None:
    schedule = Schedule(
        Frequency.MONTHLY, start_at=utc(2026, 1, 1), time_of_day=time(0, 30), days_of_month=(1,), timezone="Asia/Tokyo"
    )
    assert fire_times(schedule, window_start=utc(2026, 1, 1), limit=2) == [
        utc(2026, 1, 31, 15, 30),
        utc(2026, 2, 28, 15, 30),
    ]


def test_limit_is_honoured_and_capped() -> None:
    schedule = daily("UTC", time(0, 0), utc(2026, 1, 1))
    assert len(fire_times(schedule, window_start=utc(2026, 1, 1), limit=3)) == 3
    assert len(fire_times(schedule, window_start=utc(2026, 1, 1), limit=10**9)) == 1_000


def test_wall_time_to_utc_gap_and_fold() -> None:
    assert wall_time_to_utc(datetime(2026, 3, 29).date(), time(2, 30), PARIS) == utc(2026, 3, 29, 1, 30)
    assert wall_time_to_utc(datetime(2026, 10, 25).date(), time(2, 30), PARIS) == utc(2026, 10, 25, 0, 30)


# --- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "problems"),
    [
        (Schedule(), []),
        (Schedule(Frequency.DAILY, time_of_day=time(9)), []),
        (Schedule(Frequency.WEEKLY, time_of_day=time(9), days_of_week=(7,)), []),
        (Schedule(Frequency.MONTHLY, time_of_day=time(9), days_of_month=(1, 31)), []),
        (Schedule(timezone="Mars/Olympus"), [("timeZone", ScheduleCode.TIMEZONE_INVALID)]),
        (Schedule(timezone=""), [("timeZone", ScheduleCode.TIMEZONE_INVALID)]),
        (Schedule(timezone="Europe/Paris\x00"), [("timeZone", ScheduleCode.TIMEZONE_INVALID)]),
        (Schedule(timezone="../../etc/passwd"), [("timeZone", ScheduleCode.TIMEZONE_INVALID)]),
        (Schedule(start_at=datetime(2026, 1, 1)), [("startAt", ScheduleCode.NAIVE_DATETIME)]),
        (Schedule(start_at=utc(2026, 2, 1), end_at=utc(2026, 1, 1)), [("endAt", ScheduleCode.END_BEFORE_START)]),
        (Schedule(time_of_day=time(9)), [("timeOfDay", ScheduleCode.FREQUENCY_INVALID)]),
        (Schedule(Frequency.DAILY), [("timeOfDay", ScheduleCode.FREQUENCY_INVALID)]),
        (Schedule(Frequency.DAILY, time_of_day=time(9, tzinfo=UTC)), [("timeOfDay", ScheduleCode.FREQUENCY_INVALID)]),
        (Schedule(Frequency.WEEKLY, time_of_day=time(9)), [("daysOfWeek", ScheduleCode.FREQUENCY_INVALID)]),
        (
            Schedule(Frequency.WEEKLY, time_of_day=time(9), days_of_week=(0,)),
            [("daysOfWeek", ScheduleCode.FREQUENCY_INVALID)],
        ),
        (
            Schedule(Frequency.WEEKLY, time_of_day=time(9), days_of_week=(1, 1)),
            [("daysOfWeek", ScheduleCode.FREQUENCY_INVALID)],
        ),
        (
            Schedule(Frequency.DAILY, time_of_day=time(9), days_of_week=(1,)),
            [("daysOfWeek", ScheduleCode.FREQUENCY_INVALID)],
        ),
        (Schedule(Frequency.MONTHLY, time_of_day=time(9)), [("daysOfMonth", ScheduleCode.FREQUENCY_INVALID)]),
        (
            Schedule(Frequency.MONTHLY, time_of_day=time(9), days_of_month=(32,)),
            [("daysOfMonth", ScheduleCode.FREQUENCY_INVALID)],
        ),
        (
            Schedule(Frequency.WEEKLY, time_of_day=time(9), days_of_week=(1,), days_of_month=(1,)),
            [("daysOfMonth", ScheduleCode.FREQUENCY_INVALID)],
        ),
    ],
)
def test_validation(schedule: Schedule, problems: list[tuple[str, ScheduleCode]]) -> None:
    assert [(p.field, p.code) for p in validate_schedule(schedule)] == problems


def test_an_invalid_schedule_has_no_fire_times() -> None:
    assert fire_times(Schedule(start_at=utc(2026, 1, 1), timezone="Nowhere/Land"), window_start=utc(2025, 1, 1)) == []
