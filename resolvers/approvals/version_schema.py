"""The approval of a draft version of an activated campaign: request, approve (optionally publishing), request
changes. models/approvals/version_actions.py decides; this module translates."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from models.approvals.version_actions import (
    VersionStep,
    approve_version,
    request_version_approval,
    request_version_changes,
)
from models.campaigns.values import CampaignError
from models.campaigns.versions import publish_version
from models.tenancy.sandbox import Role as RoleEnum
from resolvers.approvals.schema import approval_error, person_of
from resolvers.approvals.types import ApprovalRefusedError
from resolvers.campaigns.refusals import campaign_not_found, campaign_pk
from resolvers.campaigns.review_types import ReviewFailedErrorType
from resolvers.campaigns.types import Campaign
from resolvers.campaigns.version_types import CampaignVersion
from resolvers.context import Info
from resolvers.errors import (
    ConflictError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    refused_field,
)
from resolvers.permissions import MANAGER
from resolvers.vocabulary import INPUT_ARG


@strawberry.input(description="Ask for the approvals the policies matching a draft version require.")
class CampaignVersionRequestApprovalInput:
    campaign_id: strawberry.ID = strawberry.field(description="Global id of the campaign.")
    number: int = strawberry.field(description="The DRAFT version's number.")
    comment: str = strawberry.field(default="", description="A note for the approvers.")


@strawberry.input(description="Approve a draft version IN_REVIEW.")
class CampaignVersionApproveInput:
    campaign_id: strawberry.ID = strawberry.field(description="Global id of the campaign.")
    number: int = strawberry.field(description="The version's number.")
    comment: str = strawberry.field(default="", description="A note kept with the approval.")
    publish: bool = strawberry.field(
        default=False,
        description="When this approval is the last one needed, publish the version at once (PUBLISHER or above).",
    )


@strawberry.input(description="Send a version IN_REVIEW or APPROVED back to DRAFT.")
class CampaignVersionRequestChangesInput:
    campaign_id: strawberry.ID = strawberry.field(description="Global id of the campaign.")
    number: int = strawberry.field(description="The version's number.")
    comment: str = strawberry.field(description="The changes asked for.")


@strawberry.type(description="The version after the approval step.")
class CampaignVersionApprovalSuccess:
    campaign: Campaign = strawberry.field(description="The campaign (its `version` counter moved).")
    version: CampaignVersion = strawberry.field(description="The version: IN_REVIEW, APPROVED, DRAFT or PUBLISHED.")
    approved: bool = strawberry.field(description="Every matched policy has its approvals now.")
    published: bool = strawberry.field(description="This call published the version (`publish: true`).")


CampaignVersionApprovalResult = Annotated[
    CampaignVersionApprovalSuccess
    | NotFoundError
    | InvalidStateError
    | ConflictError
    | ApprovalRefusedError
    | ReviewFailedErrorType
    | InvalidInputError,
    strawberry.union(
        "CampaignVersionApprovalResult",
        description="Result of `campaignVersionRequestApproval`, `campaignVersionApprove` and "
        "`campaignVersionRequestChanges`.",
    ),
]


def _success(step: VersionStep, published: bool = False) -> CampaignVersionApprovalSuccess:
    return CampaignVersionApprovalSuccess(
        campaign=Campaign.from_model(step.campaign),
        version=CampaignVersion.from_model(step.version),
        approved=step.approved,
        published=published,
    )


async def _step(info: Info, campaign_id: Any, action: Any, **options: Any) -> Any:
    """Decode the id, take the step as the caller; refusals → an Error member."""
    caller = info.context.require_caller()
    pk = campaign_pk(campaign_id)
    if pk is None:
        return campaign_not_found(campaign_id)
    try:
        return _success(await action(caller.sandbox_id, pk, person=person_of(caller), **options))
    except CampaignError as exc:
        return approval_error(exc)


@strawberry.type
class CampaignVersionApprovalMutation:
    @strawberry.mutation(
        description="Ask for approval of a draft version: DRAFT → IN_REVIEW (read-only), when an approval policy "
        "matches the campaign as the version makes it and its review finds no error.",
        permission_classes=MANAGER,
    )
    async def campaign_version_request_approval(
        self,
        info: Info,
        input: Annotated[CampaignVersionRequestApprovalInput, strawberry.argument(description=INPUT_ARG)],
    ) -> CampaignVersionApprovalResult:
        return await _step(
            info,
            input.campaign_id,
            request_version_approval,
            number=input.number,
            comment=input.comment,
            links=info.context.links,
        )

    @strawberry.mutation(
        description="Approve a version IN_REVIEW (not your own request). It becomes APPROVED once every matched "
        "policy has its approvals; with `publish`, that last approval publishes it too.",
        permission_classes=MANAGER,
    )
    async def campaign_version_approve(
        self, info: Info, input: Annotated[CampaignVersionApproveInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignVersionApprovalResult:
        caller = info.context.require_caller()
        if input.publish and not caller.role.allows(RoleEnum.PUBLISHER):
            return refused_field("input.publish", "INVALID", "Publishing needs the PUBLISHER role.")
        answer = await _step(info, input.campaign_id, approve_version, number=input.number, comment=input.comment)
        if not (input.publish and isinstance(answer, CampaignVersionApprovalSuccess) and answer.approved):
            return answer
        # A second transaction: the approval stands even if the publication is refused (then it says why).
        try:
            done = await publish_version(
                caller.sandbox_id,
                campaign_pk(input.campaign_id) or 0,
                input.number,
                actor=caller.actor,
                links=info.context.links,
                requester_role=caller.role.value,
            )
        except CampaignError as exc:
            return approval_error(exc)
        return _success(VersionStep(campaign=done.campaign, version=done.version, approved=True), published=True)

    @strawberry.mutation(
        description="Send a version IN_REVIEW or APPROVED back to DRAFT with the changes asked for (approvers, or "
        "the requester withdrawing). Approvals given so far lapse.",
        permission_classes=MANAGER,
    )
    async def campaign_version_request_changes(
        self,
        info: Info,
        input: Annotated[CampaignVersionRequestChangesInput, strawberry.argument(description=INPUT_ARG)],
    ) -> CampaignVersionApprovalResult:
        return await _step(info, input.campaign_id, request_version_changes, number=input.number, comment=input.comment)
