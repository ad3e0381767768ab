"""Rollbacks of a versioned campaign (issue 20): a new version equal to an earlier published one (`restores`).

A rollback publishes an older message, so it goes through the same approval rule as publishing a draft: where a
policy matches the campaign as the restored version makes it (for the caller's role), `rollback_version` answers
ApprovalRequiredError and changes nothing; `restore_version` then makes the restoring DRAFT, which is approved and
published as any draft (its publication is audited as VERSION_ROLLBACK).
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models import outbox
from models.campaigns.campaign import Campaign, CampaignVersion
from models.campaigns.review_snapshot import LinkFacts
from models.campaigns.row_access import locked_campaign, save_campaign
from models.campaigns.values import OBJECT_TYPE, CampaignNotFoundError
from models.campaigns.version_rules import VersionState
from models.campaigns.versions import (
    CampaignVersionStateError,
    Publication,
    next_number,
    open_draft,
    publish_reviewed,
    published_version,
    require_versioned,
)
from models.tenancy.audit import record_audit


async def _restoring_draft(
    conn: BaseDBAsyncClient, row: Campaign, number: int, *, actor: str, now: datetime, replace_open: bool
) -> tuple[CampaignVersion, CampaignVersion | None]:
    """A new DRAFT with the values of the earlier published version `number`, and the open version it replaced
    (DISCARDED). `replace_open` False: an open version IN_REVIEW or APPROVED is refused, as an edit would be."""
    require_versioned(row)
    target = await CampaignVersion.get_or_none(campaign_id=row.id, number=number).using_db(conn)
    if target is None:
        raise CampaignNotFoundError("input.number", number)
    current = await published_version(conn, row, now=now)
    if target.state is not VersionState.SUPERSEDED:
        raise CampaignVersionStateError(
            row.status.value,
            f"version {number} is {target.state.value}: a rollback restores an earlier published version "
            f"(the published one is {current.number})",
        )
    draft = await open_draft(conn, row.id)
    if draft is not None and not replace_open and draft.state is not VersionState.DRAFT:
        raise CampaignVersionStateError(
            row.status.value,
            f"version {draft.number} is {draft.state.value}: discard it or request changes before restoring another",
        )
    if draft is not None:
        await CampaignVersion.filter(id=draft.id).using_db(conn).update(state=VersionState.DISCARDED)
    version = await CampaignVersion.create(
        sandbox_id=row.sandbox_id,
        campaign_id=row.id,
        number=await next_number(conn, row.id),
        state=VersionState.DRAFT,
        values=dict(target.values),
        based_on=current.number,
        restores=target.number,
        created_by=actor,
        using_db=conn,
    )
    return version, draft


async def _audit_replaced(conn: BaseDBAsyncClient, row: Campaign, draft: CampaignVersion, actor: str, by: str) -> None:
    await record_audit(
        sandbox_id=row.sandbox_id,
        actor=actor,
        action="VERSION_DISCARD",
        object_type=OBJECT_TYPE,
        object_id=row.id,
        before={"versionNumber": draft.number, "state": draft.state.value},
        after={"versionNumber": draft.number, "state": VersionState.DISCARDED.value, "by": by},
        using_db=conn,
    )


async def rollback_version(
    sandbox_id: int,
    campaign_id: int,
    number: int,
    *,
    actor: str,
    now: datetime | None = None,
    links: LinkFacts | None = None,
    requester_role: str | None = None,
) -> Publication:
    """A new version equal to the earlier published version `number`, reviewed and PUBLISHED; an open version is
    DISCARDED. Where an approval policy matches for `requester_role` (system callers pass none), nothing changes:
    ApprovalRequiredError (restore_version, then the approval steps)."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        version, draft = await _restoring_draft(conn, row, number, actor=actor, now=now, replace_open=True)
        await publish_reviewed(
            conn,
            row,
            version,
            actor=actor,
            now=now,
            links=links,
            action="VERSION_ROLLBACK",
            requester_role=requester_role,
        )
        if draft is not None:
            await _audit_replaced(conn, row, draft, actor, "rollback")
    outbox.committed()
    return Publication(campaign=row, version=version)


async def restore_version(
    sandbox_id: int, campaign_id: int, number: int, *, actor: str, now: datetime | None = None
) -> Publication:
    """The rollback's first half, for approval: a DRAFT equal to the earlier published version `number` (an open
    DRAFT is discarded; one IN_REVIEW or APPROVED is refused). Nothing is published; the campaign's `version`
    counter moves, as for an edit."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        version, draft = await _restoring_draft(conn, row, number, actor=actor, now=now, replace_open=False)
        await save_campaign(conn, row, {})
        if draft is not None:
            await _audit_replaced(conn, row, draft, actor, "restore")
        await record_audit(
            sandbox_id=row.sandbox_id,
            actor=actor,
            action="VERSION_DRAFT",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before={"versionNumber": version.number},
            after={"versionNumber": version.number, "restores": number},
            using_db=conn,
        )
    return Publication(campaign=row, version=version)
