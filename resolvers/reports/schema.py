"""`campaignReport`, `campaignRunResendFailed` and `campaignRunResume`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import strawberry
from strawberry import relay

from models.campaigns import pausing
from models.campaigns.campaign import Campaign as CampaignModel
from models.campaigns.campaign import CampaignRun as CampaignRunModel
from models.campaigns.resend import NothingToResend, RunNotFound, RunNotResendable, resend_failed
from models.ledger import reports
from models.presets.rules import PresetStatus as MessagePresetStatusEnum
from models.triggers.trigger import CampaignTrigger as CampaignTriggerModel
from resolvers.campaigns.refusals import campaign_not_found, campaign_pk
from resolvers.campaigns.run_types import CampaignRun
from resolvers.context import Info
from resolvers.errors import Error, FieldError, InvalidInputError, InvalidStateError, NotFoundError
from resolvers.nodes import pk_of
from resolvers.permissions import PUBLISHER, VIEWER
from resolvers.presets.types import MessagePresetStatus
from resolvers.reports.types import (
    CampaignReport,
    ReportPeriod,
    ReportWindow,
    ReportWindowInput,
    ReportWindowKind,
)
from resolvers.vocabulary import INPUT_ARG

CampaignReportResult = Annotated[
    CampaignReport | NotFoundError | InvalidInputError,
    strawberry.union("CampaignReportResult", description="Result of `campaignReport`."),
]


@strawberry.input(description="The run whose failed deliveries to send again.")
class CampaignRunResendFailedInput:
    run_id: strawberry.ID = strawberry.field(description="Global id of a finished run (SUCCEEDED or FAILED).")


@strawberry.type(description="The run is running again, sending its retryable failures once more.")
class CampaignRunResendFailedSuccess:
    run: CampaignRun = strawberry.field(description="The run, now RUNNING.")
    requeued: int = strawberry.field(description="Failed deliveries queued to be sent again.")


@strawberry.type(description="The run has no failed delivery whose reason is worth another attempt; nothing changed.")
class NothingToResendError(Error):
    run_id: strawberry.ID = strawberry.field(description="The run looked at.")


CampaignRunResendFailedResult = Annotated[
    CampaignRunResendFailedSuccess | NotFoundError | InvalidStateError | NothingToResendError,
    strawberry.union("CampaignRunResendFailedResult", description="Result of `campaignRunResendFailed`."),
]


@strawberry.input(description="The paused run to take up again.")
class CampaignRunResumeInput:
    run_id: strawberry.ID = strawberry.field(description="Global id of a PAUSED run.")


@strawberry.type(description="The run is RUNNING again and sends its deliveries still QUEUED.")
class CampaignRunResumeSuccess:
    run: CampaignRun = strawberry.field(description="The run, now RUNNING.")


@strawberry.type(
    description="The preset the run sends with is not fit to send yet: it must be fixed and pass "
    "`messagePresetValidate` (ACTIVE, no change failing or being validated) before the run can resume."
)
class PresetNotReadyError(Error):
    preset_id: strawberry.ID | None = strawberry.field(description="Global id of the preset; null when none.")
    preset_status: MessagePresetStatus | None = strawberry.field(description="The preset's status now.")


CampaignRunResumeResult = Annotated[
    CampaignRunResumeSuccess | NotFoundError | InvalidStateError | PresetNotReadyError,
    strawberry.union("CampaignRunResumeResult", description="Result of `campaignRunResume`."),
]


def _gid(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(str(relay.GlobalID(type_name, str(pk))))


def _invalid(field: str, code: str, message: str) -> InvalidInputError:
    return InvalidInputError(
        message="The input was refused.", field_errors=[FieldError(field=field, code=code, message=message)]
    )


@strawberry.type
class ReportsQuery:
    @strawberry.field(
        description=(
            "The report of a campaign over a window (default ALL_TIME): sending and tracking statistics, rates, "
            "an hourly series, top links and recipient domains. Figures are SQL aggregates over the ledger and "
            "the tracking events."
        ),
        permission_classes=VIEWER,
    )
    async def campaign_report(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign.")],
        window: Annotated[
            ReportWindowInput | None, strawberry.argument(description="What to cover; null = ALL_TIME.")
        ] = None,
    ) -> CampaignReportResult:
        sandbox_id = info.context.require_caller().sandbox_id
        pk = campaign_pk(id)
        if pk is None or not await CampaignModel.filter(id=pk, sandbox_id=sandbox_id).exists():
            return campaign_not_found(id)
        now = datetime.now(UTC)
        kind, scope = ReportWindowKind.ALL_TIME, reports.ReportWindow()
        run_gid: strawberry.ID | None = None
        trigger_gid: strawberry.ID | None = None
        if window is not None and window.period is ReportPeriod.LAST_24_HOURS:
            kind, scope = ReportWindowKind.LAST_24_HOURS, reports.ReportWindow(start=now - timedelta(hours=24), end=now)
        elif window is not None and window.run_id:
            run_pk = pk_of(window.run_id, "CampaignRun")
            exists = (
                run_pk is not None
                and await CampaignRunModel.filter(id=run_pk, campaign_id=pk, sandbox_id=sandbox_id).exists()
            )
            if not exists:
                return NotFoundError(message="No run of this campaign with that id.", id=str(window.run_id))
            kind, scope, run_gid = (
                ReportWindowKind.RUN,
                reports.ReportWindow(run_id=run_pk),
                _gid("CampaignRun", run_pk),
            )
        elif window is not None and window.trigger_id:
            trigger_pk = pk_of(window.trigger_id, "CampaignTrigger")
            exists = (
                trigger_pk is not None
                and await CampaignTriggerModel.filter(id=trigger_pk, campaign_id=pk, sandbox_id=sandbox_id).exists()
            )
            if not exists:
                return NotFoundError(message="No trigger of this campaign with that id.", id=str(window.trigger_id))
            kind, scope = ReportWindowKind.TRIGGER, reports.ReportWindow(trigger_id=trigger_pk)
            trigger_gid = _gid("CampaignTrigger", trigger_pk)
        elif window is not None and window.range:
            start, end = (
                value if value.tzinfo else value.replace(tzinfo=UTC) for value in (window.range.from_, window.range.to)
            )
            if end <= start:
                return _invalid("window.range.to", "BEFORE_START", "`to` must be after `from`.")
            kind, scope = ReportWindowKind.RANGE, reports.ReportWindow(start=start, end=end)
        deliveries, events = await reports.report_totals(sandbox_id, pk, scope)
        return CampaignReport.build(
            sandbox_id=sandbox_id,
            campaign_pk=pk,
            campaign_id=_gid("Campaign", pk),
            window=ReportWindow(kind=kind, run_id=run_gid, trigger_id=trigger_gid, from_=scope.start, to=scope.end),
            scope=scope,
            generated_at=now,
            deliveries=deliveries,
            events=events,
        )


@strawberry.type
class ReportsMutation:
    @strawberry.mutation(
        description=(
            "Send again the FAILED deliveries of a finished run whose failure a new attempt can cure (retries "
            "expired, connection, timeout, throttling, temporary provider errors) — never hard bounces, refused "
            "content, bad addresses, template errors or exclusions. The run goes back to RUNNING and each of "
            "those deliveries is attempted once more. Refused for runs of STOPPED or ARCHIVED campaigns."
        ),
        permission_classes=PUBLISHER,
    )
    async def campaign_run_resend_failed(
        self, info: Info, input: Annotated[CampaignRunResendFailedInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignRunResendFailedResult:
        caller = info.context.require_caller()
        run_pk = pk_of(input.run_id, "CampaignRun")
        if run_pk is None:
            return NotFoundError(message="No campaign run with that id in this sandbox.", id=str(input.run_id))
        now = datetime.now(UTC)
        try:
            run, requeued = await resend_failed(caller.sandbox_id, run_pk, actor=caller.actor, now=now)
        except RunNotFound:
            return NotFoundError(message="No campaign run with that id in this sandbox.", id=str(input.run_id))
        except RunNotResendable as exc:
            return InvalidStateError(message=str(exc), current_status=exc.current_status, allowed_actions=[])
        except NothingToResend as exc:
            return NothingToResendError(message=str(exc), run_id=_gid("CampaignRun", run_pk))
        # After commit. Should this enqueue be lost, the dispatcher resumes the RUNNING run without a lease.
        if info.context.queue is not None:
            await info.context.queue.resend_run(run.id, str(int(now.timestamp() * 1000)))
        return CampaignRunResendFailedSuccess(run=CampaignRun.from_model(run), requeued=requeued)

    @strawberry.mutation(
        description=(
            "Take up a PAUSED run again once its preset is fixed: a run pauses when the provider refuses the "
            "preset (credentials, connection setup, the sender), keeping its unsent deliveries QUEUED. Refused "
            "while the preset is not ACTIVE or has a change failing or being validated. The run goes back to "
            "RUNNING and sends what is still QUEUED; nothing already sent is sent again."
        ),
        permission_classes=PUBLISHER,
    )
    async def campaign_run_resume(
        self, info: Info, input: Annotated[CampaignRunResumeInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignRunResumeResult:
        caller = info.context.require_caller()
        run_pk = pk_of(input.run_id, "CampaignRun")
        not_found = NotFoundError(message="No campaign run with that id in this sandbox.", id=str(input.run_id))
        if run_pk is None:
            return not_found
        now = datetime.now(UTC)
        try:
            run = await pausing.resume_paused_run(caller.sandbox_id, run_pk, actor=caller.actor, now=now)
        except pausing.RunNotFound:
            return not_found
        except pausing.RunNotPaused as exc:
            return InvalidStateError(message=str(exc), current_status=exc.current_status, allowed_actions=[])
        except pausing.PresetNotReady as exc:
            return PresetNotReadyError(
                message=str(exc),
                preset_id=_gid("MessagePreset", exc.preset_id) if exc.preset_id is not None else None,
                preset_status=MessagePresetStatusEnum(exc.preset_status) if exc.preset_status else None,
            )
        # After commit. Should this enqueue be lost, the dispatcher resumes the RUNNING run without a lease.
        if info.context.queue is not None:
            await info.context.queue.resume_paused_run(run.id, str(int(now.timestamp() * 1000)))
        return CampaignRunResumeSuccess(run=CampaignRun.from_model(run))
