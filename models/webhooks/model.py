"""WebhookEndpoint and WebhookDelivery (DESIGN §11): events out, fed by the outbox."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class WebhookEndpoint(Model):
    """A receiver of one sandbox's events. Secrets are sealed with SECRET_KEY, and the previous one still signs
    (a second signature) until `previous_secret_until`, so a receiver can switch without losing events."""

    id = fields.IntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.CASCADE, related_name=False)
    url = fields.CharField(max_length=2048)
    events = fields.JSONField()  # event type names (models/webhooks/rules.py)
    secret_sealed = fields.TextField()
    previous_secret_sealed = fields.TextField(null=True)
    previous_secret_until = fields.DatetimeField(null=True)
    enabled = fields.BooleanField(default=True)
    disabled_reason = fields.CharField(max_length=200, null=True)
    # Start of the current run of failed attempts; cleared by a success. Three days of it disables.
    failing_since = fields.DatetimeField(null=True)
    max_in_flight = fields.IntField(default=4)
    rate_per_second = fields.FloatField(default=10.0)
    # The rate's token bucket, shared by every worker (models/webhooks/claims.py): null is a full bucket.
    rate_tokens = fields.FloatField(null=True)
    rate_tokens_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    sandbox_id: int

    class Meta:
        table = "webhook_endpoint"


class WebhookDelivery(Model):
    """One event for one endpoint. `message_id` is the `webhook-id` header: the same on every attempt and on a
    replay, so a receiver deduplicates by it. `log` holds each attempt (at, status code, latency, excerpt)."""

    id = fields.BigIntField(primary_key=True)
    endpoint = fields.ForeignKeyField("herald.WebhookEndpoint", on_delete=fields.CASCADE, related_name=False)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.CASCADE, related_name=False)
    outbox_event_id = fields.BigIntField()
    event_type = fields.CharField(max_length=64)
    message_id = fields.CharField(max_length=64, unique=True)
    payload = fields.JSONField()
    status = fields.CharField(max_length=16, default="PENDING")  # PENDING, SUCCEEDED, FAILED
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    # Set while a worker holds the row; a worker that died leaves it, and the lease lets another take it.
    leased_until = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    log = fields.JSONField(default=list)
    created_at = fields.DatetimeField(auto_now_add=True)

    endpoint_id: int
    sandbox_id: int

    class Meta:
        table = "webhook_delivery"
        unique_together = (("endpoint_id", "outbox_event_id"),)
        indexes = [Index(fields=["status", "next_attempt_at"])]
