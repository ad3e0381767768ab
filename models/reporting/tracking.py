"""Tracking events and tracked links (DESIGN §3, §7).

Events are written by the public tracking endpoints (open pixel, click redirect, unsubscribe) and by the
provider feedback webhook. Reports aggregate them with SQL, never row by row.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class TrackingEventKind(StrEnum):
    OPEN = "OPEN"
    CLICK = "CLICK"
    UNSUBSCRIBE = "UNSUBSCRIBE"
    COMPLAINT = "COMPLAINT"


class BounceType(StrEnum):
    HARD = "HARD"
    SOFT = "SOFT"


class TrackedLink(Model):
    """A link of a run's messages as rendered: a click token names one, and redirects only to its URL.

    Unique per (run, url_hash), so a personalised URL gets its own row and a shared one is stored once.
    """

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    run = fields.ForeignKeyField("herald.CampaignRun", on_delete=fields.CASCADE, related_name=False)
    campaign_id = fields.BigIntField()
    # sha256 hex of the URL
    url_hash = fields.CharField(max_length=64)
    url = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)

    sandbox_id: int
    run_id: int

    class Meta:
        table = "tracked_link"
        unique_together = (("run_id", "url_hash"),)


class TrackingEvent(Model):
    """One OPEN, CLICK, UNSUBSCRIBE or COMPLAINT of one delivery.

    Opens and clicks are all kept (counts), unique figures come from COUNT(DISTINCT delivery_id).
    UNSUBSCRIBE and COMPLAINT carry a dedupe_key so that recording them twice keeps one row.
    """

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    campaign_id = fields.BigIntField()
    run_id = fields.BigIntField()
    delivery_id = fields.BigIntField()
    profile_id = fields.BigIntField()
    kind = fields.CharEnumField(TrackingEventKind, max_length=16)
    link_id = fields.BigIntField(null=True)
    user_agent = fields.CharField(max_length=512, null=True)
    # "{kind}:{delivery_id}" for once-only events, null for repeatable ones (NULLs never collide)
    dedupe_key = fields.CharField(max_length=64, null=True, unique=True)
    created_at = fields.DatetimeField()

    sandbox_id: int

    class Meta:
        table = "tracking_event"
        indexes = (("campaign_id", "kind", "created_at"), ("run_id", "kind"), ("delivery_id",))
