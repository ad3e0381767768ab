"""The approval steps of a campaign: request (DRAFT → IN_REVIEW), approve (→ APPROVED once every matched policy
has its k approvals, optionally activating at once), request changes (→ DRAFT). Each is one transaction under the
campaign's row lock, changes status only through transitions.transition_campaign (audit row and outbox event with
it), and records the decision: who, when, which campaign version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models import outbox
from models.approvals.model import ApprovalDecisionKind, ApprovalPolicy, CampaignApproval
from models.approvals.policies import (
    ApprovalRefusal,
    ApprovalRefusedError,
    campaign_facts,
    matching_policies,
    policy_value,
)
from models.approvals.rules import Approver, Policy, approved, may_approve
from models.campaigns.campaign import Campaign
from models.campaigns.review import can_activate, review
from models.campaigns.review_snapshot import LinkFacts
from models.campaigns.reviewing import build_snapshot
from models.campaigns.rules import CampaignAction, InvalidTransition, check_transition
from models.campaigns.transitions import transition_campaign
from models.campaigns.values import (
    CampaignConflictError,
    CampaignNotFoundError,
    CampaignStateError,
    ReviewFailedError,
)

MAX_COMMENT = 2000


@dataclass(frozen=True, slots=True)
class Person:
    """Who takes an approval step: the audit actor, the role in this sandbox and, for people, the user id."""

    actor: str
    role: str
    user_id: int | None = None


async def _locked(conn: BaseDBAsyncClient, sandbox_id: int, campaign_id: int) -> Campaign:
    row = await Campaign.filter(id=campaign_id, sandbox_id=sandbox_id).select_for_update().using_db(conn).first()
    if row is None:
        raise CampaignNotFoundError("input.id", campaign_id)
    return row


def _check(row: Campaign, action: CampaignAction) -> None:
    try:
        check_transition(row.status, action)
    except InvalidTransition as exc:
        raise CampaignStateError(exc) from None


async def _transition(
    conn: BaseDBAsyncClient, row: Campaign, action: CampaignAction, person: Person, now: datetime, **options
) -> None:
    if not await transition_campaign(conn, row, action, actor=person.actor, now=now, **options):
        fresh = await Campaign.get(id=row.id).using_db(conn)
        raise CampaignConflictError(fresh.version)


async def current_request(
    conn: BaseDBAsyncClient | None, campaign_id: int, version_number: int | None = None
) -> CampaignApproval | None:
    """The latest request on the campaign (activation) or, given `version_number`, on that draft version."""
    return (
        await CampaignApproval.filter(
            campaign_id=campaign_id, kind=ApprovalDecisionKind.REQUESTED, version_number=version_number
        )
        .order_by("-id")
        .using_db(conn)
        .first()
    )


async def record_step(
    conn: BaseDBAsyncClient,
    row: Campaign,
    kind: ApprovalDecisionKind,
    person: Person,
    comment: str,
    *,
    request: CampaignApproval | None = None,
    policies: list[Policy] | None = None,
    version_number: int | None = None,
) -> CampaignApproval:
    """One approval step: who, when, the campaign `version` they saw and, for a draft version, its number."""
    return await CampaignApproval.create(
        sandbox_id=row.sandbox_id,
        campaign_id=row.id,
        request_id=request.id if request is not None else None,
        kind=kind,
        actor=person.actor,
        actor_role=person.role,
        user_id=person.user_id,
        version=row.version,
        version_number=version_number,
        comment=comment[:MAX_COMMENT],
        policy_ids=[policy.id for policy in policies or []],
        using_db=conn,
    )


async def check_approver(conn: BaseDBAsyncClient, request: CampaignApproval, person: Person) -> tuple[bool, int]:
    """Refuses (ApprovalRefusedError) the requester, a caller no matched policy names, and a second approval by
    the same caller. Whether this approval completes every policy the request matched, and the approvals then."""
    if request.actor == person.actor or (person.user_id is not None and request.user_id == person.user_id):
        raise ApprovalRefusedError(ApprovalRefusal.SELF_APPROVAL, "The requester cannot approve their own request.")
    policies = await _request_policies(conn, request)
    me = Approver(actor=person.actor, role=person.role, user_id=person.user_id)
    if not any(may_approve(policy, me) for policy in policies):
        raise ApprovalRefusedError(
            ApprovalRefusal.NOT_AN_APPROVER, "No policy this campaign matched names you as an approver."
        )
    earlier = await CampaignApproval.filter(request_id=request.id, kind=ApprovalDecisionKind.APPROVED).using_db(conn)
    if any(decision.actor == person.actor for decision in earlier):
        raise ApprovalRefusedError(ApprovalRefusal.ALREADY_APPROVED, "You approved this request already.")
    approvers = [Approver(actor=d.actor, role=d.actor_role, user_id=d.user_id) for d in earlier] + [me]
    return approved(policies, approvers), len(approvers)


async def check_sender_back(conn: BaseDBAsyncClient, request: CampaignApproval, person: Person) -> None:
    """Changes are requested by an approver of a matched policy, or by the requester withdrawing."""
    policies = await _request_policies(conn, request)
    me = Approver(actor=person.actor, role=person.role, user_id=person.user_id)
    if request.actor != person.actor and not any(may_approve(policy, me) for policy in policies):
        raise ApprovalRefusedError(
            ApprovalRefusal.NOT_AN_APPROVER, "Only an approver (or the requester) can send it back."
        )


async def _request_policies(conn: BaseDBAsyncClient, request: CampaignApproval) -> list[Policy]:
    rows = await ApprovalPolicy.filter(id__in=list(request.policy_ids or [])).order_by("id").using_db(conn)
    return [policy_value(row) for row in rows]


async def request_approval(
    sandbox_id: int,
    campaign_id: int,
    *,
    person: Person,
    comment: str = "",
    now: datetime | None = None,
    links: LinkFacts | None = None,
) -> Campaign:
    """DRAFT → IN_REVIEW, recording the policies the campaign matches now (they decide who approves)."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, campaign_id)
        _check(row, CampaignAction.REQUEST_APPROVAL)
        # Approvers judge a campaign that could go live: the review's errors refuse the request as they refuse
        # an activation.
        snapshot = await build_snapshot(row, now=now, conn=conn, links=links)
        alerts = review(snapshot, now)
        if not can_activate(alerts):
            raise ReviewFailedError(alerts)
        policies = await matching_policies(sandbox_id, campaign_facts(row, snapshot, person.role), conn)
        if not policies:
            raise ApprovalRefusedError(
                ApprovalRefusal.NO_POLICY_MATCHES, "No approval policy matches this campaign: activate it."
            )
        request = await record_step(conn, row, ApprovalDecisionKind.REQUESTED, person, comment, policies=policies)
        extra = {"approvalRequestId": request.id, "policies": [policy.name for policy in policies]}
        await _transition(conn, row, CampaignAction.REQUEST_APPROVAL, person, now, audit_extra=extra)
    outbox.committed()
    return row


