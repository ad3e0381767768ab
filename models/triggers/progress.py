"""A trigger's counts, kept on its row: recounted from its ledger rows for the triggers of each sent batch, in
one grouped statement (not per message), with one outbox event for the batch (`campaignTriggerStatus`).

A recount rather than increments: two workers sending rows of the same trigger, or a batch sent again after a
crash, leave the right figures whoever writes last (each recount starts after its own outcomes committed).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from models import outbox
from models.ledger.delivery_rules import DeliveryStatus
from models.outbox.payloads import TriggerCounts, TriggerProgress
from models.sql.params import SqlParams
from models.sql.reads import dialect_of

_SENT = "('SENT', 'DELIVERED', 'BOUNCED')"  # the run counters' `sent`: hard bounces at the send count too
_PENDING = "('TARGETED', 'QUEUED', 'SENDING', 'UNCONFIRMED')"


def _count(where: str) -> str:
    return f"(SELECT COUNT(*) FROM delivery d WHERE d.trigger_id = campaign_trigger.id AND ({where}))"


_HARD_BOUNCE = "d.status = 'FAILED' AND d.reason = 'HARD_BOUNCE'"
_EXCLUDED = "d.status = '" + DeliveryStatus.EXCLUDED.value + "'"
_RECOUNT = (
    "sent = " + _count("d.status IN " + _SENT + " OR (" + _HARD_BOUNCE + ")") + ", "
    "failed = " + _count("d.status IN ('FAILED', 'BOUNCED')") + ", "
    "excluded = " + _count(_EXCLUDED) + ", "
    "pending = " + _count("d.status IN " + _PENDING)
)


async def recount_in(
    conn: BaseDBAsyncClient,
    sandbox_id: int,
    campaign_id: int,
    run_id: int,
    delivery_ids: Sequence[int],
    now: datetime,
) -> list[TriggerCounts]:
    """The triggers of these ledger rows recounted, and their TriggerProgress event, in the caller's transaction:
    the outcome write's own (models/ledger/outcomes), so a worker killed after its outcomes committed leaves no
    trigger counted as pending (the caller wakes the relay)."""
    if not delivery_ids:
        return []
    params = SqlParams(dialect_of())
    in_list = ", ".join(params.add(i) for i in delivery_ids)
    where = f"id IN (SELECT DISTINCT trigger_id FROM delivery WHERE id IN ({in_list}) AND trigger_id IS NOT NULL)"
    return await _recount(conn, sandbox_id, campaign_id, run_id, now, params, where)


async def recount_run_in(
    conn: BaseDBAsyncClient, sandbox_id: int, campaign_id: int, run_id: int, now: datetime
) -> list[TriggerCounts]:
    """The run's triggers still counting pending rows, recounted in the caller's transaction (an aborted run's
    cancel: its cancelled rows were pending). One indexed statement that finds nothing for a scheduled run."""
    params = SqlParams(dialect_of())
    where = f"run_id = {params.add(run_id)} AND pending > 0"
    return await _recount(conn, sandbox_id, campaign_id, run_id, now, params, where)


async def _recount(
    conn: BaseDBAsyncClient,
    sandbox_id: int,
    campaign_id: int,
    run_id: int,
    now: datetime,
    params: SqlParams,
    where: str,
) -> list[TriggerCounts]:
    sql = f"UPDATE campaign_trigger SET {_RECOUNT} WHERE {where} RETURNING id, sent, failed, excluded, pending"
    rows = await conn.execute_query_dict(sql, params.values)
    counts = sorted(
        (TriggerCounts(int(r["id"]), int(r["sent"]), int(r["failed"]), int(r["excluded"]), int(r["pending"]))
         for r in rows),
        key=lambda c: c.trigger_id,
    )  # fmt: skip
    if counts:
        event = TriggerProgress(campaign_id=campaign_id, run_id=run_id, at=now, triggers=tuple(counts))
        await outbox.emit(event, sandbox_id=sandbox_id, conn=conn)
    return counts


async def has_claimable(run_id: int, now: datetime) -> bool:
    """Whether the run holds rows a sender could claim now: QUEUED and due, or SENDING under an expired lease (a
    killed worker's). Rows waiting for a retry are not: their wake-up is deferred to their time."""
    params = SqlParams(dialect_of())
    run, due, expired = params.add(run_id), params.typed(now), params.typed(now)
    rows = await connections.get("default").execute_query_dict(
        f"SELECT 1 AS one FROM delivery WHERE run_id = {run} AND ("
        f"(status = 'QUEUED' AND (next_attempt_at IS NULL OR next_attempt_at <= {due})) "
        f"OR (status = 'SENDING' AND lease_until < {expired})) LIMIT 1",
        params.values,
    )
    return bool(rows)
