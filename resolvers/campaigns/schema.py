from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry

from models.approvals.policies import ApprovalRequiredError as ApprovalRequired
from models.audience.entities import Profile as ProfileModel
from models.campaigns.actions import (
    activate_campaign,
    archive_campaign,
    create_campaign,
    delete_campaign,
    duplicate_campaign,
    stop_campaign,
    update_campaign,
    update_tags,
)
from models.campaigns.campaign import Campaign as CampaignModel
from models.campaigns.campaign import CampaignRun as CampaignRunModel
from models.campaigns.campaign import list_filter_sql
from models.campaigns.previews import PreviewError, preview_campaign
from models.campaigns.reviewing import review_campaign
from models.campaigns.rules import CampaignStatus as CampaignStatusEnum
from models.campaigns.rules import Channel as ChannelEnum
from models.campaigns.values import (
    CampaignConflictError,
    CampaignError,
    CampaignInvalidInputError,
    CampaignNotFoundError,
    CampaignStateError,
    ReviewFailedError,
)
from models.campaigns.versions import CampaignVersionStateError, review_version, version_campaign
from models.ledger.vocabulary import DeliveryReason
from models.outbox.payloads import CAMPAIGN_STATUS_TOPIC, CampaignStatusChanged
from models.sql.reads import sql_params
from resolvers.approvals.types import ApprovalRequiredError
from resolvers.campaigns.enums import CampaignStatus, Channel
from resolvers.campaigns.inputs import (
    CampaignCreateInput,
    CampaignDuplicateInput,
    CampaignIdInput,
    CampaignStopInput,
    CampaignUpdateInput,
    CampaignUpdateTagsInput,
)
from resolvers.campaigns.reads import campaign_by_pk, one_statement_reads
from resolvers.campaigns.translate import create_values, update_values
from resolvers.campaigns.types import (
    Campaign,
    CampaignPlan,
    CampaignReview,
    CampaignRun,
    ExclusionCount,
    ExperimentArmEstimate,
    ReviewAlert,
    campaign_page,
    seconds,
)
from resolvers.context import Info
from resolvers.errors import ConflictError, Error, FieldError, InvalidInputError, InvalidStateError, NotFoundError
from resolvers.event_stream import typed_events
from resolvers.nodes import pk_of
from resolvers.pagination import Connection, SortKey, SqlListing, paginate, selected_node_tree
from resolvers.permissions import MANAGER, PUBLISHER, VIEWER
from resolvers.vocabulary import INPUT_ARG, described_enum

logger = logging.getLogger(__name__)
DEFAULT_LIST_STATUSES = [
    CampaignStatusEnum.DRAFT,
    CampaignStatusEnum.IN_REVIEW,
    CampaignStatusEnum.APPROVED,
    CampaignStatusEnum.SCHEDULED,
    CampaignStatusEnum.LIVE,
]


@strawberry.type(
    name="ReviewFailedError", description="Activation refused: the review found errors. Nothing was changed."
)
class ReviewFailedErrorType(Error):  # GraphQL name: ReviewFailedError (the domain exception has the plain name)
    alerts: list[ReviewAlert] = strawberry.field(description="All alerts of the review, errors and warnings.")


@described_enum(description="Order of a campaign list.")
class CampaignSort(Enum):
    CREATED_DESC = "CREATED_DESC"
    CREATED_ASC = "CREATED_ASC"
    MODIFIED_DESC = "MODIFIED_DESC"
    NAME_ASC = "NAME_ASC"


SORT_KEYS = {
    CampaignSort.CREATED_DESC: SortKey(None, True),
    CampaignSort.CREATED_ASC: SortKey(None, False),
    CampaignSort.MODIFIED_DESC: SortKey("updated_at", True),
    CampaignSort.NAME_ASC: SortKey("name", False),
}


@strawberry.input(description="Filters of the campaign list; all given filters apply.")
class CampaignFilter:
    statuses: list[CampaignStatus] | None = strawberry.field(
        default=None,
        description="Statuses to list (default: DRAFT, IN_REVIEW, APPROVED, SCHEDULED, LIVE, "
        "the ones still in play, as AJO's list).",
    )
    channel: Channel | None = strawberry.field(default=None, description="Only this channel.")
    tags: list[str] | None = strawberry.field(default=None, description="Campaigns having any of these tags.")
    search: str | None = strawberry.field(default=None, description="Name contains this text (any case).")


