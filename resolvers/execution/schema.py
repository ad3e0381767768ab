"""Execution in GraphQL: the in-app inbox, the delivery ledger of a run, and live run progress."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated, Any, Self

import orjson
import strawberry
from strawberry import relay

from models.audience.values import ValueProblem, normalize_identity
from models.campaigns.campaign import CampaignRun as CampaignRunModel
from models.ledger.delivery import Delivery as DeliveryModel
from models.ledger.delivery import DeliveryReason as DeliveryReasonEnum
from models.ledger.delivery import DeliveryStatus as DeliveryStatusEnum
from models.ledger.delivery import InboxMessage as InboxMessageModel
from models.ledger.waves import progress_waves, wave_figures
from models.outbox.payloads import CAMPAIGN_RUN_PROGRESS_TOPIC, RunProgress, WaveProgress
from models.tenancy.identity import IdentityNamespace
from resolvers.campaigns.enums import RunPauseReason, RunStatus
from resolvers.campaigns.wave_types import CampaignRunWave
from resolvers.context import Info
from resolvers.errors import ClientError
from resolvers.event_stream import typed_events
from resolvers.nodes import parse_pk
from resolvers.pagination import Connection, paginate
from resolvers.permissions import VIEWER
from resolvers.vocabulary import (
    LAST_ERROR_DESCRIPTION,
    RESENT_DESCRIPTION,
    DeliveryReason,
    DeliveryStatus,
    ReasonCount,
    RunCounters,
    last_error,
)

MAX_INBOX = 100


@strawberry.type(description="A message in the in-app inbox of one identity.")
class InAppMessage:
    id: strawberry.ID = strawberry.field(description="Id of the message (stable).")
    title: str = strawberry.field(description="Rendered title.")
    body: str = strawberry.field(description="Rendered body.")
    data: strawberry.scalars.JSON = strawberry.field(description="Buttons and other data of the message.")
    campaign_id: strawberry.ID | None = strawberry.field(description="Global id of the campaign that sent it.")
    created_at: datetime = strawberry.field(description="When it arrived in the inbox.")


@strawberry.type(description="One row of a run's delivery ledger: one profile, what happened to its message and why.")
class Delivery:
    id: strawberry.ID = strawberry.field(description="Id of the ledger row.")
    profile_id: strawberry.ID = strawberry.field(description="Global id of the profile.")
    status: DeliveryStatus = strawberry.field(description="Where the message stands.")
    reason: DeliveryReason | None = strawberry.field(  # type: ignore[valid-type]
        description="Why it was excluded, failed or bounced, or waits for a retry; null when none of these."
    )
    address: str | None = strawberry.field(description="The resolved address (or inbox identity).")
    attempts: int = strawberry.field(description="Send attempts made.")
    last_error: str | None = strawberry.field(description="The provider's last answer, when it failed.")
    sent_at: datetime | None = strawberry.field(description="When the provider accepted it.")
    delivered_at: datetime | None = strawberry.field(
        description="When the provider reported it delivered (or bounced, see `bounceType`)."
    )
    bounce_type: str | None = strawberry.field(description="HARD or SOFT for a bounce reported by the provider.")
    treatment: str | None = strawberry.field(
        description="The key of the content experiment's treatment this profile got; null without an experiment "
        "and for the holdout."
    )
    run_id: strawberry.ID = strawberry.field(description="Global id of the run.")
    trigger_id: strawberry.ID | None = strawberry.field(
        description="Global id of the API trigger whose recipient this is; null for a scheduled run's row."
    )
    updated_at: datetime = strawberry.field(description="Last change.")
    run_pk: strawberry.Private[int]

    @strawberry.field(
        description="The campaign version (`CampaignVersion.number`) whose message this delivery carries: its "
        "run's. Null when the run fixed none (older than versions)."
    )
    async def campaign_version(self, info: Info) -> int | None:
        run = await info.context.loaders.by_id(CampaignRunModel).load(self.run_pk)
        return run.campaign_version if run is not None else None

    @classmethod
    def from_model(cls, row: DeliveryModel) -> Self:
        return cls(
            id=strawberry.ID(str(row.id)),
            profile_id=strawberry.ID(str(relay.GlobalID("Profile", str(row.profile_id)))),
            status=row.status,
            reason=DeliveryReasonEnum.of(row.reason),
            address=row.address,
            attempts=row.attempts,
            last_error=row.last_error,
            sent_at=row.sent_at,
            delivered_at=row.delivered_at,
            bounce_type=row.bounce_type,
            treatment=row.treatment,
            run_id=_gid("CampaignRun", row.run_id),
            trigger_id=_gid("CampaignTrigger", row.trigger_id) if row.trigger_id is not None else None,
            updated_at=row.updated_at,
            run_pk=row.run_id,
        )


@strawberry.type(description="Counts, rate and ETA of one campaign run, as it sends.")
class CampaignRunProgress(RunCounters):
    campaign_id: strawberry.ID = strawberry.field(description="Global id of the campaign.")
    run_id: strawberry.ID | None = strawberry.field(description="Global id of the run; null while it has none.")
    status: RunStatus | None = strawberry.field(description="Run status; null while the campaign has no run.")
    resent: int = strawberry.field(description=RESENT_DESCRIPTION)
    last_error: ReasonCount | None = strawberry.field(description=LAST_ERROR_DESCRIPTION)
    rate_per_second: float | None = strawberry.field(description="Messages finished per second in this job.")
    eta_seconds: float | None = strawberry.field(description="Estimated seconds to finish, when a rate is known.")
    pause_reason: RunPauseReason | None = strawberry.field(
        description="Why the run is PAUSED (the provider refused the preset); null when it is not paused."
    )
    waves: list[CampaignRunWave] = strawberry.field(
        description="A run sent in waves: each wave's plan and counters at this event (as `CampaignRun.waves`); "
        "empty without waves."
    )


def _global_pk(value: Any, type_name: str) -> int:
    """A global id of `type_name` (or a plain database id) as a database id; 0 (matches nothing) otherwise."""
    text = str(value)
    try:
        global_id = relay.GlobalID.from_id(text)
    except Exception:
        return parse_pk(text) or 0
    return (parse_pk(global_id.node_id) or 0) if global_id.type_name == type_name else 0


def _gid(type_name: str, pk: Any) -> strawberry.ID:
    return strawberry.ID(str(relay.GlobalID(type_name, str(pk))))


def _progress(campaign_id: Any, event: dict[str, Any]) -> CampaignRunProgress:
    waves = event.get("waves") or []
    return CampaignRunProgress(
        campaign_id=campaign_id,
        run_id=_gid("CampaignRun", event["runId"]) if event.get("runId") is not None else None,
        status=event.get("status"),
        audience=event.get("targeted", 0) + event.get("excluded", 0),
        targeted=event.get("targeted", 0),
        excluded=event.get("excluded", 0),
        sent=event.get("sent", 0),
        delivered=event.get("delivered", 0),
        failed=event.get("failed", 0),
        pending=event.get("pending", 0),
        retrying=event.get("retrying", 0),
        resent=event.get("resent", 0),
        last_error=last_error(event.get("lastErrorReason"), event.get("lastErrorCount", 0)),
        rate_per_second=event.get("ratePerSecond"),
        eta_seconds=event.get("etaSeconds"),
        pause_reason=RunPauseReason[event["pauseReason"]] if event.get("pauseReason") else None,
        waves=[CampaignRunWave.from_progress(WaveProgress.from_json(w, CAMPAIGN_RUN_PROGRESS_TOPIC)) for w in waves],
    )


@strawberry.type
class ExecutionQuery:
    @strawberry.field(
        description="The in-app inbox of one identity, newest first (at most 100 messages).", permission_classes=VIEWER
    )
    async def in_app_messages(
        self,
        info: Info,
        namespace: Annotated[str, strawberry.argument(description="Identity namespace code, e.g. `Email`.")],
        identity: Annotated[str, strawberry.argument(description="The identity value in that namespace.")],
        first: Annotated[int, strawberry.argument(description="How many, 1 to 100.")] = 20,
    ) -> list[InAppMessage]:
        sandbox_id = info.context.require_caller().sandbox_id
        ns = await IdentityNamespace.get_or_none(sandbox_id=sandbox_id, code=namespace)
        if ns is None:
            return []
        try:
            value = normalize_identity(ns.type, identity)
        except ValueProblem:
            return []
        rows = (
            await InboxMessageModel.filter(sandbox_id=sandbox_id, namespace=ns.code, identity=value)
            .order_by("-id")
            .limit(max(1, min(first, MAX_INBOX)))
        )
        return [
            InAppMessage(
                id=strawberry.ID(row.idempotency_key),
                title=row.title,
                body=row.body,
                data=orjson.loads(row.data or "{}"),
                campaign_id=_gid("Campaign", row.campaign_id) if row.campaign_id is not None else None,
                created_at=row.created_at,
            )
            for row in rows
        ]

    @strawberry.field(
        description=(
            "The delivery ledger of a run, of a campaign's runs or of an API trigger: who got the message, who did "
            "not, and why. Give `runId`, `campaignId` or `triggerId` (or several); newest rows first."
        ),
        permission_classes=VIEWER,
    )
    async def deliveries(
        self,
        info: Info,
        run_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Global id of the campaign run.")
        ] = None,
        campaign_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Global id of the campaign (all its runs).")
        ] = None,
        trigger_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Global id of an API trigger (its recipients).")
        ] = None,
        status: Annotated[
            list[DeliveryStatus] | None, strawberry.argument(description="Only rows in these statuses.")
        ] = None,
        reason: Annotated[
            list[DeliveryReason] | None,  # type: ignore[valid-type]
            strawberry.argument(description="Only rows with these reasons."),
        ] = None,
        treatment: Annotated[
            list[str] | None, strawberry.argument(description="Only rows of these experiment treatments (keys).")
        ] = None,
        first: Annotated[int | None, strawberry.argument(description="Page size, 0 to 100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor to continue from.")] = None,
    ) -> Connection[Delivery]:
        if run_id is None and campaign_id is None and trigger_id is None:
            raise ClientError("Give `runId`, `campaignId` or `triggerId`.", code="BAD_USER_INPUT")
        query = DeliveryModel.filter(sandbox_id=info.context.require_caller().sandbox_id)
        if run_id is not None:
            query = query.filter(run_id=_global_pk(run_id, "CampaignRun"))
        if campaign_id is not None:
            query = query.filter(campaign_id=_global_pk(campaign_id, "Campaign"))
        if trigger_id is not None:
            # The campaign's triggers share its run: a trigger's rows are found by their trigger_id (indexed).
            query = query.filter(trigger_id=_global_pk(trigger_id, "CampaignTrigger"))
        if status:
            query = query.filter(status__in=[DeliveryStatusEnum(s) for s in status])
        if reason:
            query = query.filter(reason__in=[DeliveryReasonEnum(r).value for r in reason[:100]])
        if treatment:
            query = query.filter(treatment__in=treatment[:8])
        return await paginate(
            query,
            first=first,
            after=after,
            max_page_size=info.context.limits.max_page_size,
            to_node=Delivery.from_model,
        )


@strawberry.type
class ExecutionSubscription:
    @strawberry.subscription(
        description="Progress of a campaign's runs: first the latest run's counts, then updates as it sends.",
        permission_classes=VIEWER,
    )
    async def campaign_run_progress(
        self,
        info: Info,
        campaign_id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign.")],
    ) -> AsyncGenerator[CampaignRunProgress, None]:
        caller = info.context.require_caller()
        wanted = _global_pk(campaign_id, "Campaign")
        if info.context.events is None:
            raise RuntimeError("no event bus configured")
        async with info.context.events.subscribe(caller.sandbox_id, CAMPAIGN_RUN_PROGRESS_TOPIC) as events:
            latest = (
                await CampaignRunModel.filter(sandbox_id=caller.sandbox_id, campaign_id=wanted).order_by("-id").first()
            )
            initial: dict[str, Any] = {}
            if latest is not None:
                initial = {
                    "runId": latest.id,
                    "status": latest.status.value,
                    "targeted": latest.targeted,
                    "excluded": latest.excluded,
                    "sent": latest.sent,
                    "delivered": latest.delivered,
                    "failed": latest.failed,
                    "pending": latest.pending,
                    "retrying": latest.retrying,
                    "lastErrorReason": latest.last_error_reason,
                    "lastErrorCount": latest.last_error_count,
                    "resent": latest.resent,
                    "pauseReason": latest.pause_reason.value if latest.pause_reason else None,
                    # Only a run sent in waves has a current wave (from its snapshot): no ledger read for others.
                    "waves": [w.to_json() for w in progress_waves(await wave_figures(latest.id))]
                    if latest.wave is not None
                    else [],
                }
            yield _progress(campaign_id, initial)
            finished: set[int] = set()
            async for progress in typed_events(events, CAMPAIGN_RUN_PROGRESS_TOPIC):
                assert isinstance(progress, RunProgress)
                # A best-effort tick published before the run's final event may arrive after it: dropped.
                if progress.campaign_id != wanted or progress.run_id in finished:
                    continue
                if progress.final:
                    finished.add(progress.run_id)
                yield _progress(campaign_id, progress.to_json())
