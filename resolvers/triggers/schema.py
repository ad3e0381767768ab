"""API triggers in GraphQL: `campaignTrigger` (the domain decides in models/triggers/accept.py), the
`campaignTriggers` connection and the `campaignTriggerStatus` subscription (read from the outbox's events)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated, Any, Self

import strawberry
from strawberry import relay

from models.campaigns.campaign import CampaignRun as CampaignRunModel
from models.campaigns.run_rules import RunStatus as RunStatusEnum
from models.outbox.payloads import TRIGGER_PROGRESS_TOPIC, TriggerProgress
from models.triggers.accept import accept_trigger
from models.triggers.trigger import CampaignTrigger as CampaignTriggerModel
from models.triggers.trigger import TriggerStatus as TriggerStatusEnum
from models.triggers.values import (
    REJECTION_DESCRIPTIONS,
    MissingProfile,
    TriggerAnswer,
    TriggerError,
    TriggerInvalidInputError,
    TriggerNotFoundError,
    TriggerRecipient,
    TriggerRequest,
    TriggerStateError,
)
from models.triggers.values import IdempotencyConflictError as IdempotencyConflict
from models.triggers.values import RejectionReason as RejectionReasonEnum
from resolvers.campaigns.enums import RunStatus
from resolvers.context import Info
from resolvers.errors import Error, InvalidInputError, InvalidStateError, NotFoundError, invalid_input, not_found
from resolvers.event_stream import typed_events
from resolvers.nodes import SandboxNode, pk_of
from resolvers.pagination import Connection, paginate
from resolvers.permissions import PUBLISHER, VIEWER
from resolvers.vocabulary import INPUT_ARG, described_enum

TriggerStatus = described_enum(
    TriggerStatusEnum,
    name="CampaignTriggerStatus",
    description="What became of an API trigger call.",
    values={
        TriggerStatusEnum.ACCEPTED: "At least one recipient has a ledger row (queued, or excluded with a reason).",
        TriggerStatusEnum.REJECTED: "Every recipient was rejected: nothing is sent.",
    },
)
RejectionReason = described_enum(
    RejectionReasonEnum,
    name="TriggerRejectionReason",
    description="Why a recipient of a trigger call got no ledger row.",
    values=REJECTION_DESCRIPTIONS,
)
OnMissingProfile = described_enum(
    MissingProfile,
    name="OnMissingProfile",
    description="What a trigger does with a recipient identity no profile has.",
    values={
        MissingProfile.REJECT: "Reject the recipient (`rejected` lists it with PROFILE_NOT_FOUND).",
        MissingProfile.CREATE: "Create the profile with that identity (an upsert by identity), then send.",
    },
)


@strawberry.input(description="A recipient by identity: the namespace's code and the value.")
class TriggerIdentityInput:
    namespace: str = strawberry.field(description="Identity namespace code, e.g. `Email`.")
    value: str = strawberry.field(description="The identity value in that namespace.")


@strawberry.input(description="One recipient of a trigger: `profileId` or `identity`, and its own context.")
class TriggerRecipientInput:
    profile_id: strawberry.ID | None = strawberry.field(default=None, description="Global id of the profile.")
    identity: TriggerIdentityInput | None = strawberry.field(default=None, description="Or the profile's identity.")
    context: strawberry.scalars.JSON | None = strawberry.field(
        default=None, description="Templates read it as `context.recipient.*` (a JSON object, at most 64 KB)."
    )
    address: str | None = strawberry.field(
        default=None,
        description="Send to this address instead of the profile's, for this call only: an email address (EMAIL "
        "campaigns) or an E.164 number (SMS). The suppression list still applies to it.",
    )


@strawberry.input(description="Send an API-triggered campaign to up to 1,000 recipients, once per idempotency key.")
class CampaignTriggerInput:
    campaign_id: strawberry.ID = strawberry.field(description="The LIVE API_TRIGGERED campaign.")
    idempotency_key: str = strawberry.field(
        description="Unique per campaign for TRIGGER_IDEMPOTENCY_HOURS (24 h): the same key and body replays the "
        "stored answer and sends nothing; the same key with another body is IdempotencyConflictError."
    )
    recipients: list[TriggerRecipientInput] = strawberry.field(description="1 to 1,000 recipients.")
    context: strawberry.scalars.JSON | None = strawberry.field(
        default=None, description="Templates read it as `context.trigger.*` (a JSON object, at most 64 KB)."
    )
    on_missing_profile: OnMissingProfile = strawberry.field(  # type: ignore[valid-type]
        default=MissingProfile.REJECT, description="A recipient identity no profile has: reject it or create it."
    )


@strawberry.type(description="A recipient of a trigger call that got no ledger row, and why.")
class TriggerRejection:
    index: int = strawberry.field(description="Position of the recipient in `input.recipients` (from 0).")
    reason: RejectionReason = strawberry.field(description="Why.")  # type: ignore[valid-type]


@strawberry.type(description="One accepted API trigger call: its recipients are the ledger rows of its run.")
class CampaignTrigger(SandboxNode):
    model = CampaignTriggerModel

    pk: relay.NodeID[int]
    status: TriggerStatus = strawberry.field(description="What became of the call.")  # type: ignore[valid-type]
    accepted: int = strawberry.field(description="Recipients with a ledger row (sent, queued or excluded).")
    rejected: list[TriggerRejection] = strawberry.field(description="Recipients that got no ledger row.")
    idempotency_key: str | None = strawberry.field(description="The call's key; null once it expired and was reused.")
    context: strawberry.scalars.JSON = strawberry.field(description="The call's context (`context.trigger`).")
    run_id: strawberry.ID | None = strawberry.field(
        description="Global id of the run sending it (see `deliveries(triggerId:)`, `campaignRunProgress`)."
    )
    created_at: datetime = strawberry.field(description="When it was accepted.")
    expires_at: datetime = strawberry.field(description="Until when its key replays this answer.")

    @classmethod
    def from_answer(cls, answer: TriggerAnswer) -> Self:
        """The trigger as its call answered it (no second read of the row)."""
        assert answer.created_at is not None and answer.expires_at is not None
        return cls(
            pk=answer.trigger_id,
            status=TriggerStatusEnum(answer.status),
            accepted=answer.accepted,
            rejected=[TriggerRejection(index=r.index, reason=r.reason) for r in answer.rejected],
            idempotency_key=answer.idempotency_key,
            context=answer.context,
            run_id=_gid("CampaignRun", answer.run_id) if answer.run_id is not None else None,
            created_at=answer.created_at,
            expires_at=answer.expires_at,
        )

    @classmethod
    def from_model(cls, row: CampaignTriggerModel) -> Self:
        answer = TriggerAnswer.from_json(row.answer, replayed=False) if row.answer else None
        return cls(
            pk=row.id,
            status=row.status,
            accepted=row.accepted,
            rejected=[TriggerRejection(index=r.index, reason=r.reason) for r in (answer.rejected if answer else ())],
            idempotency_key=row.idempotency_key,
            context=row.context or {},
            run_id=_gid("CampaignRun", row.run_id) if row.run_id is not None else None,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )


@strawberry.type(description="The trigger was accepted (or replayed: the key's stored answer).")
class CampaignTriggerSuccess:
    trigger: CampaignTrigger = strawberry.field(description="The trigger.")
    replayed: bool = strawberry.field(
        description="True when this is the stored answer of an earlier call with the same key and body."
    )


@strawberry.type(description="The idempotency key was used for this campaign with a different body; nothing was sent.")
class IdempotencyConflictError(Error):
    idempotency_key: str = strawberry.field(description="The key.")
    trigger_id: strawberry.ID = strawberry.field(description="Global id of the trigger that holds the key.")


CampaignTriggerResult = Annotated[
    CampaignTriggerSuccess | InvalidInputError | NotFoundError | IdempotencyConflictError | InvalidStateError,
    strawberry.union("CampaignTriggerResult", description="Result of `campaignTrigger`."),
]


@strawberry.type(description="Where an API trigger stands: accepted, then its run's counts as it sends.")
class CampaignTriggerStatusEvent:
    trigger_id: strawberry.ID = strawberry.field(description="Global id of the trigger.")
    status: TriggerStatus = strawberry.field(description="The trigger's status.")  # type: ignore[valid-type]
    run_status: RunStatus | None = strawberry.field(description="Its run's status; null without a run.")
    accepted: int = strawberry.field(description="Recipients with a ledger row.")
    sent: int = strawberry.field(description="Messages the provider accepted.")
    failed: int = strawberry.field(description="Messages that failed.")
    excluded: int = strawberry.field(description="Recipients excluded (no consent, suppressed, …).")
    pending: int = strawberry.field(description="Messages still to send.")
    final: bool = strawberry.field(description="True on the last event: the run is over.")


def _gid(type_name: str, pk: Any) -> strawberry.ID:
    return strawberry.ID(str(relay.GlobalID(type_name, str(pk))))


def _request(input: CampaignTriggerInput, campaign_pk: int) -> TriggerRequest:
    recipients = []
    for recipient in input.recipients:
        profile_pk = None
        if recipient.profile_id is not None:
            # An id that names no profile of this sandbox is rejected like an unknown one (PROFILE_NOT_FOUND).
            profile_pk = pk_of(recipient.profile_id, "Profile") or 0
        recipients.append(
            TriggerRecipient(
                profile_id=profile_pk,
                namespace=recipient.identity.namespace if recipient.identity else None,
                value=recipient.identity.value if recipient.identity else None,
                context=recipient.context if recipient.context is not None else {},
                address=recipient.address,
            )
        )
    return TriggerRequest(
        campaign_id=campaign_pk,
        idempotency_key=input.idempotency_key,
        recipients=tuple(recipients),
        context=input.context if input.context is not None else {},
        on_missing_profile=MissingProfile(input.on_missing_profile.value),
    )


def trigger_error(exc: TriggerError) -> Any:
    """Domain refusals → union members."""
    if isinstance(exc, TriggerNotFoundError):
        return not_found(exc.value, str(exc))
    if isinstance(exc, TriggerInvalidInputError):
        return invalid_input(exc.problems, "The input was refused; nothing was sent.")
    if isinstance(exc, IdempotencyConflict):
        return IdempotencyConflictError(
            message=str(exc), idempotency_key=exc.key, trigger_id=_gid("CampaignTrigger", exc.trigger_id)
        )
    if isinstance(exc, TriggerStateError):
        return InvalidStateError(message=str(exc), current_status=exc.current_status, allowed_actions=[])
    raise exc


@strawberry.type
class TriggerQuery:
    @strawberry.field(
        description="The accepted API trigger calls of a campaign, newest first.", permission_classes=VIEWER
    )
    async def campaign_triggers(
        self,
        info: Info,
        campaign_id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign.")],
        first: Annotated[int | None, strawberry.argument(description="Page size, 0 to 100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor to continue from.")] = None,
    ) -> Connection[CampaignTrigger]:
        query = CampaignTriggerModel.filter(
            sandbox_id=info.context.require_caller().sandbox_id, campaign_id=pk_of(campaign_id, "Campaign") or 0
        )
        return await paginate(
            query,
            first=first,
            after=after,
            max_page_size=info.context.limits.max_page_size,
            to_node=CampaignTrigger.from_model,
        )


@strawberry.type
class TriggerMutation:
    @strawberry.mutation(
        description="Send a LIVE API_TRIGGERED campaign to up to 1,000 recipients, exactly once per idempotency "
        "key: each accepted recipient gets one ledger row (and at most one message) in the same transaction.",
        permission_classes=PUBLISHER,
    )
    async def campaign_trigger(
        self, info: Info, input: Annotated[CampaignTriggerInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignTriggerResult:
        caller = info.context.require_caller()
        campaign_pk = pk_of(input.campaign_id, "Campaign")
        if campaign_pk is None:
            return not_found(input.campaign_id, "No campaign with that id in this sandbox.")
        try:
            answer = await accept_trigger(
                caller.sandbox_id,
                _request(input, campaign_pk),
                idempotency_hours=info.context.trigger_idempotency_hours,
            )
        except TriggerError as exc:
            return trigger_error(exc)
        # After commit: wake the campaign's sender (coalesced per short window; the dispatcher wakes it too).
        if answer.run_id is not None and info.context.queue is not None and not answer.replayed:
            await info.context.queue.wake_triggers(
                answer.run_id, info.context.trigger_wake_seconds, f"t{answer.trigger_id}"
            )
        return CampaignTriggerSuccess(trigger=CampaignTrigger.from_answer(answer), replayed=answer.replayed)


@strawberry.type
class TriggerSubscription:
    @strawberry.subscription(
        description="Where one API trigger stands: first its current state, then its run's progress until final.",
        permission_classes=VIEWER,
    )
    async def campaign_trigger_status(
        self,
        info: Info,
        trigger_id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the trigger.")],
    ) -> AsyncGenerator[CampaignTriggerStatusEvent, None]:
        caller = info.context.require_caller()
        if info.context.events is None:
            raise RuntimeError("no event bus configured")
        pk = pk_of(trigger_id, "CampaignTrigger") or 0
        async with info.context.events.subscribe(caller.sandbox_id, TRIGGER_PROGRESS_TOPIC) as events:
            row = await CampaignTriggerModel.get_or_none(id=pk, sandbox_id=caller.sandbox_id)
            if row is None:
                return
            run = await CampaignRunModel.get_or_none(id=row.run_id) if row.run_id is not None else None
            first = _status_event(row, run)
            yield first
            if first.final:
                return
            # The campaign's triggers share its run: each sent batch's event carries the counts of its triggers.
            async for progress in typed_events(events, TRIGGER_PROGRESS_TOPIC):
                assert isinstance(progress, TriggerProgress)
                counts = next((t for t in progress.triggers if t.trigger_id == row.id), None)
                if counts is None:
                    continue
                event = CampaignTriggerStatusEvent(
                    trigger_id=_gid("CampaignTrigger", row.id),
                    status=row.status,
                    run_status=RunStatusEnum.RUNNING,  # type: ignore[arg-type]
                    accepted=row.accepted,
                    sent=counts.sent,
                    failed=counts.failed,
                    excluded=counts.excluded,
                    pending=counts.pending,
                    final=counts.pending == 0,
                )
                yield event
                if event.final:
                    return


FINAL_RUN_STATUSES = {"SUCCEEDED", "FAILED", "CANCELLED"}


def _status_event(row: CampaignTriggerModel, run: CampaignRunModel | None) -> CampaignTriggerStatusEvent:
    """From the trigger's own counts (its run is shared by the campaign's triggers). Final once nothing of it is
    pending, or its run ended (cancelled by a stop: its unsent rows will never be)."""
    return CampaignTriggerStatusEvent(
        trigger_id=_gid("CampaignTrigger", row.id),
        status=row.status,
        run_status=run.status if run else None,  # type: ignore[arg-type]
        accepted=row.accepted,
        sent=row.sent,
        failed=row.failed,
        excluded=row.excluded,
        pending=row.pending,
        final=run is None or row.pending == 0 or run.status.value in FINAL_RUN_STATUSES,
    )
