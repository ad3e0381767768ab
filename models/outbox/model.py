"""OutboxEvent: one row per event, written in the transaction of the change it reports (DESIGN §4, §11)."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class OutboxEvent(Model):
    """An event written with its change: the relay publishes it to Redis in id order, then sets published_at."""

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.CASCADE, related_name=False)
    topic = fields.CharField(max_length=64)
    payload = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True)
    published_at = fields.DatetimeField(null=True)
    # Set once webhook deliveries have been made from this event (models/webhooks/fanout.py); pruning waits.
    webhooks_at = fields.DatetimeField(null=True)

    sandbox_id: int

    class Meta:
        table = "outbox_event"
        # Serves the relay's "published_at IS NULL ORDER BY id" and the pruning of old published rows.
        indexes = [Index(fields=["published_at", "id"]), Index(fields=["webhooks_at", "id"])]
