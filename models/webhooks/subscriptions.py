"""Writing per-recipient events only where an endpoint takes them: the check runs in the writer's transaction,
so an event exists exactly when an enabled endpoint of the sandbox subscribed to it at commit time."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient

from models.outbox.payloads import Payload
from models.outbox.store import emit
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of
from models.webhooks.rules import event_type


async def subscribed_event_types(sandbox_id: int, conn: BaseDBAsyncClient) -> frozenset[str]:
    """The event types some enabled endpoint of the sandbox takes (a handful of small rows)."""
    params = SqlParams(dialect_of())
    rows = await conn.execute_query_dict(
        f"SELECT events FROM webhook_endpoint WHERE sandbox_id = {params.add(sandbox_id)} AND enabled",
        params.values,
    )
    wanted: set[str] = set()
    for row in rows:
        events = row["events"]
        wanted.update(orjson.loads(events) if isinstance(events, str | bytes) else events or ())
    return frozenset(wanted)


async def emit_subscribed(payloads: Sequence[Payload], *, sandbox_id: int, conn: BaseDBAsyncClient) -> int:
    """Writes those of `payloads` an endpoint of the sandbox takes, in `conn`'s transaction; returns how many."""
    if not payloads:
        return 0
    wanted = await subscribed_event_types(sandbox_id, conn)
    written = 0
    for payload in payloads:
        if event_type(payload.topic, payload.to_json()) in wanted:
            await emit(payload, sandbox_id=sandbox_id, conn=conn)
            written += 1
    return written


def subscribed_sql(params: SqlParams, sandbox_expr: str, kind: str) -> str:
    """A condition, true when an enabled endpoint of the sandbox `sandbox_expr` takes event type `kind`: for
    statements that write an event row only when someone listens (the open, the hottest write)."""
    value = params.add(kind)
    if params.dialect is Dialect.POSTGRES:
        takes = f"w.events @> jsonb_build_array(CAST({value} AS TEXT))"
    else:
        takes = f"EXISTS (SELECT 1 FROM json_each(w.events) j WHERE j.value = {value})"
    return f"EXISTS (SELECT 1 FROM webhook_endpoint w WHERE w.sandbox_id = {sandbox_expr} AND w.enabled AND {takes})"
