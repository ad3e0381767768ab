"""Webhook deliveries made from outbox events, each event once: the deliveries and the event's `webhooks_at`
are written in one transaction, so a process dying before the commit leaves the event for the next pass and
one dying after has made every row. Concurrent passes (PostgreSQL) skip each other's locked events."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from models.outbox.model import OutboxEvent
from models.sql.params import Dialect, SqlParams
from models.sql.reads import one_of, sql_params
from models.webhooks.model import WebhookDelivery, WebhookEndpoint
from models.webhooks.rules import event_type


def message_id(endpoint_id: int, outbox_event_id: int) -> str:
    """The `webhook-id`: fixed per event and endpoint, so retries and replays carry the same one."""
    return f"msg_{outbox_event_id}_{endpoint_id}"


async def fan_out(*, limit: int = 500, now: datetime | None = None) -> int:
    """Makes the deliveries of up to `limit` events not yet fanned out; returns how many events it took.

    Only the events of sandboxes with an enabled endpoint are read whole: at 200 API triggers a second (an event
    each, and none of them for a webhook) building every event and the ORM's 500-id UPDATE were a tenth of a worker's
    CPU (py-spy)."""
    now = now or datetime.now(UTC)
    params = sql_params()
    lock = " FOR UPDATE SKIP LOCKED" if params.dialect is Dialect.POSTGRES else ""
    async with in_transaction() as conn:
        heads = await conn.execute_query_dict(
            f"SELECT id, sandbox_id FROM outbox_event WHERE webhooks_at IS NULL ORDER BY id LIMIT {params.add(limit)}"
            f"{lock}",
            params.values,
        )
        if not heads:
            return 0
        endpoints: dict[int, list[WebhookEndpoint]] = defaultdict(list)
        for endpoint in await WebhookEndpoint.filter(
            sandbox_id__in={head["sandbox_id"] for head in heads}, enabled=True
        ).using_db(conn):
            endpoints[endpoint.sandbox_id].append(endpoint)
        ids = [int(head["id"]) for head in heads]
        watched = [int(head["id"]) for head in heads if head["sandbox_id"] in endpoints]
        events = await OutboxEvent.filter(id__in=watched).order_by("id").using_db(conn) if watched else []
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
        marks = SqlParams(params.dialect)
        stamp = marks.typed(now, "TIMESTAMPTZ")
        await conn.execute_query(
            f"UPDATE outbox_event SET webhooks_at = {stamp} WHERE {one_of(marks, 'id', ids)}", marks.values
        )
    return len(ids)