@strawberry.type(description="The campaign, as changed.")
class CampaignSuccess:
    campaign: Campaign = strawberry.field(description="The campaign after the change.")


@strawberry.type(description="The campaign was deleted.")
class CampaignDeleteSuccess:
    deleted_id: strawberry.ID = strawberry.field(description="Global id of the deleted campaign.")


@strawberry.type(description="The campaign is LIVE (a run starts now) or SCHEDULED.")
class CampaignActivateSuccess:
    campaign: Campaign = strawberry.field(description="The activated campaign.")
    run: CampaignRun | None = strawberry.field(description="The run started now, if any.")


@strawberry.type(description="The message rendered for one profile.")
class CampaignPreview:
    subject: str | None = strawberry.field(description="Email subject.")
    preheader: str | None = strawberry.field(description="Email preheader.")
    html: str | None = strawberry.field(description="Email HTML.")
    text: str | None = strawberry.field(description="Email text or SMS text.")
    title: str | None = strawberry.field(description="Push or in-app title.")
    body: str | None = strawberry.field(description="Push or in-app body.")


@strawberry.type(description="A template could not be rendered for this profile.")
class TemplateRenderError(Error):
    field: str = strawberry.field(description="The content field whose template failed.")


CampaignResult = Annotated[
    CampaignSuccess | InvalidInputError | NotFoundError | ConflictError | InvalidStateError,
    strawberry.union("CampaignResult", description="Result of a campaign authoring mutation."),
]
CampaignDeleteResult = Annotated[
    CampaignDeleteSuccess | NotFoundError | InvalidStateError | ConflictError,
    strawberry.union("CampaignDeleteResult", description="Result of `campaignDelete`."),
]
CampaignActivateResult = Annotated[
    CampaignActivateSuccess
    | ReviewFailedErrorType
    | NotFoundError
    | InvalidStateError
    | ConflictError
    | ApprovalRequiredError,
    strawberry.union("CampaignActivateResult", description="Result of `campaignActivate`."),
]
CampaignReviewResult = Annotated[
    CampaignReview | NotFoundError,
    strawberry.union("CampaignReviewResult", description="Result of `campaignReview`."),
]
CampaignPreviewResult = Annotated[
    CampaignPreview | NotFoundError | TemplateRenderError,
    strawberry.union("CampaignPreviewResult", description="Result of `campaignPreview`."),
]


def _pk(value: Any) -> int | None:
    """A campaign id given as a global id (`Campaign:12`) or a plain database id."""
    return pk_of(value, "Campaign")


def _error(exc: CampaignError) -> Any:
    """Domain refusals → union members. Only CampaignError subclasses reach here."""
    if isinstance(exc, CampaignNotFoundError):
        return NotFoundError(message=str(exc), id=str(exc.given))
    if isinstance(exc, CampaignInvalidInputError):
        return InvalidInputError(
            message="The input was refused; nothing was changed.",
            field_errors=[FieldError(field=p.field, code=p.code, message=p.message) for p in exc.problems],
        )
    if isinstance(exc, CampaignConflictError):
        return ConflictError(message=str(exc), current_version=exc.current_version)
    if isinstance(exc, CampaignStateError):
        return InvalidStateError(
            message=str(exc), current_status=exc.current.value, allowed_actions=[a.value for a in exc.allowed_actions]
        )
    if isinstance(exc, CampaignVersionStateError):  # e.g. an edit of a draft version IN_REVIEW
        return InvalidStateError(message=str(exc), current_status=exc.current, allowed_actions=[])
    if isinstance(exc, ReviewFailedError):
        return ReviewFailedErrorType(message=str(exc), alerts=[_alert(a) for a in exc.alerts])
    if isinstance(exc, ApprovalRequired):
        return ApprovalRequiredError(message=str(exc), policies=[policy.name for policy in exc.policies])
    raise exc


campaign_error = _error  # the approval mutations (resolvers/approvals) map the same refusals


def _alert(alert: Any) -> ReviewAlert:
    return ReviewAlert(severity=alert.severity, code=alert.code, field=alert.field, message=alert.message)


def _not_found(given: Any) -> NotFoundError:
    return NotFoundError(message="No campaign with that id in this sandbox.", id=str(given))


async def _on_campaign(info: Info, node_id: Any, action: Callable[[int, int, str], Awaitable[Any]]) -> Any:
    """Decode the id, run `action(sandbox_id, pk, actor)` on the caller's campaign; refusals → an Error member."""
    caller = info.context.require_caller()
    pk = _pk(node_id)
    if pk is None:
        return _not_found(node_id)
    try:
        return await action(caller.sandbox_id, pk, caller.actor)
    except CampaignError as exc:
        return _error(exc)


