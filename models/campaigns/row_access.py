"""The campaign row under a lock, and its compare-and-set save: shared by the authoring actions (actions.py)
and the versions (versions.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from models.campaigns.campaign import Campaign, tags_search_text
from models.campaigns.values import CampaignConflictError, CampaignNotFoundError


async def locked_campaign(conn: BaseDBAsyncClient, sandbox_id: int, campaign_id: int) -> Campaign:
    """The sandbox's campaign, locked (`SELECT … FOR UPDATE` on PostgreSQL); CampaignNotFoundError otherwise."""
    row = await Campaign.filter(id=campaign_id, sandbox_id=sandbox_id).select_for_update().using_db(conn).first()
    if row is None:
        raise CampaignNotFoundError("input.id", campaign_id)
    return row


async def save_campaign(conn: BaseDBAsyncClient, row: Campaign, changes: dict[str, Any]) -> Campaign:
    """Compare-and-set on the version read: SQLite has no row locks, so this is what serialises writers."""
    changes = {**changes, "version": row.version + 1, "updated_at": datetime.now(UTC)}
    if "tags" in changes:
        changes["tags_search"] = tags_search_text(changes["tags"])
    updated = await Campaign.filter(id=row.id, version=row.version, status=row.status).using_db(conn).update(**changes)
    if updated != 1:
        fresh = await Campaign.get(id=row.id).using_db(conn)
        raise CampaignConflictError(fresh.version)
    for key, value in changes.items():
        setattr(row, key, value)
    return row
