"""Campaign authoring and lifecycle mutations: create, update, delete, duplicate, activate, stop, archive."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import strawberry

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
from models.campaigns.values import CampaignError
from resolvers.approvals.types import ApprovalRequiredError
from resolvers.campaigns.inputs import (
    CampaignCreateInput,
    CampaignDuplicateInput,
    CampaignIdInput,
    CampaignStopInput,
    CampaignUpdateInput,
    CampaignUpdateTagsInput,
)
from resolvers.campaigns.refusals import campaign_error, on_campaign
from resolvers.campaigns.review_types import ReviewFailedErrorType
from resolvers.campaigns.run_types import CampaignRun
from resolvers.campaigns.translate import create_values, update_values
from resolvers.campaigns.types import Campaign
from resolvers.context import Info
from resolvers.errors import ConflictError, Error, InvalidInputError, InvalidStateError, NotFoundError
from resolvers.permissions import MANAGER, PUBLISHER
from resolvers.vocabulary import INPUT_ARG


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


async def _changed(info: Info, node_id: Any, action: Callable[[int, int, str], Awaitable[CampaignModel]]) -> Any:
    """`on_campaign` for the mutations that answer the changed campaign (CampaignResult)."""
    row = await on_campaign(info, node_id, action)
    if isinstance(row, Error):
        return row
    return CampaignSuccess(campaign=Campaign.from_model(row))


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
            return campaign_error(exc)
        return CampaignSuccess(campaign=Campaign.from_model(row))

    @strawberry.mutation(
        description="Change a DRAFT campaign (patch); refused when `version` is stale.", permission_classes=MANAGER
    )
    async def campaign_update(
        self, info: Info, input: Annotated[CampaignUpdateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignResult:
        return await _changed(
            info,
            input.id,
            lambda sandbox_id, pk, actor: update_campaign(
                sandbox_id, pk, input.version, update_values(input), actor=actor
            ),
        )

    @strawberry.mutation(description="Change tags and description, in any status.", permission_classes=MANAGER)
    async def campaign_update_tags(
        self, info: Info, input: Annotated[CampaignUpdateTagsInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignResult:
        return await _changed(
            info,
            input.id,
            lambda sandbox_id, pk, actor: update_tags(
                sandbox_id, pk, tags=input.tags, description=input.description, actor=actor
            ),
        )

    @strawberry.mutation(description="Delete a DRAFT campaign.", permission_classes=MANAGER)
    async def campaign_delete(
        self, info: Info, input: Annotated[CampaignIdInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignDeleteResult:
        row = await on_campaign(
            info, input.id, lambda sandbox_id, pk, actor: delete_campaign(sandbox_id, pk, actor=actor)
        )
        if isinstance(row, Error):
            return row
        return CampaignDeleteSuccess(deleted_id=strawberry.ID(str(strawberry.relay.GlobalID("Campaign", str(row.id)))))

    @strawberry.mutation(description="Copy any campaign into a new DRAFT.", permission_classes=MANAGER)
    async def campaign_duplicate(
        self, info: Info, input: Annotated[CampaignDuplicateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignResult:
        return await _changed(
            info,
            input.id,
            lambda sandbox_id, pk, actor: duplicate_campaign(sandbox_id, pk, name=input.name, actor=actor),
        )

    @strawberry.mutation(
        description="Activate a DRAFT (or an APPROVED campaign): the review runs again under a lock; any ERROR "
        "refuses. LIVE with a run now, or SCHEDULED when `schedule.startAt` is in the future. A DRAFT that an "
        "approval policy matches answers ApprovalRequiredError: request approval first.",
        permission_classes=PUBLISHER,
    )
    async def campaign_activate(
        self, info: Info, input: Annotated[CampaignIdInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignActivateResult:
        activation = await on_campaign(
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
        return await _changed(
            info,
            input.id,
            lambda sandbox_id, pk, actor: stop_campaign(sandbox_id, pk, abort_running=input.abort_running, actor=actor),
        )

    @strawberry.mutation(description="Archive a STOPPED, COMPLETED or FAILED campaign.", permission_classes=PUBLISHER)
    async def campaign_archive(
        self, info: Info, input: Annotated[CampaignIdInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignResult:
        return await _changed(
            info, input.id, lambda sandbox_id, pk, actor: archive_campaign(sandbox_id, pk, actor=actor)
        )
