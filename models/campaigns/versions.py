"""Versions of activated campaigns (issue 20): the draft an edit makes, its publication after review, and the
version a run sends (rollbacks: version_restores.py). The rules (which fields, which campaigns, the diff) are in
version_rules.py.

The campaign row always holds the PUBLISHED version's values, so everything that reads a campaign (the API, the
review, the calendar) sees what the next run sends. A run fixes the number of the published version in the
transaction that snapshots its audience (`bind_run_version`) and reads that version's values for its whole life
(`campaign_for_run`): a version published while it sends changes the next run, not this one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models import outbox
from models.approvals.policies import ApprovalRequiredError, campaign_facts, matching_policies
from models.campaigns.campaign import Campaign, CampaignRun, CampaignVersion
from models.campaigns.review import can_activate, plan, review
from models.campaigns.review_snapshot import LinkFacts
from models.campaigns.reviewing import ReviewResult, build_snapshot
from models.campaigns.row_access import locked_campaign, save_campaign
from models.campaigns.values import (
    OBJECT_TYPE,
    CampaignError,
    CampaignNotFoundError,
    ReviewFailedError,
    schedule_from_stored,
)
from models.campaigns.version_rules import (
    OPEN_STATES,
    VERSIONED_FIELDS,
    VersionState,
    diff_versions,
    versions_apply,
)
from models.outbox.payloads import CampaignVersionPublished
from models.tenancy.audit import record_audit

FIRST_VERSION_ACTOR = "system:versions"


class CampaignVersionStateError(CampaignError):
    """A version action the campaign or the version does not allow now (e.g. publishing with no draft)."""

    def __init__(self, status: str, message: str) -> None:
        self.current = status
        super().__init__(message)


def version_values(row: Campaign) -> dict[str, Any]:
    """The versioned columns of a campaign row, as a version stores them."""
    return {field: copy.deepcopy(getattr(row, field)) for field in VERSIONED_FIELDS}


def with_values(row: Campaign, values: dict[str, Any]) -> Campaign:
    """A copy of `row` (never saved) carrying a version's values: what that version sends."""
    candidate = copy.copy(row)
    for field in VERSIONED_FIELDS:
        if field in values:
            setattr(candidate, field, copy.deepcopy(values[field]))
    return candidate


def is_versioned(row: Campaign) -> bool:
    recurring = schedule_from_stored(row.schedule or {}).recurring
    return versions_apply(row.status, row.type, recurring)


async def published_version(conn: BaseDBAsyncClient, row: Campaign, *, now: datetime | None = None) -> CampaignVersion:
    """The campaign's PUBLISHED version; number 1, made from the row, when it has none yet (activated before
    versions existed, or the first activation)."""
    published = CampaignVersion.filter(campaign_id=row.id, state=VersionState.PUBLISHED).using_db(conn)
    found = await published.first()
    if found is not None:
        return found
    # Only campaigns activated before versions existed get here outside activation: the row lock serialises
    # the making of their number 1 (PostgreSQL; SQLite has one writer at a time).
    await Campaign.filter(id=row.id).select_for_update().using_db(conn).first()
    found = await published.first()
    if found is not None:
        return found
    return await CampaignVersion.create(
        sandbox_id=row.sandbox_id,
        campaign_id=row.id,
        number=1,
        state=VersionState.PUBLISHED,
        values=version_values(row),
        created_by=row.activated_by or FIRST_VERSION_ACTOR,
        published_at=row.activated_at or now or datetime.now(UTC),
        published_by=row.activated_by or FIRST_VERSION_ACTOR,
        using_db=conn,
    )


async def open_draft(conn: BaseDBAsyncClient, campaign_id: int) -> CampaignVersion | None:
    """The version not yet published (DRAFT, IN_REVIEW or APPROVED), if any: at most one per campaign."""
    return await CampaignVersion.filter(campaign_id=campaign_id, state__in=list(OPEN_STATES)).using_db(conn).first()


async def next_number(conn: BaseDBAsyncClient, campaign_id: int) -> int:
    last = await CampaignVersion.filter(campaign_id=campaign_id).using_db(conn).order_by("-number").first()
    return (last.number if last else 0) + 1


