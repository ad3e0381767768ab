"""Policies as stored rows → plain values (rules.Policy), and the exceptions the approval steps raise."""

from __future__ import annotations

from enum import StrEnum

from tortoise.backends.base.client import BaseDBAsyncClient

from models.approvals.model import ApprovalPolicy
from models.approvals.rules import CampaignFacts, Policy, matching
from models.campaigns.campaign import Campaign
from models.campaigns.review_snapshot import CampaignSnapshot
from models.campaigns.values import CampaignError


def policy_value(row: ApprovalPolicy) -> Policy:
    return Policy(
        id=row.id,
        name=row.name,
        channels=tuple(row.channels or ()),
        categories=tuple(row.categories or ()),
        audience_above=row.audience_above,
        requester_roles=tuple(row.requester_roles or ()),
        approver_roles=tuple(row.approver_roles or ()),
        approver_user_ids=tuple(int(i) for i in row.approver_user_ids or ()),
        required_approvals=row.required_approvals,
        enabled=row.enabled,
    )


async def matching_policies(sandbox_id: int, facts: CampaignFacts, conn: BaseDBAsyncClient | None) -> list[Policy]:
    rows = await ApprovalPolicy.filter(sandbox_id=sandbox_id, enabled=True).order_by("id").using_db(conn)
    return matching([policy_value(row) for row in rows], facts)


def campaign_facts(row: Campaign, snapshot: CampaignSnapshot, requester_role: str) -> CampaignFacts:
    """What policies judge: channel, category, the estimated contactable audience, the requester's role."""
    estimate = snapshot.audience.estimate
    return CampaignFacts(
        channel=row.channel.value if row.channel else None,
        category=row.category.value,
        contactable=estimate.contactable if estimate is not None else None,
        requester_role=requester_role,
    )


class ApprovalRequiredError(CampaignError):
    """Activation refused: policies match, so the campaign needs approval first (`campaignRequestApproval`)."""

    def __init__(self, policies: list[Policy]) -> None:
        self.policies = policies
        names = ", ".join(policy.name for policy in policies)
        super().__init__(f"approval required by {names}: request approval, then activate once approved")


class ApprovalRefusal(StrEnum):
    SELF_APPROVAL = "SELF_APPROVAL"  # the requester cannot approve their own request
    NOT_AN_APPROVER = "NOT_AN_APPROVER"  # no matched policy names this caller's role or user
    ALREADY_APPROVED = "ALREADY_APPROVED"  # this caller already approved this request
    NO_POLICY_MATCHES = "NO_POLICY_MATCHES"  # nothing to approve: activate directly


class ApprovalRefusedError(CampaignError):
    """An approval step this caller may not take; `code` says why."""

    def __init__(self, code: ApprovalRefusal, message: str) -> None:
        self.code = code
        super().__init__(message)
