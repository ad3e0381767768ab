"""Approval policies (ADMIN) and the approval steps of a campaign: request, approve (optionally activating), request
changes. Rules and writes live in models/approvals; this module translates."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.relay.utils import to_base64

from models.approvals.actions import Person, approve, request_approval, request_changes
from models.approvals.model import ApprovalPolicy as PolicyRow
from models.approvals.model import CampaignApproval as DecisionRow
from models.approvals.policies import ApprovalRefusedError as Refused
from models.approvals.policy_actions import (
    PolicyInputError,
    PolicyNotFoundError,
    create_policy,
    delete_policy,
    update_policy,
)
from models.approvals.rules import Policy
from models.campaigns.actions import activate_campaign
from models.campaigns.values import CampaignError
from models.tenancy.sandbox import Role as RoleEnum
from resolvers.approvals.types import ApprovalPolicy, ApprovalRefusedError, CampaignApprovalStep
from resolvers.campaigns.refusals import campaign_error, campaign_not_found, campaign_pk
from resolvers.campaigns.review_types import ReviewFailedErrorType
from resolvers.campaigns.run_types import CampaignRun
from resolvers.campaigns.types import Campaign
from resolvers.context import Caller, Info
from resolvers.errors import (
    ConflictError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    invalid_input,
    not_found,
    refused_field,
)
from resolvers.nodes import pk_of
from resolvers.permissions import ADMIN, MANAGER, VIEWER
from resolvers.tenancy.types import Role
from resolvers.vocabulary import INPUT_ARG, Category, Channel

# ---- policies -----------------------------------------------------------------------------------------------


@strawberry.input(description="A new approval policy. Conditions left empty match any campaign.")
class ApprovalPolicyCreateInput:
    name: str = strawberry.field(description="1 to 100 characters.")
    enabled: bool = strawberry.field(default=True, description="A disabled policy matches nothing.")
    channels: list[Channel] = strawberry.field(default_factory=list, description="Only these channels.")  # type: ignore[valid-type]
    categories: list[Category] = strawberry.field(default_factory=list, description="Only these categories.")  # type: ignore[valid-type]
    audience_above: int | None = strawberry.field(
        default=None, description="Only when the estimated contactable audience is above this."
    )
    requester_roles: list[Role] = strawberry.field(  # type: ignore[valid-type]
        default_factory=list, description="Only when the one activating holds one of these roles."
    )
    approver_roles: list[Role] = strawberry.field(  # type: ignore[valid-type]
        default_factory=list, description="Holders of these roles (or higher) approve; MANAGER at least."
    )
    approver_user_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list, description="These members (User ids) approve."
    )
    required_approvals: int = strawberry.field(default=1, description="Distinct approvers needed, 1 to 10.")


@strawberry.input(description="Changes to an approval policy; omitted fields stay.")
class ApprovalPolicyUpdateInput:
    id: strawberry.ID = strawberry.field(description="The policy.")
    name: str | None = strawberry.field(default=None, description="A new name.")
    enabled: bool | None = strawberry.field(default=None, description="Turn it on or off.")
    channels: list[Channel] | None = strawberry.field(default=None, description="New channels.")  # type: ignore[valid-type]
    categories: list[Category] | None = strawberry.field(default=None, description="New categories.")  # type: ignore[valid-type]
    audience_above: int | None = strawberry.field(default=None, description="A new audience threshold.")
    requester_roles: list[Role] | None = strawberry.field(default=None, description="New requester roles.")  # type: ignore[valid-type]
    approver_roles: list[Role] | None = strawberry.field(default=None, description="New approver roles.")  # type: ignore[valid-type]
    approver_user_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="New approvers.")
    required_approvals: int | None = strawberry.field(default=None, description="New k.")


@strawberry.input(description="The approval policy to delete.")
class ApprovalPolicyDeleteInput:
    id: strawberry.ID = strawberry.field(description="The policy.")


@strawberry.type(description="The policy after the change.")
class ApprovalPolicySuccess:
    policy: ApprovalPolicy = strawberry.field(description="The policy.")


@strawberry.type(description="The policy is gone; pending requests keep the approvers they were asked of.")
class ApprovalPolicyDeleteSuccess:
    deleted_id: strawberry.ID = strawberry.field(description="Global id of the deleted policy.")


ApprovalPolicyResult = Annotated[
    ApprovalPolicySuccess | InvalidInputError | NotFoundError,
    strawberry.union(
        "ApprovalPolicyResult", description="Result of `approvalPolicyCreate` and `approvalPolicyUpdate`."
    ),
]
ApprovalPolicyDeleteResult = Annotated[
    ApprovalPolicyDeleteSuccess | NotFoundError,
    strawberry.union("ApprovalPolicyDeleteResult", description="Result of `approvalPolicyDelete`."),
]


def _user_ids(ids: list[strawberry.ID]) -> tuple[int, ...] | InvalidInputError:
    pks = [pk_of(value, "User") for value in ids]
    if any(pk is None for pk in pks):
        return refused_field("input.approverUserIds", "INVALID", "Not user ids.")
    return tuple(pk for pk in pks if pk is not None)


def _enum_values(values: list[Any] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(str(value.value) for value in values)


def _policy_not_found(given: Any) -> NotFoundError:
    return not_found(given, "No approval policy with that id in this sandbox.")


# ---- approval steps -----------------------------------------------------------------------------------------


@strawberry.input(description="Ask for the approvals the campaign's matching policies require.")
class CampaignRequestApprovalInput:
    id: strawberry.ID = strawberry.field(description="The DRAFT campaign.")
    comment: str = strawberry.field(default="", description="A note for the approvers.")


@strawberry.input(description="Approve a campaign IN_REVIEW.")
class CampaignApproveInput:
    id: strawberry.ID = strawberry.field(description="The campaign.")
    comment: str = strawberry.field(default="", description="A note kept with the approval.")
    activate: bool = strawberry.field(
        default=False,
        description="When this approval is the last one needed, activate at once (PUBLISHER or above).",
    )


@strawberry.input(description="Send a campaign IN_REVIEW or APPROVED back to DRAFT.")
class CampaignRequestChangesInput:
    id: strawberry.ID = strawberry.field(description="The campaign.")
    comment: str = strawberry.field(description="The changes asked for.")


@strawberry.type(description="The campaign after the approval step.")
class CampaignApprovalStepSuccess:
    campaign: Campaign = strawberry.field(description="The campaign.")


@strawberry.type(description="The approval is recorded.")
class CampaignApproveSuccess:
    campaign: Campaign = strawberry.field(description="The campaign: APPROVED when every policy has its approvals.")
    approved: bool = strawberry.field(description="True when this approval was the last one needed.")
    activated: bool = strawberry.field(description="True when `activate` was asked and the campaign went live.")
    run: CampaignRun | None = strawberry.field(description="The run started by the activation, if any.")


CampaignApprovalStepResult = Annotated[
    CampaignApprovalStepSuccess
    | NotFoundError
    | InvalidStateError
    | ConflictError
    | ApprovalRefusedError
    | ReviewFailedErrorType
    | InvalidInputError,
    strawberry.union(
        "CampaignApprovalStepResult", description="Result of `campaignRequestApproval` and `campaignRequestChanges`."
    ),
]
CampaignApproveResult = Annotated[
    CampaignApproveSuccess
    | NotFoundError
    | InvalidStateError
    | ConflictError
    | ApprovalRefusedError
    | ReviewFailedErrorType
    | InvalidInputError,
    strawberry.union("CampaignApproveResult", description="Result of `campaignApprove`."),
]


def person_of(caller: Caller) -> Person:
    return Person(actor=caller.actor, role=caller.role.value, user_id=caller.user_id)


def approval_error(exc: CampaignError) -> Any:
    if isinstance(exc, Refused):
        return ApprovalRefusedError(message=str(exc), code=exc.code)
    return campaign_error(exc)


@strawberry.type
class ApprovalQuery:
    @strawberry.field(description="Approval policies of this sandbox, oldest first.", permission_classes=VIEWER)
    async def approval_policies(self, info: Info) -> list[ApprovalPolicy]:
        rows = await PolicyRow.filter(sandbox_id=info.context.require_caller().sandbox_id).order_by("id").limit(1000)
        return [ApprovalPolicy.from_row(row) for row in rows]

    @strawberry.field(
        description="The approval steps of a campaign, oldest first (empty for an unknown id).",
        permission_classes=VIEWER,
    )
    async def campaign_approvals(
        self, info: Info, campaign_id: Annotated[strawberry.ID, strawberry.argument(description="The campaign.")]
    ) -> list[CampaignApprovalStep]:
        pk = campaign_pk(campaign_id)
        if pk is None:
            return []
        sandbox_id = info.context.require_caller().sandbox_id
        rows = await DecisionRow.filter(campaign_id=pk, sandbox_id=sandbox_id).order_by("id").limit(1000)
        policy_ids = {pk for row in rows for pk in row.policy_ids or []}
        names = (
            dict(await PolicyRow.filter(id__in=list(policy_ids), sandbox_id=sandbox_id).values_list("id", "name"))
            if policy_ids
            else {}
        )
        return [CampaignApprovalStep.from_row(row, names) for row in rows]


@strawberry.type
class ApprovalMutation:
    @strawberry.mutation(description="Create an approval policy. Audited.", permission_classes=ADMIN)
    async def approval_policy_create(
        self, info: Info, input: Annotated[ApprovalPolicyCreateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> ApprovalPolicyResult:
        caller = info.context.require_caller()
        user_ids = _user_ids(input.approver_user_ids)
        if isinstance(user_ids, InvalidInputError):
            return user_ids
        policy = Policy(
            id=0,
            name=input.name,
            enabled=input.enabled,
            channels=_enum_values(input.channels) or (),
            categories=_enum_values(input.categories) or (),
            audience_above=input.audience_above,
            requester_roles=_enum_values(input.requester_roles) or (),
            approver_roles=_enum_values(input.approver_roles) or (),
            approver_user_ids=user_ids,
            required_approvals=input.required_approvals,
        )
        try:
            row = await create_policy(caller.sandbox_id, policy, actor=caller.actor)
        except PolicyInputError as exc:
            return invalid_input(exc.problems)
        return ApprovalPolicySuccess(policy=ApprovalPolicy.from_row(row))

    @strawberry.mutation(description="Change an approval policy. Audited.", permission_classes=ADMIN)
    async def approval_policy_update(
        self, info: Info, input: Annotated[ApprovalPolicyUpdateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> ApprovalPolicyResult:
        caller = info.context.require_caller()
        pk = pk_of(input.id, "ApprovalPolicy")
        if pk is None:
            return _policy_not_found(input.id)
        changes: dict[str, Any] = {}
        for name in ("name", "enabled", "audience_above", "required_approvals"):
            if getattr(input, name) is not None:
                changes[name] = getattr(input, name)
        for name in ("channels", "categories", "requester_roles", "approver_roles"):
            values = _enum_values(getattr(input, name))
            if values is not None:
                changes[name] = values
        if input.approver_user_ids is not None:
            user_ids = _user_ids(input.approver_user_ids)
            if isinstance(user_ids, InvalidInputError):
                return user_ids
            changes["approver_user_ids"] = user_ids
        try:
            row = await update_policy(caller.sandbox_id, pk, changes, actor=caller.actor)
        except PolicyNotFoundError:
            return _policy_not_found(input.id)
        except PolicyInputError as exc:
            return invalid_input(exc.problems)
        return ApprovalPolicySuccess(policy=ApprovalPolicy.from_row(row))

    @strawberry.mutation(description="Delete an approval policy. Audited.", permission_classes=ADMIN)
    async def approval_policy_delete(
        self, info: Info, input: Annotated[ApprovalPolicyDeleteInput, strawberry.argument(description=INPUT_ARG)]
    ) -> ApprovalPolicyDeleteResult:
        caller = info.context.require_caller()
        pk = pk_of(input.id, "ApprovalPolicy")
        if pk is None:
            return _policy_not_found(input.id)
        try:
            await delete_policy(caller.sandbox_id, pk, actor=caller.actor)
        except PolicyNotFoundError:
            return _policy_not_found(input.id)
        return ApprovalPolicyDeleteSuccess(deleted_id=strawberry.ID(to_base64("ApprovalPolicy", pk)))

    @strawberry.mutation(
        description="Ask for approval: DRAFT → IN_REVIEW (read-only), when an approval policy matches and the "
        "review finds no error. The matched policies decide who approves.",
        permission_classes=MANAGER,
    )
    async def campaign_request_approval(
        self, info: Info, input: Annotated[CampaignRequestApprovalInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignApprovalStepResult:
        caller = info.context.require_caller()
        pk = campaign_pk(input.id)
        if pk is None:
            return campaign_not_found(input.id)
        try:
            row = await request_approval(
                caller.sandbox_id, pk, person=person_of(caller), comment=input.comment, links=info.context.links
            )
        except CampaignError as exc:
            return approval_error(exc)
        return CampaignApprovalStepSuccess(campaign=Campaign.from_model(row))

    @strawberry.mutation(
        description="Approve a campaign IN_REVIEW (not your own request). It becomes APPROVED once every matched "
        "policy has its approvals; with `activate`, that last approval activates it too.",
        permission_classes=MANAGER,
    )
    async def campaign_approve(
        self, info: Info, input: Annotated[CampaignApproveInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignApproveResult:
        caller = info.context.require_caller()
        pk = campaign_pk(input.id)
        if pk is None:
            return campaign_not_found(input.id)
        if input.activate and not caller.role.allows(RoleEnum.PUBLISHER):
            return refused_field("input.activate", "INVALID", "Activating needs the PUBLISHER role.")
        try:
            decision = await approve(caller.sandbox_id, pk, person=person_of(caller), comment=input.comment)
        except CampaignError as exc:
            return approval_error(exc)
        campaign, run, activated = decision.campaign, None, False
        if input.activate and decision.approved:
            # A second transaction: the approval stands even if the activation is refused (then it says why).
            try:
                activation = await activate_campaign(
                    caller.sandbox_id,
                    pk,
                    actor=caller.actor,
                    links=info.context.links,
                    requester_role=caller.role.value,
                )
            except CampaignError as exc:
                return approval_error(exc)
            campaign, run, activated = activation.campaign, activation.run, True
            if run is not None and info.context.queue is not None:
                await info.context.queue.execute_run(run.id)
        return CampaignApproveSuccess(
            campaign=Campaign.from_model(campaign),
            approved=decision.approved,
            activated=activated,
            run=CampaignRun.from_model(run) if run else None,
        )

    @strawberry.mutation(
        description="Send a campaign IN_REVIEW or APPROVED back to DRAFT with the changes asked for (approvers, or "
        "the requester withdrawing). Approvals given so far lapse.",
        permission_classes=MANAGER,
    )
    async def campaign_request_changes(
        self, info: Info, input: Annotated[CampaignRequestChangesInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignApprovalStepResult:
        caller = info.context.require_caller()
        pk = campaign_pk(input.id)
        if pk is None:
            return campaign_not_found(input.id)
        try:
            row = await request_changes(caller.sandbox_id, pk, person=person_of(caller), comment=input.comment)
        except CampaignError as exc:
            return approval_error(exc)
        return CampaignApprovalStepSuccess(campaign=Campaign.from_model(row))
