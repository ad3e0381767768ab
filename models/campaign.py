"""Campaigns and their runs (DESIGN §3). The message of a campaign belongs to that campaign alone."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.base import SandboxModel
from models.campaign_rules import CampaignStatus, CampaignType, Category, Channel


class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Campaign(SandboxModel):
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    tags = fields.JSONField(default=list)
    type = fields.CharEnumField(CampaignType, max_length=16, default=CampaignType.SCHEDULED)
    category = fields.CharEnumField(Category, max_length=16, default=Category.MARKETING)
    channel = fields.CharEnumField(Channel, max_length=16, null=True)
    preset = fields.ForeignKeyField("herald.MessagePreset", null=True, on_delete=fields.RESTRICT, related_name=False)
    # Per channel: {"email": {"subject", "preheader", "html", "text"}, "sms": {"text"}, "push": {...}, "inApp": {...}}
    content = fields.JSONField(default=dict)
    # {"opens": bool, "clicks": bool}
    tracking = fields.JSONField(default=dict)
    segment = fields.ForeignKeyField("herald.Segment", null=True, on_delete=fields.RESTRICT, related_name=False)
    namespace = fields.ForeignKeyField(
        "herald.IdentityNamespace", null=True, on_delete=fields.RESTRICT, related_name=False
    )
    # {"startAt", "endAt", "frequency", "timeOfDay", "daysOfWeek", "daysOfMonth", "timeZone"}
    schedule = fields.JSONField(default=dict)
    throttle_per_second = fields.IntField(null=True)
    status = fields.CharEnumField(CampaignStatus, max_length=16, default=CampaignStatus.DRAFT)
    version = fields.IntField(default=1)
    activated_at = fields.DatetimeField(null=True)
    activated_by = fields.CharField(max_length=100, null=True)
    stopped_at = fields.DatetimeField(null=True)
    stopped_by = fields.CharField(max_length=100, null=True)
    finished_at = fields.DatetimeField(null=True)
    failure_reason = fields.TextField(null=True)

    preset_id: int | None
    segment_id: int | None
    namespace_id: int | None

    class Meta:
        table = "campaign"
        indexes = (("sandbox_id", "status", "id"), ("sandbox_id", "updated_at"), ("preset_id",), ("segment_id",))


class CampaignRun(Model):
    """One execution of a campaign at one scheduled time; unique per (campaign, scheduled_for)."""

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    campaign = fields.ForeignKeyField("herald.Campaign", on_delete=fields.RESTRICT, related_name=False)
    scheduled_for = fields.DatetimeField()
    status = fields.CharEnumField(RunStatus, max_length=16, default=RunStatus.PENDING)
    targeted = fields.IntField(default=0)
    excluded = fields.IntField(default=0)
    sent = fields.IntField(default=0)
    delivered = fields.IntField(default=0)
    failed = fields.IntField(default=0)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    failure_reason = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    sandbox_id: int
    campaign_id: int

    class Meta:
        table = "campaign_run"
        unique_together = (("campaign_id", "scheduled_for"),)
        indexes = (("status", "scheduled_for"),)
