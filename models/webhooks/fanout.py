"""Webhook deliveries made from outbox events, each event once: the deliveries and the event's `webhooks_at`
are written in one transaction, so a process dying before the commit leaves the event for the next pass and
one dying after has made every row. Concurrent passes (PostgreSQL) skip each other's locked events."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from tortoise import connections
from tortoise.transactions import in_transaction

from models.outbox.model import OutboxEvent
from models.webhooks.model import WebhookDelivery, WebhookEndpoint
from models.webhooks.rules import event_type


def message_id(endpoint_id: int, outbox_event_id: int) -> str:
    """The `webhook-id`: fixed per event and endpoint, so retries and replays carry the same one."""
    return f"msg_{outbox_event_id}_{endpoint_id}"


async def fan_out(*, limit: int = 500, now: datetime | None = None) -> int:
    """Makes the deliveries of up to `limit` events not yet fanned out; returns how many events it took."""
    now = now or datetime.now(UTC)
    postgres = connections.get("default").capabilities.dialect == "postgres"
    async with in_transaction() as conn:
        query = OutboxEvent.filter(webhooks_at__isnull=True).order_by("id").limit(limit).using_db(conn)
        events = await (query.select_for_update(skip_locked=True) if postgres else query)
        if not events:
            return 0
        endpoints: dict[int, list[WebhookEndpoint]] = defaultdict(list)
        for endpoint in await WebhookEndpoint.filter(
            sandbox_id__in={e.sandbox_id for e in events}, enabled=True
        ).using_db(conn):
            endpoints[endpoint.sandbox_id].append(endpoint)
        rows = []
        for event in events:
            kind = event_type(event.topic, event.payload)
            if kind is None:
                continue
            for endpoint in endpoints.get(event.sandbox_id, ()):  # an endpoint sees its own sandbox only
                if kind in endpoint.events:
                    rows.append(
                        WebhookDelivery(
                            endpoint_id=endpoint.id,
                            sandbox_id=event.sandbox_id,
                            outbox_event_id=event.id,
                            event_type=kind,
                            message_id=message_id(endpoint.id, event.id),
                            payload={"type": kind, "timestamp": event.created_at.isoformat(), "data": event.payload},
                            next_attempt_at=now,
                        )
                    )
        if rows:
            # A row already there (a pass that committed, then a replay of the same events) stays as it is.
            await WebhookDelivery.bulk_create(rows, ignore_conflicts=True, using_db=conn)
        await OutboxEvent.filter(id__in=[e.id for e in events]).using_db(conn).update(webhooks_at=now)
    return len(events)
