"""The approval of a draft version of an activated campaign (issue 20): the same policies, approvers and refusals
as a campaign's activation (actions.py), but the version moves, not the campaign: DRAFT → IN_REVIEW (read-only)
→ APPROVED (read-only, publishable) or back to DRAFT. Each step is one transaction under the campaign's row lock;
it records who, when and which version, moves the campaign's `version` counter and is audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models.approvals.actions import (
    MAX_COMMENT,
    Person,
    check_approver,
    check_sender_back,
    current_request,
    record_step,
)
from models.approvals.model import ApprovalDecisionKind
from models.approvals.policies import ApprovalRefusal, ApprovalRefusedError, campaign_facts, matching_policies
from models.campaigns.campaign import Campaign, CampaignVersion
from models.campaigns.review import can_activate, review
from models.campaigns.review_snapshot import LinkFacts
from models.campaigns.reviewing import build_snapshot
from models.campaigns.row_access import locked_campaign, save_campaign
from models.campaigns.values import OBJECT_TYPE, CampaignConflictError, CampaignNotFoundError, ReviewFailedError
from models.campaigns.version_rules import VersionState
from models.campaigns.versions import CampaignVersionStateError, require_versioned, with_values
from models.tenancy.audit import record_audit


@dataclass(frozen=True)
class VersionStep:
    campaign: Campaign
    version: CampaignVersion
    approved: bool  # the version is APPROVED now


async def _version_in(
    conn: BaseDBAsyncClient, row: Campaign, number: int, states: tuple[VersionState, ...]
) -> CampaignVersion:
    version = await CampaignVersion.get_or_none(campaign_id=row.id, number=number).using_db(conn)
    if version is None:
        raise CampaignNotFoundError("input.number", number)
    if version.state not in states:
        allowed = " or ".join(state.value for state in states)
        raise CampaignVersionStateError(
            row.status.value, f"version {number} is {version.state.value}: this step needs it {allowed}"
        )
    return version


async def _move(
    conn: BaseDBAsyncClient,
    row: Campaign,
    version: CampaignVersion,
    state: VersionState,
    *,
    actor: str,
    action: str,
    extra: dict[str, Any],
) -> None:
    """The version's new state (compare-and-set on the old one), the campaign's counter, the audit row."""
    before = version.state
    if before is not state:
        moved = await CampaignVersion.filter(id=version.id, state=before).using_db(conn).update(state=state)
        if moved != 1:
            raise CampaignConflictError(row.version)
        version.state = state
    await save_campaign(conn, row, {})
    await record_audit(
        sandbox_id=row.sandbox_id,
        actor=actor,
        action=action,
        object_type=OBJECT_TYPE,
        object_id=row.id,
        before={"versionNumber": version.number, "state": before.value},
        after={"versionNumber": version.number, "state": state.value, **extra},
        using_db=conn,
    )


async def _request_of(conn: BaseDBAsyncClient, row: Campaign, version: CampaignVersion) -> Any:
    request = await current_request(conn, row.id, version.number)
    if request is None:  # IN_REVIEW and APPROVED are only reached through a request
        raise CampaignConflictError(row.version)
    return request


async def request_version_approval(
    sandbox_id: int,
    campaign_id: int,
    number: int,
    *,
    person: Person,
    comment: str = "",
    now: datetime | None = None,
    links: LinkFacts | None = None,
) -> VersionStep:
    """DRAFT → IN_REVIEW when the review of the campaign as the version makes it finds no error and a policy
    matches it (the matched policies decide who approves)."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        require_versioned(row)
        version = await _version_in(conn, row, number, (VersionState.DRAFT,))
        candidate = with_values(row, version.values)
        snapshot = await build_snapshot(candidate, now=now, conn=conn, links=links)
        alerts = review(snapshot, now)
        if not can_activate(alerts):
            raise ReviewFailedError(alerts)
        policies = await matching_policies(sandbox_id, campaign_facts(candidate, snapshot, person.role), conn)
        if not policies:
            raise ApprovalRefusedError(
                ApprovalRefusal.NO_POLICY_MATCHES, "No approval policy matches this version: publish it."
            )
        request = await record_step(
            conn, row, ApprovalDecisionKind.REQUESTED, person, comment, policies=policies, version_number=number
        )
        extra = {"approvalRequestId": request.id, "policies": [policy.name for policy in policies]}
        await _move(
            conn,
            row,
            version,
            VersionState.IN_REVIEW,
            actor=person.actor,
            action="VERSION_REQUEST_APPROVAL",
            extra=extra,
        )
    return VersionStep(campaign=row, version=version, approved=False)


async def approve_version(
    sandbox_id: int, campaign_id: int, number: int, *, person: Person, comment: str = "", now: datetime | None = None
) -> VersionStep:
    """This person's approval of the version IN_REVIEW; APPROVED once every matched policy has its k distinct
    approvers. Not the requester's, not twice."""
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        version = await _version_in(conn, row, number, (VersionState.IN_REVIEW,))
        request = await _request_of(conn, row, version)
        complete, approvals = await check_approver(conn, request, person)
        await record_step(
            conn, row, ApprovalDecisionKind.APPROVED, person, comment, request=request, version_number=number
        )
        state = VersionState.APPROVED if complete else VersionState.IN_REVIEW
        extra = {"approvalRequestId": request.id, "approvals": approvals, "complete": complete}
        await _move(conn, row, version, state, actor=person.actor, action="VERSION_APPROVE", extra=extra)
    return VersionStep(campaign=row, version=version, approved=complete)


async def request_version_changes(
    sandbox_id: int, campaign_id: int, number: int, *, person: Person, comment: str, now: datetime | None = None
) -> VersionStep:
    """IN_REVIEW or APPROVED → DRAFT (editable again) with the changes asked for; approvals so far lapse."""
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        version = await _version_in(conn, row, number, (VersionState.IN_REVIEW, VersionState.APPROVED))
        request = await _request_of(conn, row, version)
        await check_sender_back(conn, request, person)
        await record_step(
            conn, row, ApprovalDecisionKind.CHANGES_REQUESTED, person, comment, request=request, version_number=number
        )
        extra = {"approvalRequestId": request.id, "comment": comment[:MAX_COMMENT]}
        await _move(
            conn, row, version, VersionState.DRAFT, actor=person.actor, action="VERSION_REQUEST_CHANGES", extra=extra
        )
    return VersionStep(campaign=row, version=version, approved=False)
