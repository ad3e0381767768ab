"""The campaign calendar (issue 20): schedules expanded into occurrences, and overlapping audiences flagged.
Pure: imports neither Tortoise nor Strawberry. models/campaigns/calendar.py reads the campaigns and answers
which segments share profiles.

Decided here:
- Occurrences are the fire times of `schedule.fire_times` (the dispatcher's own function: recurrences, time zones
  and daylight saving as the runs get them) in [from, to). A SCHEDULED or LIVE campaign fires from its start (or
  its activation); a DRAFT is shown as if activated now, as the review's plan does. API-triggered campaigns have
  no schedule, hence no occurrence.
- A campaign sent in waves has one occurrence per wave, at the wave's earliest start (models.campaigns.waves:
  an interval counts from the run's fire time; a wave also waits for the previous one to finish), numbered from
  1; `fire_at` is the run's fire time. Shown: the waves of runs firing in [from, to) that start in it too.
- Bounded: at most MAX_RANGE_DAYS between from and to, at most MAX_OCCURRENCES occurrences; beyond either the
  calendar is refused with a typed error rather than cut silently.
- Overlap: two occurrences of different campaigns, on the same day (in the calendar's time zone) and the same
  channel, whose audiences overlap: the same segment, or two segments with at least one profile in both now
  (one SQL statement for all the segments that meet, see calendar.py). Membership is judged now, not at the
  occurrence's time: the calendar's estimates are the review's, also taken now. Consent, identities and
  suppressions are not considered: a profile in both segments is the risk to show, even if one send would
  exclude it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from models.campaigns.rules import CampaignStatus, Channel
from models.campaigns.schedule import MAX_FIRE_TIMES, Schedule, fire_times
from models.campaigns.waves import Waves, wave_starts

MAX_RANGE_DAYS = 92
MAX_OCCURRENCES = 2_000


class CalendarLimitExceeded(Exception):
    """The range or the number of occurrences is past the calendar's bounds."""

    def __init__(self, what: str, message: str) -> None:
        self.what = what  # "RANGE" or "OCCURRENCES"
        super().__init__(message)


@dataclass(frozen=True)
class CalendarCampaign:
    id: int
    status: CampaignStatus
    channel: Channel | None
    segment_id: int | None
    schedule: Schedule
    activated_at: datetime | None
    waves: Waves | None = None


@dataclass(frozen=True)
class Occurrence:
    campaign_id: int
    at: datetime  # UTC
    day: date  # in the calendar's time zone
    channel: Channel | None
    segment_id: int | None
    wave: int | None = None  # 1-based, for a campaign sent in waves
    fire_at: datetime | None = None  # the run's fire time (`at` is the wave's start); None: the same as `at`

    @property
    def run_time(self) -> datetime:
        return self.fire_at or self.at


def check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise CalendarLimitExceeded("RANGE", "`from` and `to` need a time zone offset")
    if end <= start:
        raise CalendarLimitExceeded("RANGE", "`to` must be after `from`")
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise CalendarLimitExceeded("RANGE", f"at most {MAX_RANGE_DAYS} days from `from` to `to`")


def expand(
    campaigns: Iterable[CalendarCampaign], start: datetime, end: datetime, tz: ZoneInfo, now: datetime
) -> list[Occurrence]:
    """Every fire time in [start, end) of each campaign, in time order; CalendarLimitExceeded past the bounds."""
    check_range(start, end)
    out: list[Occurrence] = []
    for campaign in campaigns:
        activated_at = now if CampaignStatus(campaign.status) is CampaignStatus.DRAFT else campaign.activated_at
        room = MAX_OCCURRENCES - len(out) + 1  # one more than fits says the calendar is too large
        for at in fire_times(
            campaign.schedule,
            window_start=start,
            window_end=end,
            activated_at=activated_at,
            limit=min(room, MAX_FIRE_TIMES),
        ):
            if campaign.waves is None:
                out.append(Occurrence(campaign.id, at, at.astimezone(tz).date(), campaign.channel, campaign.segment_id))
                continue
            for number, starts in enumerate(wave_starts(campaign.waves, at), start=1):
                if start <= starts < end:
                    day = starts.astimezone(tz).date()
                    out.append(Occurrence(campaign.id, starts, day, campaign.channel, campaign.segment_id, number, at))
        if len(out) > MAX_OCCURRENCES:
            raise CalendarLimitExceeded(
                "OCCURRENCES", f"more than {MAX_OCCURRENCES} occurrences: ask for a shorter range or fewer campaigns"
            )
    out.sort(key=lambda o: (o.at, o.campaign_id, o.wave or 0))
    return out


def _meetings(occurrences: Iterable[Occurrence]) -> list[list[Occurrence]]:
    """Occurrences grouped by (day, channel), only groups with two campaigns or more."""
    groups: dict[tuple[date, Channel | None], list[Occurrence]] = defaultdict(list)
    for occurrence in occurrences:
        if occurrence.channel is not None and occurrence.segment_id is not None:
            groups[occurrence.day, occurrence.channel].append(occurrence)
    return [g for g in groups.values() if len({o.campaign_id for o in g}) > 1]


def segment_pairs(occurrences: Iterable[Occurrence]) -> set[frozenset[int]]:
    """The pairs of distinct segments that meet on a day and channel: those whose shared profiles matter."""
    pairs: set[frozenset[int]] = set()
    for group in _meetings(occurrences):
        segments = sorted({o.segment_id for o in group if o.segment_id is not None})
        for i, a in enumerate(segments):
            for b in segments[i + 1 :]:
                pairs.add(frozenset((a, b)))
    return pairs


def overlapping(occurrences: list[Occurrence], shares: Callable[[int, int], bool]) -> dict[int, list[int]]:
    """Index of each flagged occurrence → ids of the other campaigns it overlaps with that day on that channel."""
    index = {id(o): i for i, o in enumerate(occurrences)}
    flagged: dict[int, set[int]] = defaultdict(set)
    for group in _meetings(occurrences):
        for a in group:
            for b in group:
                if a.campaign_id == b.campaign_id or a.segment_id is None or b.segment_id is None:
                    continue
                if a.segment_id == b.segment_id or shares(a.segment_id, b.segment_id):
                    flagged[index[id(a)]].add(b.campaign_id)
    return {i: sorted(others) for i, others in flagged.items()}