async def edit_draft(conn: BaseDBAsyncClient, row: Campaign, changes: dict[str, Any], *, actor: str) -> CampaignVersion:
    """An edit of a versioned campaign (locked by the caller): `changes` (versioned columns, content as a patch of
    channels) go into the draft version, made from the published one if there is none. The campaign's
    `version` counter moves, so a stale edit is refused as for any other edit."""
    published = await published_version(conn, row)
    draft = await open_draft(conn, row.id)
    if draft is not None and draft.state is not VersionState.DRAFT:
        raise CampaignVersionStateError(
            row.status.value,
            f"version {draft.number} is {draft.state.value}: read-only until changes are requested "
            "(campaignVersionRequestChanges) or it is discarded",
        )
    if draft is None:
        draft = await CampaignVersion.create(
            sandbox_id=row.sandbox_id,
            campaign_id=row.id,
            number=await next_number(conn, row.id),
            state=VersionState.DRAFT,
            values=dict(published.values),
            based_on=published.number,
            created_by=actor,
            using_db=conn,
        )
    before = dict(draft.values)
    values = dict(draft.values)
    for field, value in changes.items():
        if field == "content":
            # As on a draft campaign: a content patch replaces the channels it names; null clears all content.
            values["content"] = {**(values.get("content") or {}), **value} if value is not None else {}
        else:
            values[field] = value
    draft.values = values
    # An edited restore no longer copies the version it restored: it is a new message.
    draft.restores = None
    await draft.save(using_db=conn, update_fields=["values", "restores", "updated_at"])
    await save_campaign(conn, row, {})
    await record_audit(
        sandbox_id=row.sandbox_id,
        actor=actor,
        action="VERSION_DRAFT",
        object_type=OBJECT_TYPE,
        object_id=row.id,
        # The changed paths, not the values: content can be large (as the campaign's own audit rows omit it).
        before={"versionNumber": draft.number},
        after={"versionNumber": draft.number, "changed": [c.field for c in diff_versions(before, values)]},
        using_db=conn,
    )
    return draft


@dataclass(frozen=True)
class Publication:
    """A campaign and the version an action published (or discarded)."""

    campaign: Campaign
    version: CampaignVersion


async def publish_reviewed(
    conn: BaseDBAsyncClient,
    row: Campaign,
    version: CampaignVersion,
    *,
    actor: str,
    now: datetime,
    links: LinkFacts | None,
    action: str,
    requester_role: str | None = None,
) -> None:
    """Review the campaign as `version` would make it (any ERROR refuses, nothing written), then make it the
    PUBLISHED version: the row takes its values, the previous one is SUPERSEDED; audit and outbox rows.
    A DRAFT that an approval policy matches for `requester_role` is refused (ApprovalRequiredError): it goes
    through approval first (models/approvals/version_actions.py) and is published once APPROVED."""
    candidate = with_values(row, version.values)
    snapshot = await build_snapshot(candidate, now=now, conn=conn, links=links)
    alerts = review(snapshot, now)
    if not can_activate(alerts):
        raise ReviewFailedError(alerts)
    if requester_role is not None and version.state is VersionState.DRAFT:
        policies = await matching_policies(row.sandbox_id, campaign_facts(candidate, snapshot, requester_role), conn)
        if policies:
            raise ApprovalRequiredError(policies)
    previous = await published_version(conn, row, now=now)
    await (
        CampaignVersion.filter(id=previous.id, state=VersionState.PUBLISHED)
        .using_db(conn)
        .update(state=VersionState.SUPERSEDED)
    )
    updated = (
        await CampaignVersion.filter(id=version.id, state=version.state)
        .using_db(conn)
        .update(state=VersionState.PUBLISHED, published_at=now, published_by=actor)
    )
    if updated != 1:
        raise CampaignVersionStateError(row.status.value, f"version {version.number} changed meanwhile")
    version.state, version.published_at, version.published_by = VersionState.PUBLISHED, now, actor
    await save_campaign(conn, row, {field: version.values.get(field) for field in VERSIONED_FIELDS})
    await record_audit(
        sandbox_id=row.sandbox_id,
        actor=actor,
        action=action,
        object_type=OBJECT_TYPE,
        object_id=row.id,
        before={"publishedVersion": previous.number},
        after={
            "publishedVersion": version.number,
            "restores": version.restores,
            "changed": [c.field for c in diff_versions(previous.values, version.values)],
            "warnings": sorted({a.code.value for a in alerts}),
        },
        using_db=conn,
    )
    event = CampaignVersionPublished(
        campaign_id=row.id,
        number=version.number,
        previous_number=previous.number,
        restores=version.restores,
        campaign_version=row.version,
        at=now,
        actor=actor,
    )
    await outbox.emit(event, sandbox_id=row.sandbox_id, conn=conn)


def require_versioned(row: Campaign) -> None:
    if not is_versioned(row):
        raise CampaignVersionStateError(
            row.status.value,
            "versions are published on SCHEDULED or LIVE campaigns that recur or are API-triggered",
        )


