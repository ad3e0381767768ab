"""The trigger table: one row per accepted API call of an API-triggered campaign, keyed by its idempotency key."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class TriggerStatus(StrEnum):
    ACCEPTED = "ACCEPTED"  # at least one recipient has a ledger row (sent, or excluded with a reason)
    REJECTED = "REJECTED"  # every recipient was rejected: nothing to send


class CampaignTrigger(Model):
    """One accepted call of campaignTrigger (GraphQL) or POST /campaigns/{id}/triggers (REST).

    `idempotency_key` is unique per campaign while the key is live. Once it expired (TRIGGER_IDEMPOTENCY_HOURS)
    a new call with the same key moves it to `released_key` and leaves NULL (NULLs never collide), so the
    history stays and the key is free again. `answer` is the stored answer a replay returns.
    """

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    campaign = fields.ForeignKeyField("herald.Campaign", on_delete=fields.RESTRICT, related_name=False)
    # The run holding this trigger's ledger rows (None when every recipient was rejected): the campaign's
    # long-lived run, shared by its triggers (older triggers had a run each).
    run = fields.ForeignKeyField("herald.CampaignRun", null=True, on_delete=fields.RESTRICT, related_name=False)
    idempotency_key = fields.CharField(max_length=255, null=True)
    released_key = fields.CharField(max_length=255, null=True)
    # sha256 of the canonical request body: the same key with another body is a conflict.
    request_hash = fields.CharField(max_length=64)
    status = fields.CharEnumField(TriggerStatus, max_length=16)
    accepted = fields.IntField(default=0)
    rejected = fields.IntField(default=0)
    # Its ledger rows by outcome, recounted for the triggers of each sent batch (models/triggers/progress.py):
    # sent and failed as the run's counters define them, pending = QUEUED or SENDING.
    sent = fields.IntField(default=0, db_default=0)
    failed = fields.IntField(default=0, db_default=0)
    excluded = fields.IntField(default=0, db_default=0)
    pending = fields.IntField(default=0, db_default=0)
    # The call's context, read by templates as context.trigger.
    context = fields.JSONField(default=dict)
    answer = fields.JSONField(default=dict)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()

    sandbox_id: int
    campaign_id: int
    run_id: int | None

    class Meta:
        table = "campaign_trigger"
        unique_together = (("campaign_id", "idempotency_key"),)
        indexes = (("campaign_id", "id"), ("run_id",))