@strawberry.type
class CampaignQuery:
    @strawberry.field(description="A campaign by id.", permission_classes=VIEWER)
    async def campaign(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign.")]
    ) -> Campaign | None:
        pk = _pk(id)
        if pk is None:
            return None
        if one_statement_reads(info):
            return await campaign_by_pk(info, pk)
        row = await CampaignModel.get_or_none(id=pk, sandbox_id=info.context.require_caller().sandbox_id)
        return Campaign.from_model(row) if row else None

    @strawberry.field(description="Campaigns of this sandbox.", permission_classes=VIEWER)
    async def campaigns(
        self,
        info: Info,
        filter: Annotated[
            CampaignFilter | None, strawberry.argument(description="Which campaigns; all when null.")
        ] = None,
        sort: Annotated[
            CampaignSort, strawberry.argument(description="Order of the list.")
        ] = CampaignSort.CREATED_DESC,
        first: Annotated[int | None, strawberry.argument(description="Page size, 0 to 100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor to continue from.")] = None,
    ) -> Connection[Campaign]:
        filter = filter or CampaignFilter()
        statuses = [CampaignStatusEnum(s.value) for s in filter.statuses] if filter.statuses else DEFAULT_LIST_STATUSES
        params = sql_params()
        where = list_filter_sql(
            params,
            sandbox_id=info.context.require_caller().sandbox_id,
            statuses=statuses,
            channel=ChannelEnum(filter.channel.value) if filter.channel is not None else None,
            search=filter.search[:200] if filter.search else None,
            tags=filter.tags[:20] if filter.tags else (),
        )
        return await campaign_page(
            SqlListing(CampaignModel, where, params),
            first=first,
            after=after,
            sort=SORT_KEYS[sort],
            max_page_size=info.context.limits.max_page_size,
            selected=selected_node_tree(info),
            loaders=info.context.loaders,
        )

    @strawberry.field(
        description="Review a campaign: alerts (errors block activation) and the plan.", permission_classes=MANAGER
    )
    async def campaign_review(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign to review.")],
        version: Annotated[
            int | None,
            strawberry.argument(
                description="Review the campaign as this `CampaignVersion.number` makes it (e.g. the draft version "
                "of a live campaign, before `campaignVersionPublish`); the campaign as it is when null."
            ),
        ] = None,
    ) -> CampaignReviewResult:
        pk = _pk(id)
        if pk is None:
            return _not_found(id)
        sandbox_id = info.context.require_caller().sandbox_id
        try:
            if version is not None:
                result = await review_version(sandbox_id, pk, version, links=info.context.links)
            else:
                result = await review_campaign(sandbox_id, pk, links=info.context.links)
        except CampaignError as exc:
            return _error(exc)
        p = result.plan
        return CampaignReview(
            can_activate=result.can_activate,
            alerts=[_alert(a) for a in result.alerts],
            plan=CampaignPlan(
                qualified=p.qualified,
                with_identity=p.with_identity,
                contactable=p.contactable,
                excluded_by_reason=[
                    ExclusionCount(reason=DeliveryReason.of(r), count=n) for r, n in p.excluded_by_reason
                ],
                next_run_times=list(p.next_run_times),
                estimated_duration_seconds=seconds(p.estimated_duration),
                reviewed_version=p.reviewed_version,
                experiment_arms=[
                    ExperimentArmEstimate(treatment=a.treatment, arm=a.arm, expected=a.expected) for a in p.arms
                ],
                excluded_by_business_rules=[
                    ExclusionCount(reason=DeliveryReason.of(r), count=n) for r, n in p.excluded_by_rules
                ],
                delayed_share=p.delayed_share,
            ),
        )

    @strawberry.field(description="Render the campaign's message for one profile.", permission_classes=MANAGER)
    async def campaign_preview(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign.")],
        profile_id: Annotated[
            strawberry.ID, strawberry.argument(description="Global id of the profile to render it for.")
        ],
        version: Annotated[
            int | None,
            strawberry.argument(description="Render this version (`CampaignVersion.number`, e.g. the draft)."),
        ] = None,
    ) -> CampaignPreviewResult:
        sandbox_id = info.context.require_caller().sandbox_id
        pk = _pk(id)
        found = await CampaignModel.get_or_none(id=pk, sandbox_id=sandbox_id) if pk else None
        if found is None:
            return _not_found(id)
        row = await version_campaign(found, version)
        if row is None:
            return NotFoundError(message="No version with that number on this campaign.", id=str(version))
        profile_pk = pk_of(profile_id, "Profile")
        profile = await ProfileModel.get_or_none(id=profile_pk, sandbox_id=sandbox_id) if profile_pk else None
        if profile is None:
            return NotFoundError(message="No profile with that id in this sandbox.", id=str(profile_id))
        try:
            rendered = preview_campaign(row, profile)
        except PreviewError as exc:
            return TemplateRenderError(message=str(exc), field=exc.field)
        return CampaignPreview(**rendered)

    @strawberry.field(description="Runs of a campaign, newest first.", permission_classes=VIEWER)
    async def campaign_runs(
        self,
        info: Info,
        campaign_id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign.")],
        first: Annotated[int | None, strawberry.argument(description="Page size, 0 to 100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor to continue from.")] = None,
    ) -> Connection[CampaignRun]:
        query = CampaignRunModel.filter(
            sandbox_id=info.context.require_caller().sandbox_id, campaign_id=_pk(campaign_id) or 0
        )
        return await paginate(
            query,
            first=first,
            after=after,
            max_page_size=info.context.limits.max_page_size,
            to_node=CampaignRun.from_model,
        )