async def publish_version(
    sandbox_id: int,
    campaign_id: int,
    number: int,
    *,
    actor: str,
    now: datetime | None = None,
    links: LinkFacts | None = None,
    requester_role: str | None = None,
) -> Publication:
    """The DRAFT (or APPROVED) version `number` → PUBLISHED, after the review passes under the campaign's lock. A
    DRAFT that an approval policy matches for `requester_role` needs approval first (system callers pass none)."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        require_versioned(row)
        version = await CampaignVersion.get_or_none(campaign_id=row.id, number=number).using_db(conn)
        if version is None:
            raise CampaignNotFoundError("input.number", number)
        if version.state not in (VersionState.DRAFT, VersionState.APPROVED):
            raise CampaignVersionStateError(
                row.status.value,
                f"version {number} is {version.state.value}: a DRAFT or APPROVED version is published",
            )
        await publish_reviewed(
            conn,
            row,
            version,
            actor=actor,
            now=now,
            links=links,
            # A restoring draft (version_restores.restore_version), published once approved, is a rollback.
            action="VERSION_ROLLBACK" if version.restores is not None else "VERSION_PUBLISH",
            requester_role=requester_role,
        )
    outbox.committed()
    return Publication(campaign=row, version=version)


async def discard_version(sandbox_id: int, campaign_id: int, number: int, *, actor: str) -> Publication:
    """The open version `number` (DRAFT, IN_REVIEW or APPROVED) → DISCARDED: the next edit starts a new draft
    from the published version. The campaign's `version` counter moves, as for an edit."""
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        version = await CampaignVersion.get_or_none(campaign_id=row.id, number=number).using_db(conn)
        if version is None:
            raise CampaignNotFoundError("input.number", number)
        if version.state not in OPEN_STATES:
            raise CampaignVersionStateError(
                row.status.value, f"version {number} is {version.state.value}: only an unpublished one is discarded"
            )
        before = version.state
        version.state = VersionState.DISCARDED
        await version.save(using_db=conn, update_fields=["state", "updated_at"])
        await save_campaign(conn, row, {})
        await record_audit(
            sandbox_id=row.sandbox_id,
            actor=actor,
            action="VERSION_DISCARD",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before={"versionNumber": number, "state": before.value},
            after={"versionNumber": number, "state": VersionState.DISCARDED.value},
            using_db=conn,
        )
    return Publication(campaign=row, version=version)


async def version_campaign(row: Campaign, number: int | None) -> Campaign | None:
    """The campaign as its version `number` makes it (previews and proofs of a draft); the row itself for None;
    None when the campaign has no such version."""
    if number is None:
        return row
    version = await CampaignVersion.get_or_none(campaign_id=row.id, number=number)
    return with_values(row, version.values) if version is not None else None


async def versions_by_number(sandbox_id: int, campaign_id: int, numbers: list[int]) -> dict[int, CampaignVersion]:
    rows = await CampaignVersion.filter(sandbox_id=sandbox_id, campaign_id=campaign_id, number__in=numbers)
    return {row.number: row for row in rows}


# ---- runs -------------------------------------------------------------------------------------------------------


async def bind_run_version(conn: BaseDBAsyncClient, campaign: Campaign, now: datetime) -> tuple[Campaign, int]:
    """In the run's snapshot transaction: the published version's number, and the campaign as it sends it."""
    version = await published_version(conn, campaign, now=now)
    return with_values(campaign, version.values), version.number


async def campaign_for_run(run: CampaignRun) -> Campaign:
    """The campaign as the run sends it: with the values of the version it fixed (the row as is for a run that
    fixed none, from before versions)."""
    campaign = await Campaign.get(id=run.campaign_id)
    if run.campaign_version is None:
        return campaign
    version = await CampaignVersion.get_or_none(campaign_id=campaign.id, number=run.campaign_version)
    return with_values(campaign, version.values) if version is not None else campaign


async def review_version(
    sandbox_id: int, campaign_id: int, number: int, *, now: datetime | None = None, links: LinkFacts | None = None
) -> ReviewResult:
    """The review of the campaign as version `number` makes it (the draft, before publishing it)."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await Campaign.get_or_none(id=campaign_id, sandbox_id=sandbox_id).using_db(conn)
        if row is None:
            raise CampaignNotFoundError("id", campaign_id)
        version = await CampaignVersion.get_or_none(campaign_id=row.id, number=number).using_db(conn)
        if version is None:
            raise CampaignNotFoundError("version", number)
        snapshot = await build_snapshot(with_values(row, version.values), now=now, conn=conn, links=links)
    return ReviewResult(alerts=review(snapshot, now), plan=plan(snapshot, now))
