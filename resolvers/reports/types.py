"""GraphQL types of a campaign report. Totals come with the report; the hourly series, the top links and
the domain breakdown are each one SQL statement, run only when asked for."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from models.campaigns.campaign import Campaign as CampaignModel
from models.ledger import reports
from models.ledger.vocabulary import DeliveryReason
from models.ledger.waves import report_wave_figures
from resolvers.campaigns.wave_types import CampaignRunWave
from resolvers.context import Info
from resolvers.vocabulary import ReasonCount, counter, described_enum, reason_counts


@described_enum(description="A report period relative to now.")
class ReportPeriod(Enum):
    LAST_24_HOURS = "LAST_24_HOURS"
    ALL_TIME = "ALL_TIME"


@strawberry.input(description="A time range [from, to), in UTC unless an offset is given.")
class ReportRangeInput:
    from_: datetime = strawberry.field(name="from", description="Start, included.")
    to: datetime = strawberry.field(description="End, excluded; after `from`.")


@strawberry.input(
    one_of=True,
    description=(
        "Which part of the campaign's history to report on: exactly one of a period, a run or a range. "
        "A run covers its deliveries and their events, whenever they happened. A period or range selects "
        "deliveries by their creation time (when a run's audience snapshot targeted the profile) and tracking "
        "events (opens, clicks, unsubscribes, complaints) by the time they happened."
    ),
)
class ReportWindowInput:
    period: ReportPeriod | None = strawberry.field(
        default=strawberry.UNSET, description="LAST_24_HOURS (up to now) or ALL_TIME."
    )
    run_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Global id of one run of the campaign."
    )
    trigger_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="Global id of one API trigger of the campaign: its deliveries (an API campaign's triggers share "
        "one run) and their events.",
    )
    range: ReportRangeInput | None = strawberry.field(default=strawberry.UNSET, description="A time range.")


@described_enum(description="The kind of window a report covers.")
class ReportWindowKind(Enum):
    LAST_24_HOURS = "LAST_24_HOURS"
    ALL_TIME = "ALL_TIME"
    RUN = "RUN"
    RANGE = "RANGE"
    TRIGGER = "TRIGGER"


@strawberry.type(description="The window a report covers, resolved (LAST_24_HOURS gets its bounds).")
class ReportWindow:
    kind: ReportWindowKind = strawberry.field(description="Period, run or range.")
    run_id: strawberry.ID | None = strawberry.field(description="The run, for RUN.")
    trigger_id: strawberry.ID | None = strawberry.field(default=None, description="The API trigger, for TRIGGER.")
    from_: datetime | None = strawberry.field(name="from", description="Start (included), for time windows.")
    to: datetime | None = strawberry.field(description="End (excluded), for time windows.")


@strawberry.type(description="Activity of one UTC hour.")
class ReportHour:
    hour: datetime = strawberry.field(description="Start of the hour (UTC).")
    sent: int = strawberry.field(description="Messages sent in that hour (by send time).")
    delivered: int = strawberry.field(description="Messages delivered (by receipt time, else send time).")
    bounces: int = strawberry.field(description="Bounces (by feedback time, else the time of the refused send).")
    opens: int = strawberry.field(description="Opens recorded in that hour.")
    clicks: int = strawberry.field(description="Clicks recorded in that hour.")


@strawberry.type(description="Clicks on one tracked URL.")
class ReportLink:
    url: str = strawberry.field(description="The URL as sent.")
    clicks: int = strawberry.field(description="Clicks on it.")
    unique_clicks: int = strawberry.field(description="Recipients (deliveries) who clicked it at least once.")


@strawberry.type(description="Figures of one recipient domain (the part of the email address after '@').")
class ReportDomain:
    domain: str = strawberry.field(description="Recipient domain, lower-cased.")
    sent: int = strawberry.field(description="Messages sent to it (delivered + bounces).")
    delivered: int = strawberry.field(description="Messages delivered to it.")
    bounces: int = strawberry.field(description="Hard and soft bounces.")
    opens: int = strawberry.field(description="Opens of those messages within the window.")
    clicks: int = strawberry.field(description="Clicks in those messages within the window.")


@strawberry.type(
    description="The report's figures for the deliveries of one treatment of the campaign's content experiment."
)
class ReportTreatment:
    key: str = strawberry.field(description="The treatment's key (as `Delivery.treatment`).")
    name: str | None = strawberry.field(description="The treatment's name; null if the experiment no longer has it.")
    targeted: int = counter("targeted")
    excluded: int = counter("excluded")
    sent: int = counter("sent")
    delivered: int = counter("delivered")
    failed: int = counter("failed")
    pending: int = counter("pending")
    opens: int = strawberry.field(description="Times its messages were opened.")
    unique_opens: int = strawberry.field(description="Its recipients (deliveries) who opened at least once.")
    clicks: int = strawberry.field(description="Clicks on tracked links of its messages.")
    unique_clicks: int = strawberry.field(description="Its recipients (deliveries) who clicked at least once.")
    unsubscribes: int = strawberry.field(description="Unsubscriptions through its messages' unsubscribe link.")
    open_rate: float | None = strawberry.field(description="uniqueOpens / delivered; null when delivered is 0.")
    click_through_rate: float | None = strawberry.field(
        description="uniqueClicks / delivered; null when delivered is 0."
    )

    @classmethod
    def of(cls, figures: reports.TreatmentFigures, name: str | None) -> ReportTreatment:
        d, e = figures.deliveries, figures.events
        rates = reports.rates(d, e)
        return cls(
            key=figures.key,
            name=name,
            targeted=d.targeted,
            excluded=d.excluded,
            sent=d.sent,
            delivered=d.delivered,
            failed=d.failed,
            pending=d.pending,
            opens=e.opens,
            unique_opens=e.unique_opens,
            clicks=e.clicks,
            unique_clicks=e.unique_clicks,
            unsubscribes=e.unsubscribes,
            open_rate=rates.open,
            click_through_rate=rates.click_through,
        )


@strawberry.type(
    description=(
        "What a campaign's messages did in a window: sending statistics, tracking statistics and rates, as "
        "AJO's campaign report defines them. Rates are fractions between 0 and 1 (not percentages) and null "
        "when their denominator is 0."
    )
)
class CampaignReport:
    campaign_id: strawberry.ID = strawberry.field(description="Global id of the campaign.")
    window: ReportWindow = strawberry.field(description="The window covered.")
    generated_at: datetime = strawberry.field(description="When the figures were read.")
    audience: int = counter("audience")
    targeted: int = counter("targeted")
    excluded: int = counter("excluded")
    excluded_by_reason: list[ReasonCount] = strawberry.field(description="Exclusions by reason, most first.")
    holdout: int = strawberry.field(
        description="Profiles in the holdout of the campaign's content experiment (EXCLUDED with HOLDOUT); 0 "
        "without one."
    )
    sent: int = counter("sent")
    delivered: int = counter("delivered")
    failed: int = counter("failed")
    bounces: int = strawberry.field(description="Hard + soft bounces.")
    hard_bounces: int = strawberry.field(
        description="Permanent refusals of the recipient (unknown user): during the send or reported later."
    )
    soft_bounces: int = strawberry.field(description="Temporary refusals reported as bounces (e.g. mailbox full).")
    bounces_by_reason: list[ReasonCount] = strawberry.field(description="Bounces by reason, most first.")
    errors: int = strawberry.field(
        description="Messages that could not be sent (template error, retries expired, provider refusal, …)."
    )
    errors_by_reason: list[ReasonCount] = strawberry.field(description="Errors by reason, most first.")
    pending: int = counter("pending")
    retrying: int = counter("retrying")
    retrying_by_reason: list[ReasonCount] = strawberry.field(description="Retries by reason, most first.")
    delayed: int = counter("delayed")
    cancelled: int = strawberry.field(description="Messages cancelled by a stop before they were sent.")
    opens: int = strawberry.field(description="Times the messages were opened.")
    unique_opens: int = strawberry.field(description="Recipients (deliveries) who opened at least once.")
    clicks: int = strawberry.field(description="Clicks on tracked links.")
    unique_clicks: int = strawberry.field(description="Recipients (deliveries) who clicked at least once.")
    unsubscribes: int = strawberry.field(description="Unsubscriptions through the message's unsubscribe link.")
    complaints: int = strawberry.field(description="Times a message was reported as spam.")
    delivery_rate: float | None = strawberry.field(
        description="delivered / sent (AJO's delivery rate); null when sent is 0."
    )
    bounce_rate: float | None = strawberry.field(description="bounces / sent (AJO's bounce rate); null when sent is 0.")
    error_rate: float | None = strawberry.field(
        description="errors / sent (AJO's error rate: may exceed 1); null when sent is 0."
    )
    open_rate: float | None = strawberry.field(
        description="uniqueOpens / delivered (AJO's open rate); null when delivered is 0."
    )
    click_through_rate: float | None = strawberry.field(
        description="uniqueClicks / delivered (click-through rate); null when delivered is 0."
    )
    click_to_open_rate: float | None = strawberry.field(
        description="uniqueClicks / uniqueOpens (click-to-open rate); null when uniqueOpens is 0."
    )
    sandbox_id: strawberry.Private[int]
    campaign_pk: strawberry.Private[int]
    scope: strawberry.Private[reports.ReportWindow]

    @classmethod
    def build(
        cls,
        *,
        sandbox_id: int,
        campaign_pk: int,
        campaign_id: strawberry.ID,
        window: ReportWindow,
        scope: reports.ReportWindow,
        generated_at: datetime,
        deliveries: reports.DeliveryFigures,
        events: reports.EventFigures,
    ) -> CampaignReport:
        rates = reports.rates(deliveries, events)
        return cls(
            campaign_id=campaign_id,
            window=window,
            generated_at=generated_at,
            audience=deliveries.audience,
            targeted=deliveries.targeted,
            excluded=deliveries.excluded,
            excluded_by_reason=reason_counts(deliveries.excluded_by_reason),
            holdout=deliveries.excluded_by_reason.get(DeliveryReason.HOLDOUT.value, 0),
            sent=deliveries.sent,
            delivered=deliveries.delivered,
            failed=deliveries.failed,
            bounces=deliveries.bounces,
            hard_bounces=deliveries.hard_bounces,
            soft_bounces=deliveries.soft_bounces,
            bounces_by_reason=reason_counts(deliveries.bounces_by_reason),
            errors=deliveries.errors,
            errors_by_reason=reason_counts(deliveries.errors_by_reason),
            pending=deliveries.pending,
            retrying=deliveries.retrying,
            retrying_by_reason=reason_counts(deliveries.retrying_by_reason),
            delayed=deliveries.delayed,
            cancelled=deliveries.cancelled,
            opens=events.opens,
            unique_opens=events.unique_opens,
            clicks=events.clicks,
            unique_clicks=events.unique_clicks,
            unsubscribes=events.unsubscribes,
            complaints=events.complaints,
            delivery_rate=rates.delivery,
            bounce_rate=rates.bounce,
            error_rate=rates.error,
            open_rate=rates.open,
            click_through_rate=rates.click_through,
            click_to_open_rate=rates.click_to_open,
            sandbox_id=sandbox_id,
            campaign_pk=campaign_pk,
            scope=scope,
        )

    @strawberry.field(
        description="The figures per treatment of the campaign's content experiment, in the experiment's order "
        "(a treatment with no delivery in the window shows zeros); empty without an experiment. The holdout and "
        "the profiles awaiting a test-then-winner's winner get no treatment: see `holdout` and `excludedByReason`."
    )
    async def treatments(self, info: Info) -> list[ReportTreatment]:
        stored = await CampaignModel.filter(id=self.campaign_pk, sandbox_id=self.sandbox_id).values_list(
            "experiment", flat=True
        )
        experiment = (stored[0] if stored else None) or {}
        names = {t["key"]: t.get("name") or None for t in experiment.get("treatments", [])}
        found = {f.key: f for f in await reports.treatment_breakdown(self.sandbox_id, self.campaign_pk, self.scope)}
        empty = reports.DeliveryFigures(), reports.EventFigures()
        keys = [*names, *(k for k in found if k not in names)]
        return [ReportTreatment.of(found.get(k) or reports.TreatmentFigures(k, *empty), names.get(k)) for k in keys]

    @strawberry.field(description="Sent, delivered, bounces, opens and clicks per UTC hour; quiet hours left out.")
    async def hourly(self, info: Info) -> list[ReportHour]:
        rows = await reports.hourly_series(self.sandbox_id, self.campaign_pk, self.scope)
        return [ReportHour(**{k: getattr(r, k) for k in r.__slots__}) for r in rows]

    @strawberry.field(description="The most clicked URLs, most clicks first.")
    async def top_links(
        self, info: Info, first: Annotated[int, strawberry.argument(description="How many, 1 to 100.")] = 10
    ) -> list[ReportLink]:
        rows = await reports.top_links(self.sandbox_id, self.campaign_pk, self.scope, max(1, min(first, 100)))
        return [ReportLink(url=r.url, clicks=r.clicks, unique_clicks=r.unique_clicks) for r in rows]

    @strawberry.field(description="The recipient domains with the most messages sent, most first.")
    async def domains(
        self, info: Info, first: Annotated[int, strawberry.argument(description="How many, 1 to 100.")] = 10
    ) -> list[ReportDomain]:
        rows = await reports.domain_breakdown(self.sandbox_id, self.campaign_pk, self.scope, max(1, min(first, 100)))
        return [ReportDomain(**{k: getattr(r, k) for k in r.__slots__}) for r in rows]

    @strawberry.field(
        description="A campaign sent in waves: per wave, its planned size, start, counters and whether it is "
        "finished, over the window's runs (a RUN window: that run's waves); empty without waves."
    )
    async def waves(self, info: Info) -> list[CampaignRunWave]:
        rows = await report_wave_figures(self.sandbox_id, self.campaign_pk, self.scope)
        return [CampaignRunWave.from_figures(w) for w in rows]