@strawberry.type
class CampaignMutation:
    @strawberry.mutation(description="Create a DRAFT campaign.", permission_classes=MANAGER)
    async def campaign_create(
        self, info: Info, input: Annotated[CampaignCreateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignResult:
        caller = info.context.require_caller()
        try:
            values = create_values(input)
            row = await create_campaign(caller.sandbox_id, values, actor=caller.actor)
        except CampaignError as exc:
            return _error(exc)
        return CampaignSuccess(campaign=Campaign.from_model(row))

    @strawberry.mutation(
        description="Change a DRAFT campaign (patch); refused when `version` is stale.", permission_classes=MANAGER
    )
    async def campaign_update(
        self, info: Info, input: Annotated[CampaignUpdateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignResult:
        row = await _on_campaign(
            info,
            input.id,
            lambda sandbox_id, pk, actor: update_campaign(
                sandbox_id, pk, input.version, update_values(input), actor=actor
            ),
        )
        if isinstance(row, Error):
            return row
        return CampaignSuccess(campaign=Campaign.from_model(row))

    @strawberry.mutation(description="Change tags and description, in any status.", permission_classes=MANAGER)
    async def campaign_update_tags(
        self, info: Info, input: Annotated[CampaignUpdateTagsInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignResult:
        row = await _on_campaign(
            info,
            input.id,
            lambda sandbox_id, pk, actor: update_tags(
                sandbox_id, pk, tags=input.tags, description=input.description, actor=actor
            ),
        )
        if isinstance(row, Error):
            return row
        return CampaignSuccess(campaign=Campaign.from_model(row))

    @strawberry.mutation(description="Delete a DRAFT campaign.", permission_classes=MANAGER)
    async def campaign_delete(
        self, info: Info, input: Annotated[CampaignIdInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignDeleteResult:
        row = await _on_campaign(
            info, input.id, lambda sandbox_id, pk, actor: delete_campaign(sandbox_id, pk, actor=actor)
        )
        if isinstance(row, Error):
            return row
        return CampaignDeleteSuccess(deleted_id=strawberry.ID(str(strawberry.relay.GlobalID("Campaign", str(row.id)))))

    @strawberry.mutation(description="Copy any campaign into a new DRAFT.", permission_classes=MANAGER)
    async def campaign_duplicate(
        self, info: Info, input: Annotated[CampaignDuplicateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignResult:
        row = await _on_campaign(
            info,
            input.id,
            lambda sandbox_id, pk, actor: duplicate_campaign(sandbox_id, pk, name=input.name, actor=actor),
        )
        if isinstance(row, Error):
            return row
        return CampaignSuccess(campaign=Campaign.from_model(row))

    @strawberry.mutation(
        description="Activate a DRAFT (or an APPROVED campaign): the review runs again under a lock; any ERROR "
        "refuses. LIVE with a run now, or SCHEDULED when `schedule.startAt` is in the future. A DRAFT that an "
        "approval policy matches answers ApprovalRequiredError: request approval first.",
        permission_classes=PUBLISHER,
    )
    async def campaign_activate(
        self, info: Info, input: Annotated[CampaignIdInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignActivateResult:
        activation = await _on_campaign(
            info,
            input.id,
            lambda sandbox_id, pk, actor: activate_campaign(
                sandbox_id,
                pk,
                actor=actor,
                links=info.context.links,
                requester_role=info.context.require_caller().role.value,
            ),
        )
        if isinstance(activation, Error):
            return activation
        # After commit: hand the run to the workers (subscribers hear of it through the outbox).
        if activation.run is not None and info.context.queue is not None:
            await info.context.queue.execute_run(activation.run.id)
        return CampaignActivateSuccess(
            campaign=Campaign.from_model(activation.campaign),
            run=CampaignRun.from_model(activation.run) if activation.run else None,
        )

    @strawberry.mutation(description="Stop a LIVE or SCHEDULED campaign (final).", permission_classes=PUBLISHER)
    async def campaign_stop(
        self, info: Info, input: Annotated[CampaignStopInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignResult:
        row = await _on_campaign(
            info,
            input.id,
            lambda sandbox_id, pk, actor: stop_campaign(sandbox_id, pk, abort_running=input.abort_running, actor=actor),
        )
        if isinstance(row, Error):
            return row
        return CampaignSuccess(campaign=Campaign.from_model(row))

    @strawberry.mutation(description="Archive a STOPPED, COMPLETED or FAILED campaign.", permission_classes=PUBLISHER)
    async def campaign_archive(
        self, info: Info, input: Annotated[CampaignIdInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignResult:
        row = await _on_campaign(
            info, input.id, lambda sandbox_id, pk, actor: archive_campaign(sandbox_id, pk, actor=actor)
        )
        if isinstance(row, Error):
            return row
        return CampaignSuccess(campaign=Campaign.from_model(row))


@strawberry.type(description="A campaign changed status.")
class CampaignStatusChange:
    campaign_id: strawberry.ID = strawberry.field(description="Global id of the campaign.")
    status: CampaignStatus = strawberry.field(description="The new status.")
    previous_status: CampaignStatus | None = strawberry.field(
        description="The status before; null for a new campaign and for the current state sent first."
    )
    version: int = strawberry.field(description="The campaign version after the change.")
    at: datetime = strawberry.field(description="When it changed.")


@strawberry.type
class CampaignSubscription:
    @strawberry.subscription(
        description="Status changes of one campaign (its current status first), or of every campaign of the sandbox "
        "when `id` is null.",
        permission_classes=VIEWER,
    )
    async def campaign_status_changed(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Global id of the campaign to follow; all of the sandbox's campaigns when null."
            ),
        ] = None,
    ) -> AsyncGenerator[CampaignStatusChange, None]:
        caller = info.context.require_caller()
        # An id that names no campaign of this sandbox matches nothing (0 is never a key).
        wanted = (_pk(id) or 0) if id is not None else None
        if info.context.events is None:
            raise RuntimeError("no event bus configured")
        # Subscribed before the state is read, so a change committed in between is not missed; events at or
        # below a version already sent are dropped.
        async with info.context.events.subscribe(caller.sandbox_id, CAMPAIGN_STATUS_TOPIC) as events:
            versions: dict[int, int] = {}
            if wanted is not None:
                row = await CampaignModel.filter(id=wanted, sandbox_id=caller.sandbox_id).first()
                if row is not None:
                    versions[row.id] = row.version
                    yield CampaignStatusChange(
                        campaign_id=_campaign_gid(row.id),
                        status=CampaignStatusEnum(row.status),
                        previous_status=None,
                        version=row.version,
                        at=row.updated_at,
                    )
            async for change in typed_events(events, CAMPAIGN_STATUS_TOPIC):
                assert isinstance(change, CampaignStatusChanged)
                if wanted is not None and change.campaign_id != wanted:
                    continue
                if change.version <= versions.get(change.campaign_id, change.version - 1):
                    continue
                versions[change.campaign_id] = change.version
                yield CampaignStatusChange(
                    campaign_id=_campaign_gid(change.campaign_id),
                    status=change.status,
                    previous_status=change.previous_status,
                    version=change.version,
                    at=change.at,
                )


def _campaign_gid(pk: int) -> strawberry.ID:
    return strawberry.ID(str(strawberry.relay.GlobalID("Campaign", str(pk))))