@dataclass(frozen=True)
class Decision:
    campaign: Campaign
    approved: bool  # every matched policy has its approvals now


async def approve(
    sandbox_id: int, campaign_id: int, *, person: Person, comment: str = "", now: datetime | None = None
) -> Decision:
    """Records this person's approval; the campaign becomes APPROVED when every policy the request matched has
    its k distinct approvers. The requester cannot approve, nor can anyone twice."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, campaign_id)
        _check(row, CampaignAction.APPROVE)
        request = await current_request(conn, row.id)
        if request is None:  # IN_REVIEW is only reached through a request
            raise CampaignConflictError(row.version)
        complete, approvals = await check_approver(conn, request, person)
        await record_step(conn, row, ApprovalDecisionKind.APPROVED, person, comment, request=request)
        extra = {"approvalRequestId": request.id, "approvals": approvals, "complete": complete}
        await _transition(conn, row, CampaignAction.APPROVE, person, now, approved=complete, audit_extra=extra)
    outbox.committed()
    return Decision(campaign=row, approved=complete)


async def request_changes(
    sandbox_id: int, campaign_id: int, *, person: Person, comment: str, now: datetime | None = None
) -> Campaign:
    """IN_REVIEW or APPROVED → DRAFT with a comment for the author; the approvals given so far lapse (a new
    request starts over). The requester may withdraw their own request this way."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, campaign_id)
        _check(row, CampaignAction.REQUEST_CHANGES)
        request = await current_request(conn, row.id)
        if request is None:
            raise CampaignConflictError(row.version)
        await check_sender_back(conn, request, person)
        await record_step(conn, row, ApprovalDecisionKind.CHANGES_REQUESTED, person, comment, request=request)
        extra = {"approvalRequestId": request.id, "comment": comment[:MAX_COMMENT]}
        await _transition(conn, row, CampaignAction.REQUEST_CHANGES, person, now, audit_extra=extra)
    outbox.committed()
    return row
