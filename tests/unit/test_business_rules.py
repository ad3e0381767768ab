"""Business rules as tables: cap periods and quiet-hours windows in profiles' time zones (half-hour and
quarter-hour offsets, +13:00, both daylight-saving switches, a zone whose midnight is skipped), and the check of a
rule set's shape."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.business_rules.rules import (
    CapPeriod,
    QuietAction,
    QuietHours,
    Weekday,
    check_rule_set,
    parse_clock,
    period_bounds,
    quiet_window,
    rule_set_from_json,
    zone_of,
)

CHANNELS = ["EMAIL", "SMS", "PUSH", "IN_APP"]
CATEGORIES = ["MARKETING", "TRANSACTIONAL"]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


PERIODS = [
    # zone, period, now (UTC), start (UTC), end (UTC)
    ("Asia/Kathmandu", CapPeriod.DAY, utc(2026, 3, 10, 20, 0), utc(2026, 3, 10, 18, 15), utc(2026, 3, 11, 18, 15)),
    ("Pacific/Tongatapu", CapPeriod.DAY, utc(2026, 6, 1, 12, 0), utc(2026, 6, 1, 11, 0), utc(2026, 6, 2, 11, 0)),
    ("America/St_Johns", CapPeriod.DAY, utc(2026, 1, 15, 2, 0), utc(2026, 1, 14, 3, 30), utc(2026, 1, 15, 3, 30)),
    ("UTC", CapPeriod.DAY, utc(2026, 1, 15, 23, 59), utc(2026, 1, 15), utc(2026, 1, 16)),
    # US spring forward (8 March 2026): a 23-hour day.
    ("America/New_York", CapPeriod.DAY, utc(2026, 3, 8, 12, 0), utc(2026, 3, 8, 5, 0), utc(2026, 3, 9, 4, 0)),
    # EU fall back (25 October 2026): a 25-hour day.
    ("Europe/Paris", CapPeriod.DAY, utc(2026, 10, 25, 12, 0), utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 23, 0)),
    # A week holding the EU spring switch (29 March 2026): Monday to Monday, 167 hours.
    ("Europe/Paris", CapPeriod.WEEK, utc(2026, 3, 25, 10, 0), utc(2026, 3, 22, 23, 0), utc(2026, 3, 29, 22, 0)),
    # Sunday night local is still the week that began on Monday.
    ("Europe/Paris", CapPeriod.WEEK, utc(2026, 1, 18, 22, 30), utc(2026, 1, 11, 23, 0), utc(2026, 1, 18, 23, 0)),
    # Already Monday in Kathmandu while it is Sunday in UTC.
    ("Asia/Kathmandu", CapPeriod.WEEK, utc(2026, 1, 18, 20, 0), utc(2026, 1, 18, 18, 15), utc(2026, 1, 25, 18, 15)),
    ("Asia/Kathmandu", CapPeriod.MONTH, utc(2026, 1, 31, 20, 0), utc(2026, 1, 31, 18, 15), utc(2026, 2, 28, 18, 15)),
    ("Pacific/Tongatapu", CapPeriod.MONTH, utc(2026, 12, 31, 12, 0), utc(2026, 12, 31, 11, 0), utc(2027, 1, 31, 11, 0)),
    # Santiago skips its midnight (6 September 2026, 00:00 → 01:00): the day starts when the clocks jump.
    ("America/Santiago", CapPeriod.DAY, utc(2026, 9, 6, 12, 0), utc(2026, 9, 6, 4, 0), utc(2026, 9, 7, 3, 0)),
]


@pytest.mark.parametrize(("zone", "period", "now", "start", "end"), PERIODS)
def test_calendar_periods_start_at_local_midnight(
    zone: str, period: CapPeriod, now: datetime, start: datetime, end: datetime
) -> None:
    assert period_bounds(now, ZoneInfo(zone), period) == (start, end)


def test_rolling_hours_count_back_from_now_and_reserve_as_far_ahead() -> None:
    now = utc(2026, 3, 8, 12, 0)
    assert period_bounds(now, ZoneInfo("America/New_York"), CapPeriod.ROLLING_HOURS, 36) == (
        now - timedelta(hours=36),
        now + timedelta(hours=36),
    )


def quiet(days: str, start: str, until: str, action: QuietAction = QuietAction.DELAY) -> QuietHours:
    weekdays = tuple(Weekday) if days == "ALL" else tuple(Weekday(d) for d in days.split(","))
    return QuietHours("EMAIL", weekdays, parse_clock(start), parse_clock(until), action)


NIGHT = quiet("ALL", "22:00", "07:00")
WINDOWS = [
    # rules, zone, now (UTC), expected: None or (action, end in UTC)
    ([NIGHT], "Europe/Paris", utc(2026, 1, 13, 22, 30), (QuietAction.DELAY, utc(2026, 1, 14, 6, 0))),
    ([NIGHT], "Europe/Paris", utc(2026, 1, 14, 5, 59), (QuietAction.DELAY, utc(2026, 1, 14, 6, 0))),
    ([NIGHT], "Europe/Paris", utc(2026, 1, 14, 6, 0), None),  # 07:00 local: open
    ([NIGHT], "Europe/Paris", utc(2026, 1, 13, 20, 59), None),  # 21:59 local
    ([NIGHT], "Europe/Paris", utc(2026, 1, 13, 21, 0), (QuietAction.DELAY, utc(2026, 1, 14, 6, 0))),
    # Friday night only: Saturday 03:00 is inside (the window started Friday), Sunday 03:00 is not.
    ([quiet("FRIDAY", "22:00", "07:00")], "UTC", utc(2026, 1, 17, 3, 0), (QuietAction.DELAY, utc(2026, 1, 17, 7))),
    ([quiet("FRIDAY", "22:00", "07:00")], "UTC", utc(2026, 1, 18, 3, 0), None),
    # A window inside one day.
    (
        [quiet("MONDAY", "12:00", "14:00", QuietAction.SKIP)],
        "UTC",
        utc(2026, 1, 12, 13),
        (QuietAction.SKIP, utc(2026, 1, 12, 14)),
    ),
    ([quiet("MONDAY", "12:00", "14:00")], "UTC", utc(2026, 1, 13, 13), None),
    # US spring forward inside the window: Saturday 22:00 EST to Sunday 07:00 EDT is 8 hours.
    (
        [quiet("SATURDAY", "22:00", "07:00")],
        "America/New_York",
        utc(2026, 3, 8, 3, 0),
        (QuietAction.DELAY, utc(2026, 3, 8, 11, 0)),
    ),
    ([quiet("SATURDAY", "22:00", "07:00")], "America/New_York", utc(2026, 3, 8, 11, 0), None),
    # EU fall back inside the window: Saturday 22:00 CEST to Sunday 07:00 CET is 10 hours.
    (
        [quiet("SATURDAY", "22:00", "07:00")],
        "Europe/Paris",
        utc(2026, 10, 24, 20, 0),
        (QuietAction.DELAY, utc(2026, 10, 25, 6, 0)),
    ),
    # Quarter-hour and +13:00 zones.
    ([NIGHT], "Asia/Kathmandu", utc(2026, 1, 1, 16, 30), (QuietAction.DELAY, utc(2026, 1, 2, 1, 15))),
    ([NIGHT], "Pacific/Tongatapu", utc(2026, 6, 1, 9, 0), (QuietAction.DELAY, utc(2026, 6, 1, 18, 0))),
    ([NIGHT], "America/St_Johns", utc(2026, 1, 15, 2, 0), (QuietAction.DELAY, utc(2026, 1, 15, 10, 30))),
    # Touching windows are followed to their end; SKIP wins where windows overlap.
    (
        [quiet("MONDAY", "20:00", "22:00"), quiet("MONDAY", "22:00", "23:00")],
        "UTC",
        utc(2026, 1, 12, 21),
        (QuietAction.DELAY, utc(2026, 1, 12, 23)),
    ),
    (
        [NIGHT, quiet("ALL", "23:00", "01:00", QuietAction.SKIP)],
        "UTC",
        utc(2026, 1, 12, 23, 30),
        (QuietAction.SKIP, utc(2026, 1, 13, 7)),
    ),
    (
        [NIGHT, quiet("ALL", "23:00", "01:00", QuietAction.SKIP)],
        "UTC",
        utc(2026, 1, 12, 22, 30),
        (QuietAction.DELAY, utc(2026, 1, 13, 7)),
    ),
    ([], "UTC", utc(2026, 1, 12, 23, 30), None),
]


@pytest.mark.parametrize(("rules", "zone", "now", "expected"), WINDOWS)
def test_quiet_hours_in_the_profiles_zone(
    rules: list[QuietHours], zone: str, now: datetime, expected: tuple[QuietAction, datetime] | None
) -> None:
    assert quiet_window(now, ZoneInfo(zone), rules) == expected


def test_every_minute_of_a_dst_night_is_judged_consistently() -> None:
    # Around both New York switches, minute by minute: inside the window exactly when the local clock says
    # 22:00 to 07:00, and the end is always the next 07:00 local.
    zone = ZoneInfo("America/New_York")
    for day in (datetime(2026, 3, 7, 18, tzinfo=UTC), datetime(2026, 10, 31, 18, tzinfo=UTC)):
        for minute in range(0, 24 * 60, 7):
            now = day + timedelta(minutes=minute)
            local = now.astimezone(zone)
            inside = local.time() >= time(22) or local.time() < time(7)
            verdict = quiet_window(now, zone, [NIGHT])
            assert (verdict is not None) == inside, local
            if verdict is not None:
                end = verdict[1].astimezone(zone)
                assert end.time() == time(7) and end > now and end - now <= timedelta(hours=10)


def test_unknown_or_missing_zones_fall_back() -> None:
    assert zone_of("Asia/Kathmandu", "UTC") == ZoneInfo("Asia/Kathmandu")
    assert zone_of(None, "Europe/Paris") == ZoneInfo("Europe/Paris")
    assert zone_of("Mars/Olympus", "Europe/Paris") == ZoneInfo("Europe/Paris")
    assert zone_of(None, "") == ZoneInfo("UTC")


GOOD_CAP = {"channel": "EMAIL", "category": "MARKETING", "limit": 2, "period": "WEEK", "hours": None}
GOOD_QUIET = {"channel": "EMAIL", "weekdays": ["MONDAY"], "from": "22:00", "until": "07:00", "action": "DELAY"}
SHAPES = [
    ([GOOD_CAP], [GOOD_QUIET], []),
    ([{**GOOD_CAP, "period": "ROLLING_HOURS", "hours": 36}], [], []),
    ([{**GOOD_CAP, "period": "ROLLING_HOURS"}], [], [("input.caps[0].hours", "OUT_OF_RANGE")]),
    ([{**GOOD_CAP, "hours": 3}], [], [("input.caps[0].hours", "NOT_ALLOWED")]),
    ([{**GOOD_CAP, "limit": -1}], [], [("input.caps[0].limit", "OUT_OF_RANGE")]),
    ([{**GOOD_CAP, "channel": "FAX"}], [], [("input.caps[0].channel", "INVALID_CHOICE")]),
    ([GOOD_CAP, GOOD_CAP], [], [("input.caps", "INVALID")]),
    ([], [{**GOOD_QUIET, "from": "7:00"}], [("input.quietHours[0].from", "INVALID_FORMAT")]),
    ([], [{**GOOD_QUIET, "until": "24:00"}], [("input.quietHours[0].until", "INVALID_FORMAT")]),
    ([], [{**GOOD_QUIET, "until": "22:00"}], [("input.quietHours[0].until", "EMPTY")]),
    ([], [{**GOOD_QUIET, "weekdays": []}], [("input.quietHours[0].weekdays", "INVALID_CHOICE")]),
    ([], [{**GOOD_QUIET, "action": "WAIT"}], [("input.quietHours[0].action", "INVALID_CHOICE")]),
    ([GOOD_CAP] * 51, [], None),  # too many rules (and duplicates): refused
]


@pytest.mark.parametrize(("caps", "quiet_hours", "expected"), SHAPES)
def test_rule_set_shape(caps: list, quiet_hours: list, expected: list | None) -> None:
    found = [(field, code) for field, code, _ in check_rule_set(caps, quiet_hours, CHANNELS, CATEGORIES)]
    if expected is None:
        assert ("input", "TOO_MANY") in found
    else:
        assert found == expected


def test_stored_rules_read_back() -> None:
    stored = {"caps": [GOOD_CAP], "quietHours": [GOOD_QUIET]}
    rules = rule_set_from_json(stored)
    assert rules.to_json() == stored
    assert rules.caps_for("EMAIL", "MARKETING") == rules.caps
    assert rules.caps_for("SMS", "MARKETING") == ()
    assert rules.quiet_for("EMAIL")[0].wraps


def test_the_review_warns_when_the_rules_would_exclude_more_than_half() -> None:
    from models.campaigns.review import AlertCode, Severity, plan, review
    from models.campaigns.review_snapshot import AudienceEstimate, AudienceFacts, CampaignSnapshot, RuleEstimate

    now = utc(2026, 1, 14, 12)
    estimate = AudienceEstimate(qualified=12, with_identity=11, contactable=10)
    cases = [
        (RuleEstimate("standard", capped=4, quiet_skipped=2, delayed=1), True),
        (RuleEstimate("standard", capped=5, quiet_skipped=0, delayed=5), False),  # half is not more than half
        (None, False),
    ]
    for rules, warned in cases:
        snapshot = CampaignSnapshot(audience=AudienceFacts(estimate=estimate), business_rules=rules)
        alerts = [a for a in review(snapshot, now) if a.code is AlertCode.BUSINESS_RULES_EXCLUDE_MOST]
        assert bool(alerts) == warned
        assert all(a.severity is Severity.WARNING for a in alerts)
        planned = plan(snapshot, now)
        if rules is None:
            assert (planned.excluded_by_rules, planned.delayed_share) == ((), None)
        else:
            expected = tuple(
                (r, n) for r, n in (("FREQUENCY_CAPPED", rules.capped), ("QUIET_HOURS", rules.quiet_skipped)) if n
            )
            assert planned.excluded_by_rules == expected
            assert planned.delayed_share == rules.delayed / 10
