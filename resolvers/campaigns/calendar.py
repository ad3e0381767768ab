"""`campaignCalendar`: scheduled campaigns expanded into occurrences, overlapping audiences flagged
(models/campaigns/calendar_rules.py decides what overlaps; models/campaigns/calendar.py reads)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry import relay
from tortoise.transactions import in_transaction

from models.campaigns.calendar import DEFAULT_STATUSES, campaign_calendar
from models.campaigns.calendar_rules import MAX_OCCURRENCES, MAX_RANGE_DAYS, CalendarLimitExceeded
from models.campaigns.campaign import Campaign as CampaignModel
from models.campaigns.reviewing import estimate_audience
from models.campaigns.rules import CampaignStatus as CampaignStatusEnum
from models.campaigns.rules import Channel as ChannelEnum
from resolvers.campaigns.enums import CampaignStatus, Channel
from resolvers.campaigns.types import Campaign
from resolvers.context import Info
from resolvers.errors import Error
from resolvers.permissions import VIEWER
from resolvers.vocabulary import described_enum


@described_enum(
    description="Which bound of the calendar a request went past.",
    values={
        "RANGE": f"`to` not after `from`, or more than {MAX_RANGE_DAYS} days after it.",
        "OCCURRENCES": f"More than {MAX_OCCURRENCES} occurrences (or too many segments meeting on one day).",
        "TIME_ZONE": "`timeZone` is not an IANA time zone.",
    },
)
class CalendarLimit(Enum):
    RANGE = "RANGE"
    OCCURRENCES = "OCCURRENCES"
    TIME_ZONE = "TIME_ZONE"


@strawberry.type(description="The calendar was refused: its range or size is past the bounds. Ask for less.")
class CalendarLimitError(Error):
    limit: CalendarLimit = strawberry.field(description="The bound that was passed.")
    max_days: int = strawberry.field(description="The longest range, in days.")
    max_occurrences: int = strawberry.field(description="The most occurrences one calendar holds.")


@strawberry.type(description="The review plan's audience estimate of a campaign, taken now.")
class CalendarAudienceEstimate:
    qualified: int = strawberry.field(description="Profiles in the segment now.")
    contactable: int = strawberry.field(description="Of those, reachable (identity, address, consent, not suppressed).")


@strawberry.type(description="One scheduled run of a campaign in the calendar.")
class CalendarOccurrence:
    campaign: Campaign = strawberry.field(description="The campaign.")
    scheduled_for: datetime = strawberry.field(description="When it fires (UTC), as the dispatcher computes it.")
    day: date = strawberry.field(description="Its day in the calendar's time zone (overlaps are per day).")
    wave: int | None = strawberry.field(
        description="For a campaign sent in waves, which wave (from 1): `scheduledFor` is then the wave's earliest "
        "start (it also waits for the previous wave to finish). Null otherwise."
    )
    channel: Channel | None = strawberry.field(description="The campaign's channel.")
    version: int | None = strawberry.field(
        description="The campaign version it sends: the run's when it has run (or is running), else the version "
        "published now. Null for a draft campaign."
    )
    run_id: strawberry.ID | None = strawberry.field(description="Global id of its run, once the run exists.")
    overlaps: bool = strawberry.field(
        description="True when another campaign on the same channel fires the same day to an overlapping audience "
        "(the same segment, or segments with a profile in common now)."
    )
    overlaps_with: list[strawberry.ID] = strawberry.field(description="Global ids of those other campaigns.")
    campaign_pk: strawberry.Private[int]

    @strawberry.field(description="The campaign's audience estimate (the review plan's), taken now.")
    async def estimated_audience(self, info: Info) -> CalendarAudienceEstimate | None:
        loaders = info.context.loaders
        batch = loaders.custom("calendar_estimate", lambda ids: _estimates(loaders.sandbox_id or 0, ids))
        return await batch.load(self.campaign_pk)


async def _estimates(sandbox_id: int, ids: Sequence[int]) -> list[CalendarAudienceEstimate | None]:
    """The estimate of each of the sandbox's campaigns `ids`, in that order: one per campaign however many
    occurrences it has."""
    now = datetime.now(UTC)
    rows = {row.id: row for row in await CampaignModel.filter(id__in=list(ids), sandbox_id=sandbox_id)}
    out: list[CalendarAudienceEstimate | None] = []
    async with in_transaction() as conn:
        for pk in ids:
            estimate = await estimate_audience(rows[pk], now=now, conn=conn) if pk in rows else None
            out.append(
                CalendarAudienceEstimate(qualified=estimate.qualified, contactable=estimate.contactable)
                if estimate
                else None
            )
    return out


@strawberry.type(description="Scheduled campaigns of a period, expanded into occurrences.")
class CampaignCalendar:
    occurrences: list[CalendarOccurrence] = strawberry.field(description="Every occurrence, in time order.")
    overlap_count: int = strawberry.field(description="How many occurrences are flagged `overlaps`.")


@strawberry.input(description="Which campaigns the calendar shows.")
class CampaignCalendarFilter:
    statuses: list[CampaignStatus] | None = strawberry.field(
        default=None,
        description="Statuses to show (default SCHEDULED and LIVE). A DRAFT is shown as if activated now.",
    )
    channel: Channel | None = strawberry.field(default=None, description="Only this channel.")


CampaignCalendarResult = Annotated[
    CampaignCalendar | CalendarLimitError,
    strawberry.union("CampaignCalendarResult", description="Result of `campaignCalendar`."),
]


def _gid(type_name: str, pk: Any) -> strawberry.ID:
    return strawberry.ID(str(relay.GlobalID(type_name, str(pk))))


@strawberry.type
class CampaignCalendarQuery:
    @strawberry.field(
        description=f"The sandbox's scheduled campaigns from `from` to `to` (at most {MAX_RANGE_DAYS} days, "
        f"{MAX_OCCURRENCES} occurrences), their recurrences expanded as the dispatcher fires them (time zones, "
        "daylight saving). Occurrences of different campaigns on the same day and channel whose audiences overlap "
        "are flagged. API-triggered campaigns have no schedule and do not appear.",
        permission_classes=VIEWER,
    )
    async def campaign_calendar(
        self,
        info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from", description="Start (inclusive), with offset.")],
        to: Annotated[datetime, strawberry.argument(description="End (exclusive), with offset.")],
        time_zone: Annotated[
            str, strawberry.argument(description="IANA time zone whose days group occurrences for overlaps.")
        ] = "UTC",
        filter: Annotated[
            CampaignCalendarFilter | None, strawberry.argument(description="Which campaigns; SCHEDULED and LIVE.")
        ] = None,
    ) -> CampaignCalendarResult:
        filter = filter or CampaignCalendarFilter()
        statuses = [CampaignStatusEnum(s.value) for s in filter.statuses] if filter.statuses else DEFAULT_STATUSES
        try:
            entries, campaigns = await campaign_calendar(
                info.context.require_caller().sandbox_id,
                from_,
                to,
                time_zone=time_zone[:100],
                statuses=statuses,
                channel=ChannelEnum(filter.channel.value) if filter.channel is not None else None,
                now=datetime.now(UTC),
            )
        except CalendarLimitExceeded as exc:
            return CalendarLimitError(
                message=str(exc),
                limit=CalendarLimit(exc.what),
                max_days=MAX_RANGE_DAYS,
                max_occurrences=MAX_OCCURRENCES,
            )
        nodes = {pk: Campaign.from_model(row) for pk, row in campaigns.items()}
        occurrences = [
            CalendarOccurrence(
                campaign=nodes[e.occurrence.campaign_id],
                scheduled_for=e.occurrence.at,
                day=e.occurrence.day,
                wave=e.occurrence.wave,
                channel=e.occurrence.channel,
                version=e.version,
                run_id=_gid("CampaignRun", e.run_id) if e.run_id is not None else None,
                overlaps=bool(e.overlaps_with),
                overlaps_with=[_gid("Campaign", pk) for pk in e.overlaps_with],
                campaign_pk=e.occurrence.campaign_id,
            )
            for e in entries
        ]
        return CampaignCalendar(occurrences=occurrences, overlap_count=sum(1 for o in occurrences if o.overlaps))
