"""The delivery ledger (DESIGN §3): one row per (run, profile), and the in-app inbox."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.ledger.vocabulary import DeliveryReason, DeliveryStatus

__all__ = ["FINAL_STATUSES", "Delivery", "DeliveryReason", "DeliveryStatus", "ExclusionReason", "InboxMessage"]


# Statuses after which the run executor never touches a delivery again.
FINAL_STATUSES = frozenset(
    {
        DeliveryStatus.EXCLUDED,
        DeliveryStatus.SENT,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.BOUNCED,
        DeliveryStatus.FAILED,
        DeliveryStatus.CANCELLED,
    }
)


# The snapshot's and the run's reasons are members of the one reason enum.
ExclusionReason = DeliveryReason


class Delivery(Model):
    """One message of one run to one profile. Written and read in bulk with SQL by the run executor."""

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    run = fields.ForeignKeyField("herald.CampaignRun", on_delete=fields.CASCADE, related_name=False)
    campaign_id = fields.BigIntField()
    # Set on the rows of an API trigger (models.triggers), with the recipient's context (context.recipient).
    trigger_id = fields.BigIntField(null=True)
    context = fields.JSONField(null=True)
    profile = fields.ForeignKeyField("herald.Profile", on_delete=fields.CASCADE, related_name=False)
    status = fields.CharEnumField(DeliveryStatus, max_length=16)
    # A DeliveryReason value (read with DeliveryReason.of: old rows may hold others).
    reason = fields.CharField(max_length=32, null=True)
    address = fields.CharField(max_length=512, null=True)
    # The key of the experiment treatment whose content this profile gets (null: no experiment, or the holdout).
    treatment = fields.CharField(max_length=32, null=True)
    # "{run}-{profile}": the email Message-ID and the in-app inbox key, stable across attempts.
    idempotency_key = fields.CharField(max_length=64, unique=True)
    attempts = fields.IntField(default=0)
    # Hand-offs to the provider under the current claim: kept when a killed worker's expired lease is claimed
    # again, so the next hand-off is known to be a possible resend (models.ledger.claims.mark_handed).
    hand_offs = fields.SmallIntField(default=0, db_default=0)
    lease_until = fields.DatetimeField(null=True)
    next_attempt_at = fields.DatetimeField(null=True)
    # The wave of a run sent in waves (1-based, models.campaigns.waves), fixed at the snapshot, null = no waves.
    wave = fields.SmallIntField(null=True)
    provider_message_id = fields.CharField(max_length=255, null=True)
    # The relay's own id from its SMTP 250 reply (SES, SendGrid, Postmark report feedback under it).
    relay_id = fields.CharField(max_length=255, null=True)
    last_error = fields.TextField(null=True)
    sent_at = fields.DatetimeField(null=True)
    # Set when the business rules let this send go (models/business_rules/enforcement.py): a SENDING row with it
    # counts against the profile's frequency caps until its outcome is written.
    cleared_at = fields.DatetimeField(null=True)
    # Set by provider feedback: a delivery receipt, or a bounce (HARD or SOFT, see models.tracking.BounceType).
    delivered_at = fields.DatetimeField(null=True)
    bounce_type = fields.CharField(max_length=8, null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    sandbox_id: int
    run_id: int
    profile_id: int

    class Meta:
        table = "delivery"
        # No unique (run_id, profile_id): an API campaign's run holds a row per trigger naming a profile. One row
        # per (run, profile) of a snapshot is its unique idempotency key "<run>-<profile>".
        indexes = (
            ("run_id", "profile_id"),
            ("run_id", "status"),
            ("campaign_id", "status"),
            ("provider_message_id",),
            ("relay_id",),
            ("profile_id", "status"),
            ("trigger_id",),
        )


class InboxMessage(Model):
    """An in-app message in the inbox of one identity, written by the run executor."""

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    idempotency_key = fields.CharField(max_length=64, unique=True)
    namespace = fields.CharField(max_length=50)
    identity = fields.CharField(max_length=512)
    campaign_id = fields.BigIntField(null=True)
    title = fields.TextField()
    body = fields.TextField()
    # JSON text (buttons and custom data)
    data = fields.TextField(default="{}")
    created_at = fields.DatetimeField()

    sandbox_id: int

    class Meta:
        table = "inbox_message"
        indexes = (("sandbox_id", "namespace", "identity", "id"),)
