"""Pure rules of campaign versions (which edits make a draft, the diff) and of the calendar (expansion, bounds,
overlaps), as tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.campaigns.calendar_rules import (
    MAX_OCCURRENCES,
    CalendarCampaign,
    CalendarLimitExceeded,
    check_range,
    expand,
    overlapping,
    segment_pairs,
)
from models.campaigns.rules import CampaignStatus, CampaignType, Channel, Frequency
from models.campaigns.schedule import Schedule
from models.campaigns.version_rules import FieldChange, diff_versions, refused_while_versioned, versions_apply
from models.campaigns.waves import Waves

S, T = CampaignStatus, CampaignType


@pytest.mark.parametrize(
    ("status", "kind", "recurring", "expected"),
    [
        (S.LIVE, T.SCHEDULED, True, True),
        (S.SCHEDULED, T.SCHEDULED, True, True),
        (S.LIVE, T.API_TRIGGERED, False, True),
        (S.LIVE, T.SCHEDULED, False, False),  # a one-shot campaign: edits stay refused
        (S.DRAFT, T.SCHEDULED, True, False),  # a draft is edited in place
        (S.STOPPED, T.SCHEDULED, True, False),
        (S.COMPLETED, T.API_TRIGGERED, False, False),
    ],
)
def test_which_campaigns_are_versioned(status: S, kind: T, recurring: bool, expected: bool) -> None:
    assert versions_apply(status, kind, recurring) is expected


def test_fields_outside_versions_are_refused() -> None:
    assert refused_while_versioned(["content", "tracking", "preset_id", "throttle_per_second", "tags"]) == []
    assert refused_while_versioned(["content", "segment_id", "name", "schedule"]) == ["name", "schedule", "segment_id"]


def test_diff_lists_changed_leaves_by_input_path() -> None:
    before = {
        "content": {"email": {"subject": "A", "html": "<p>x</p>", "text": None}},
        "tracking": {"opens": True, "clicks": True},
        "preset_id": 1,
        "throttle_per_second": None,
    }
    after = {
        "content": {"email": {"subject": "B", "html": "<p>x</p>"}, "sms": {"text": "hi"}},
        "tracking": {"opens": False, "clicks": True},
        "preset_id": 2,
        "throttle_per_second": 10,
    }
    assert diff_versions(before, after) == [
        FieldChange("action.presetId", 1, 2),
        FieldChange("content.email.subject", "A", "B"),
        FieldChange("content.sms.text", None, "hi"),
        FieldChange("throttle", None, 10),
        FieldChange("tracking.opens", True, False),
    ]
    assert diff_versions(after, after) == []
    assert diff_versions({"content": {}}, {}) == []  # empty content and no content are the same message


def daily(at: str, tz: str = "Europe/Paris") -> Schedule:
    return Schedule(
        frequency=Frequency.DAILY,
        start_at=datetime(2099, 3, 1, tzinfo=UTC),
        time_of_day=time.fromisoformat(at),
        timezone=tz,
    )


def campaign(pk: int, segment: int | None, channel: Channel = Channel.EMAIL, at: str = "09:00") -> CalendarCampaign:
    return CalendarCampaign(pk, S.LIVE, channel, segment, daily(at), datetime(2099, 3, 1, tzinfo=UTC))


WINDOW = (datetime(2099, 3, 28, tzinfo=UTC), datetime(2099, 3, 31, tzinfo=UTC))
NOW = datetime(2099, 3, 1, tzinfo=UTC)


def test_expansion_follows_the_wall_clock_across_dst() -> None:
    found = expand([campaign(1, 10)], *WINDOW, ZoneInfo("Europe/Paris"), NOW)
    assert [o.at.isoformat() for o in found] == [
        "2099-03-28T08:00:00+00:00",
        "2099-03-29T07:00:00+00:00",
        "2099-03-30T07:00:00+00:00",
    ]
    # Days are counted in the calendar's zone: 23:30 in Paris is the next day in Tokyo.
    late = expand([campaign(1, 10, at="23:30")], *WINDOW, ZoneInfo("Asia/Tokyo"), NOW)
    assert [o.day.isoformat() for o in late] == ["2099-03-29", "2099-03-30", "2099-03-31"]


def test_each_wave_is_an_occurrence_at_its_start_and_keeps_its_runs_fire_time() -> None:
    waved = replace(
        campaign(
            1,
            10,
            at="23:00",
        ),
        waves=Waves(3, interval_minutes=60),
    )
    found = expand([waved], WINDOW[0], WINDOW[0] + timedelta(days=1), ZoneInfo("Europe/Paris"), NOW)
    # 23:00 Paris is 22:00 UTC on 28 March (before the switch): waves at 22:00, 23:00 and 00:00 UTC.
    assert [(o.wave, o.at.isoformat(), o.day.isoformat()) for o in found] == [
        (1, "2099-03-28T22:00:00+00:00", "2099-03-28"),
        (2, "2099-03-28T23:00:00+00:00", "2099-03-29"),  # past midnight in Paris: the next day
    ]  # the third wave starts at 00:00 UTC on the 29th, outside the window
    assert {o.run_time for o in found} == {datetime(2099, 3, 28, 22, tzinfo=UTC)}
    # A campaign on the same channel and segment firing only on the 29th meets the second wave (its day), not
    # the first one of the same run (the 28th).
    once = replace(
        campaign(2, 10, at="08:00"),
        schedule=replace(
            daily("08:00"), start_at=datetime(2099, 3, 29, tzinfo=UTC), end_at=datetime(2099, 3, 29, 12, tzinfo=UTC)
        ),
    )
    window = (WINDOW[0], WINDOW[0] + timedelta(days=1, hours=12))
    other = [o for o in expand([waved, once], *window, ZoneInfo("Europe/Paris"), NOW) if o.at < window[1]]
    flags = overlapping(other, lambda a, b: False)
    by_key = {(o.campaign_id, o.wave, o.day.day): i for i, o in enumerate(other)}
    assert by_key[1, 1, 28] not in flags
    assert flags[by_key[1, 2, 29]] == [2]


def test_a_draft_is_shown_as_if_activated_now() -> None:
    draft = CalendarCampaign(1, S.DRAFT, Channel.EMAIL, 10, Schedule(), None)  # ONCE, no start: fires at activation
    now = datetime(2099, 3, 29, 12, tzinfo=UTC)
    assert [o.at for o in expand([draft], *WINDOW, ZoneInfo("UTC"), now)] == [now]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (WINDOW[1], WINDOW[0]),
        (WINDOW[0], WINDOW[0]),
        (WINDOW[0], WINDOW[0] + timedelta(days=92, seconds=1)),
        (datetime(2099, 3, 1), datetime(2099, 3, 2)),  # no offset
    ],
)
def test_bad_ranges_are_refused(start: datetime, end: datetime) -> None:
    with pytest.raises(CalendarLimitExceeded) as refused:
        check_range(start, end)
    assert refused.value.what == "RANGE"


def test_too_many_occurrences_are_refused_not_cut() -> None:
    start = datetime(2099, 3, 1, tzinfo=UTC)
    many = [campaign(i, i) for i in range(MAX_OCCURRENCES // 92 + 1)]
    with pytest.raises(CalendarLimitExceeded) as refused:
        expand(many, start, start + timedelta(days=92), ZoneInfo("UTC"), NOW)
    assert refused.value.what == "OCCURRENCES"
    assert len(expand(many[:-1], start, start + timedelta(days=92), ZoneInfo("UTC"), NOW)) <= MAX_OCCURRENCES


def test_overlaps_need_the_same_day_the_same_channel_and_shared_profiles() -> None:
    campaigns = [
        campaign(1, 10),  # segment 10
        campaign(2, 10, at="18:00"),  # same segment, same day: overlaps 1
        campaign(3, 20),  # segment 20 shares profiles with 10
        campaign(4, 30),  # segment 30 shares none
        campaign(5, 10, channel=Channel.SMS),  # same segment, other channel
    ]
    found = expand(campaigns, *WINDOW, ZoneInfo("UTC"), NOW)
    assert segment_pairs(found) == {frozenset((10, 20)), frozenset((10, 30)), frozenset((20, 30))}
    flags = overlapping(found, lambda a, b: {a, b} == {10, 20})
    by_campaign = {found[i].campaign_id: others for i, others in flags.items()}
    assert by_campaign == {1: [2, 3], 2: [1, 3], 3: [1, 2]}
