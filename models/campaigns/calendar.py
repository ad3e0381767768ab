"""The campaign calendar read from the database: the sandbox's scheduled campaigns expanded by calendar_rules,
the version each occurrence sends, and which segments share profiles (one SQL statement)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from models.audience.entities import Segment
from models.audience.segments import segment_predicate
from models.campaigns.calendar_rules import (
    CalendarCampaign,
    CalendarLimitExceeded,
    Occurrence,
    check_range,
    expand,
    overlapping,
    segment_pairs,
)
from models.campaigns.campaign import Campaign, CampaignRun, CampaignVersion
from models.campaigns.rules import CampaignStatus, CampaignType, Channel
from models.campaigns.schedule import zone
from models.campaigns.values import schedule_from_stored
from models.campaigns.version_rules import VersionState
from models.campaigns.waves import waves_from_stored
from models.sql.reads import fetch, sql_params

# Segments compared in the overlap statement (one CASE column each).
MAX_OVERLAP_SEGMENTS = 50
DEFAULT_STATUSES = (CampaignStatus.SCHEDULED, CampaignStatus.LIVE)


@dataclass(frozen=True)
class CalendarEntry:
    occurrence: Occurrence
    version: int | None  # the run's version when the run exists, else the published one (None: a draft)
    run_id: int | None
    overlaps_with: list[int]  # ids of the campaigns whose audience overlaps this one that day on that channel


async def shared_segments(sandbox_id: int, pairs: set[frozenset[int]], now: datetime) -> set[frozenset[int]]:
    """Of `pairs`, those whose segments have a profile in common now: one statement that tags each profile with
    its memberships, keeps those in two or more, and groups them by membership pattern."""
    ids = sorted({segment for pair in pairs for segment in pair})
    if not ids:
        return set()
    if len(ids) > MAX_OVERLAP_SEGMENTS:
        raise CalendarLimitExceeded(
            "OCCURRENCES", f"more than {MAX_OVERLAP_SEGMENTS} segments meet on a day: ask for fewer campaigns"
        )
    segments = await Segment.filter(id__in=ids, sandbox_id=sandbox_id).order_by("id")
    if len(segments) < 2:
        return set()
    params = sql_params()
    columns = []
    for i, segment in enumerate(segments):
        predicate = await segment_predicate(segment, params, now=now)
        columns.append(f"CASE WHEN {predicate} THEN 1 ELSE 0 END AS s{i}")
    sandbox = params.add(sandbox_id)
    names = [f"s{i}" for i in range(len(segments))]
    sql = (
        f"SELECT {', '.join(names)} FROM (SELECT {', '.join(columns)} FROM profile p WHERE p.sandbox_id = {sandbox}) m "
        f"WHERE {' + '.join(names)} >= 2 GROUP BY {', '.join(names)}"
    )
    shared: set[frozenset[int]] = set()
    for row in await fetch(sql, params):
        members = [segments[i].id for i, name in enumerate(names) if int(row[name]) == 1]
        shared.update(frozenset(pair) for pair in combinations(members, 2))
    return shared & pairs


async def campaign_calendar(
    sandbox_id: int,
    start: datetime,
    end: datetime,
    *,
    time_zone: str = "UTC",
    statuses: Sequence[CampaignStatus] = DEFAULT_STATUSES,
    channel: Channel | None = None,
    now: datetime,
) -> tuple[list[CalendarEntry], dict[int, Campaign]]:
    """The occurrences in [start, end) of the sandbox's scheduled campaigns, with their campaigns by id."""
    check_range(start, end)
    tz = zone(time_zone)
    if tz is None:
        raise CalendarLimitExceeded("TIME_ZONE", f"unknown IANA time zone {time_zone!r}")
    query = Campaign.filter(sandbox_id=sandbox_id, type=CampaignType.SCHEDULED, status__in=list(statuses))
    if channel is not None:
        query = query.filter(channel=channel)
    rows = await query.order_by("id")
    campaigns = [
        CalendarCampaign(
            id=row.id,
            status=row.status,
            channel=Channel(row.channel) if row.channel else None,
            segment_id=row.segment_id,
            schedule=schedule_from_stored(row.schedule or {}),
            activated_at=row.activated_at,
            waves=waves_from_stored(row.waves),
        )
        for row in rows
    ]
    occurrences = expand(campaigns, start, end, tz, now)
    shared = await shared_segments(sandbox_id, segment_pairs(occurrences), now)
    flags = overlapping(occurrences, lambda a, b: frozenset((a, b)) in shared)
    ids = sorted({o.campaign_id for o in occurrences})
    published = dict(
        await CampaignVersion.filter(campaign_id__in=ids, state=VersionState.PUBLISHED).values_list(
            "campaign_id", "number"
        )
    )
    runs = {
        (campaign_id, at): (run_id, version)
        for run_id, campaign_id, at, version in await CampaignRun.filter(
            campaign_id__in=ids, scheduled_for__gte=start, scheduled_for__lt=end
        ).values_list("id", "campaign_id", "scheduled_for", "campaign_version")
    }
    entries = []
    for i, occurrence in enumerate(occurrences):
        run_id, run_version = runs.get((occurrence.campaign_id, occurrence.run_time), (None, None))
        version = run_version if run_version is not None else published.get(occurrence.campaign_id)
        entries.append(CalendarEntry(occurrence, version, run_id, flags.get(i, [])))
    return entries, {row.id: row for row in rows}
