"""Delivery at each recipient's local time (models.campaigns.local_time), as tables worked out by hand: the US and
EU daylight-saving switches (gaps move forward, repeated hours take the first), +05:45, +13:00, -03:30, +14:00,
the run's early start and what "passed" means with SEND_NOW and NEXT_DAY."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from models.campaigns.local_time import PassedTime, due_by_zone, local_due, passed_before, run_start
from models.campaigns.rules import Frequency
from models.campaigns.schedule import DeliverAt, Schedule, ScheduleCode, validate_schedule


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def due(fire: str, campaign_zone: str, profile_zone: str | None, *, passed: str | None = None, on_passed=None) -> str:
    tz = ZoneInfo(campaign_zone)
    start = utc(passed) if passed else run_start(utc(fire), tz)
    result = local_due(
        utc(fire),
        tz,
        ZoneInfo(profile_zone) if profile_zone else None,
        passed=start,
        on_passed=on_passed or PassedTime.SEND_NOW,
    )
    assert result.tzinfo is not None
    return result.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


# 02:30 on 2027-03-14 (US switch day) read in Paris (CET, before the EU switch): fired at 01:30 UTC.
US_SPRING = [
    ("America/New_York", "2027-03-14T07:30"),  # 02:30 does not exist (02:00→03:00): 03:30 EDT
    ("America/Los_Angeles", "2027-03-14T10:30"),  # same gap: 03:30 PDT
    ("America/St_Johns", "2027-03-14T06:00"),  # -03:30, same day's gap: 03:30 NDT (-02:30)
    ("America/Sao_Paulo", "2027-03-14T05:30"),  # -03:00, no DST
    ("Europe/London", "2027-03-14T02:30"),
    ("Asia/Kathmandu", "2027-03-13T20:45"),  # +05:45
    ("Pacific/Tongatapu", "2027-03-13T13:30"),  # +13:00
    ("Pacific/Kiritimati", "2027-03-13T12:30"),  # +14:00: the first, the run's start
    (None, "2027-03-14T01:30"),  # no zone: the campaign's
]

# 02:30 on 2027-03-28 (EU switch day) read in New York (EDT): fired at 06:30 UTC.
EU_SPRING = [
    ("Europe/Paris", "2027-03-28T01:30"),  # 02:00→03:00 gap: 03:30 CEST
    ("Europe/London", "2027-03-28T01:30"),  # 01:00→02:00 gap already passed: 02:30 BST
    ("Europe/Helsinki", "2027-03-28T00:30"),  # its gap is 03:00→04:00: 02:30 EET
    ("America/New_York", "2027-03-28T06:30"),
    ("Asia/Kathmandu", "2027-03-27T20:45"),
]

# 01:30 on 2027-11-07 (US fall back) read in UTC.
US_FALL = [
    ("America/New_York", "2027-11-07T05:30"),  # 01:30 occurs twice: the first (EDT)
    ("America/Chicago", "2027-11-07T06:30"),  # the first (CDT)
    ("America/St_Johns", "2027-11-07T04:00"),  # its 01:30 is before its own change (02:00 NDT): once, NDT
    ("Europe/Paris", "2027-11-07T00:30"),
]

# 02:30 on 2027-10-31 (EU fall back) read in UTC.
EU_FALL = [
    ("Europe/Paris", "2027-10-31T00:30"),  # 02:30 occurs twice: the first (CEST)
    ("Europe/London", "2027-10-31T02:30"),  # after its 02:00 BST → 01:00 GMT change: once, GMT
    ("America/New_York", "2027-10-31T06:30"),  # US still on EDT
    ("Pacific/Tongatapu", "2027-10-30T13:30"),
]


@pytest.mark.parametrize(
    ("fire", "campaign_zone", "profile_zone", "expected"),
    [("2027-03-14T01:30", "Europe/Paris", z, e) for z, e in US_SPRING]
    + [("2027-03-28T06:30", "America/New_York", z, e) for z, e in EU_SPRING]
    + [("2027-11-07T01:30", "UTC", z, e) for z, e in US_FALL]
    + [("2027-10-31T02:30", "UTC", z, e) for z, e in EU_FALL],
)
def test_each_recipient_is_due_at_the_wall_time_in_their_zone(
    fire: str, campaign_zone: str, profile_zone: str | None, expected: str
) -> None:
    assert due(fire, campaign_zone, profile_zone) == expected


@pytest.mark.parametrize(
    ("fire", "campaign_zone", "expected"),
    [
        ("2027-03-14T01:30", "Europe/Paris", "2027-03-13T12:30"),  # 02:30 in UTC+14
        ("2027-01-01T12:00", "Etc/GMT+12", "2026-12-31T10:00"),  # UTC-12 campaign: 26 h early
        ("2027-01-01T00:00", "Pacific/Kiritimati", "2027-01-01T00:00"),  # a UTC+14 campaign starts on time
        ("2027-03-14T07:30", "America/New_York", "2027-03-13T13:30"),  # fired at 03:30 EDT: 03:30 in UTC+14
    ],
)
def test_a_local_time_run_starts_when_the_first_zone_reaches_the_wall_time(
    fire: str, campaign_zone: str, expected: str
) -> None:
    assert run_start(utc(fire), ZoneInfo(campaign_zone)) == utc(expected)


def test_no_recipient_is_due_before_the_run_starts() -> None:
    fire, paris = utc("2027-03-14T01:30"), ZoneInfo("Europe/Paris")
    start = run_start(fire, paris)
    dues = due_by_zone(fire, paris, [z for z, _ in US_SPRING], passed=start, on_passed=PassedTime.NEXT_DAY)
    assert min(dues.values()) == start
    assert {z: d.strftime("%Y-%m-%dT%H:%M") for z, d in dues.items()} == dict(US_SPRING)


# Activated "now" at 09:00 in New York (13:00 UTC) on 2027-06-01: Paris and Kathmandu have passed 09:00.
@pytest.mark.parametrize(
    ("profile_zone", "on_passed", "expected"),
    [
        ("Europe/Paris", PassedTime.SEND_NOW, "2027-06-01T13:00"),  # at once
        ("Europe/Paris", PassedTime.NEXT_DAY, "2027-06-02T07:00"),  # 09:00 CEST the next day
        ("Asia/Kathmandu", PassedTime.NEXT_DAY, "2027-06-02T03:15"),
        ("America/Los_Angeles", PassedTime.NEXT_DAY, "2027-06-01T16:00"),  # not passed: 09:00 PDT today
        ("America/New_York", PassedTime.NEXT_DAY, "2027-06-01T13:00"),  # exactly now is not passed
        (None, PassedTime.NEXT_DAY, "2027-06-01T13:00"),
    ],
)
def test_passed_at_activation(profile_zone: str | None, on_passed: PassedTime, expected: str) -> None:
    fire = "2027-06-01T13:00"
    passed = passed_before(utc(fire), ZoneInfo("America/New_York"), utc(fire))
    assert passed == utc(fire)
    assert due(fire, "America/New_York", profile_zone, passed=fire, on_passed=on_passed) == expected


def test_next_day_lands_in_a_dst_gap_moves_forward() -> None:
    # 02:30 on 2027-03-13 in Tokyo; activated at 08:00 UTC, after New York's 02:30 EST (07:30 UTC) that day:
    # the next day's 02:30 in New York does not exist (US switch) and becomes 03:30 EDT.
    got = due("2027-03-12T17:30", "Asia/Tokyo", "America/New_York", passed="2027-03-13T08:00", on_passed="NEXT_DAY")
    assert got == "2027-03-14T07:30"


def test_the_run_start_is_the_reference_unless_activation_is_later() -> None:
    fire, tz = utc("2027-06-01T13:00"), ZoneInfo("America/New_York")
    assert passed_before(fire, tz, None) == utc("2027-05-31T19:00")
    assert passed_before(fire, tz, utc("2027-01-01T00:00")) == utc("2027-05-31T19:00")
    assert passed_before(fire, tz, utc("2027-06-01T10:00")) == utc("2027-06-01T10:00")


@pytest.mark.parametrize(
    ("deliver_at", "on_passed", "problems"),
    [
        (DeliverAt.CAMPAIGN_TIME_ZONE, PassedTime.SEND_NOW, []),
        (DeliverAt.PROFILE_TIME_ZONE, PassedTime.SEND_NOW, []),
        (DeliverAt.PROFILE_TIME_ZONE, PassedTime.NEXT_DAY, []),
        (DeliverAt.CAMPAIGN_TIME_ZONE, PassedTime.NEXT_DAY, [("onPassedTime", ScheduleCode.LOCAL_TIME_INVALID)]),
    ],
)
def test_next_day_needs_profile_time_zone(deliver_at: DeliverAt, on_passed: PassedTime, problems: list) -> None:
    schedule = Schedule(Frequency.ONCE, deliver_at=deliver_at, on_passed_time=on_passed)
    assert [(p.field, p.code) for p in validate_schedule(schedule)] == problems
