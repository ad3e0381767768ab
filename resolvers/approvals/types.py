"""GraphQL types of approval policies and campaign approvals (the error types campaignActivate also returns)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.relay.utils import to_base64

from models.approvals.model import ApprovalDecisionKind as ApprovalDecisionKindEnum
from models.approvals.model import ApprovalPolicy as PolicyRow
from models.approvals.model import CampaignApproval as DecisionRow
from models.approvals.policies import ApprovalRefusal as ApprovalRefusalEnum
from models.campaigns.rules import Category as CategoryEnum
from models.campaigns.rules import Channel as ChannelEnum
from models.tenancy.sandbox import Role as RoleEnum
from resolvers.errors import Error
from resolvers.tenancy.types import Role
from resolvers.vocabulary import Category, Channel, described_enum

ApprovalDecisionKind = described_enum(
    ApprovalDecisionKindEnum,
    description="A step of a campaign's approval.",
    values={
        "REQUESTED": "Someone asked for approval (the campaign went IN_REVIEW).",
        "APPROVED": "An approver approved.",
        "CHANGES_REQUESTED": "An approver (or the requester) sent the campaign back to DRAFT.",
    },
)


ApprovalRefusal = described_enum(
    ApprovalRefusalEnum,
    name="ApprovalRefusal",
    description="Why an approval step was refused.",
    values={
        "SELF_APPROVAL": "The requester cannot approve their own request.",
        "NOT_AN_APPROVER": "No policy the request matched names this caller's role or person.",
        "ALREADY_APPROVED": "This caller approved this request already.",
        "NO_POLICY_MATCHES": "No approval policy matches the campaign: activate it directly.",
    },
)


@strawberry.type(description="Conditions under which activating a campaign needs people's approval, and whose.")
class ApprovalPolicy:
    id: strawberry.ID = strawberry.field(description="Global id.")
    name: str = strawberry.field(description="Shown to requesters and in ApprovalRequiredError.")
    enabled: bool = strawberry.field(description="A disabled policy matches nothing.")
    channels: list[Channel] = strawberry.field(description="Matches these channels; empty: any.")  # type: ignore[valid-type]
    categories: list[Category] = strawberry.field(  # type: ignore[valid-type]
        description="Matches these categories; empty: any."
    )
    audience_above: int | None = strawberry.field(
        description="Matches when the estimated contactable audience is above this; null: any size."
    )
    requester_roles: list[Role] = strawberry.field(  # type: ignore[valid-type]
        description="Matches when the one activating (or requesting) holds one of these roles; empty: any."
    )
    approver_roles: list[Role] = strawberry.field(  # type: ignore[valid-type]
        description="Anyone holding one of these roles (or a higher one) may approve."
    )
    approver_user_ids: list[strawberry.ID] = strawberry.field(description="These people (User ids) may approve.")
    required_approvals: int = strawberry.field(description="Distinct approvers needed (k of the approvers).")
    created_at: datetime = strawberry.field(description="When it was created.")

    @classmethod
    def from_row(cls, row: PolicyRow) -> ApprovalPolicy:
        return cls(
            id=strawberry.ID(to_base64("ApprovalPolicy", row.id)),
            name=row.name,
            enabled=row.enabled,
            channels=[ChannelEnum(value) for value in row.channels],
            categories=[CategoryEnum(value) for value in row.categories],
            audience_above=row.audience_above,
            requester_roles=[RoleEnum(value) for value in row.requester_roles],
            approver_roles=[RoleEnum(value) for value in row.approver_roles],
            approver_user_ids=[strawberry.ID(to_base64("User", pk)) for pk in row.approver_user_ids],
            required_approvals=row.required_approvals,
            created_at=row.created_at,
        )


@strawberry.type(description="One step of a campaign's approval: who, when, on which campaign version.")
class CampaignApprovalStep:
    kind: ApprovalDecisionKind = strawberry.field(description="Request, approval or changes requested.")  # type: ignore[valid-type]
    actor: str = strawberry.field(description="Who: `user:<sub>` for a person, `apikey:<id>` for a key.")
    role: Role = strawberry.field(description="Their role in this sandbox then.")  # type: ignore[valid-type]
    version: int = strawberry.field(description="The campaign version they saw.")
    version_number: int | None = strawberry.field(
        description="On the approval of a draft version: its number (`CampaignVersion.number`); null for activation."
    )
    comment: str = strawberry.field(description="Their comment (the changes asked for).")
    policies: list[str] = strawberry.field(description="On a request: the names of the policies it matched.")
    created_at: datetime = strawberry.field(description="When.")

    @classmethod
    def from_row(cls, row: DecisionRow, policy_names: dict[int, str]) -> CampaignApprovalStep:
        return cls(
            kind=row.kind,
            actor=row.actor,
            role=RoleEnum(row.actor_role),
            version=row.version,
            version_number=row.version_number,
            comment=row.comment,
            policies=[policy_names.get(pk, f"(deleted policy {pk})") for pk in row.policy_ids or []],
            created_at=row.created_at,
        )


@strawberry.type(description="Activation refused: approval policies match, so request approval first. Nothing changed.")
class ApprovalRequiredError(Error):
    policies: list[str] = strawberry.field(description="Names of the matching policies.")


@strawberry.type(description="This approval step is not yours to take; nothing was changed.")
class ApprovalRefusedError(Error):
    code: ApprovalRefusal = strawberry.field(description="Why.")  # type: ignore[valid-type]
