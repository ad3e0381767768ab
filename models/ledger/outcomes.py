"""Writing a batch's send results to the ledger, and cancelling the unsent rows of an aborted run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise import connections

from models.ledger.delivery import DeliveryStatus
from models.sql.params import SqlParams
from models.sql.reads import dialect_of

_Q, _S = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value


@dataclass(frozen=True, slots=True)
class Outcome:
    id: int
    status: DeliveryStatus
    reason: str | None = None
    error: str | None = None
    provider_id: str | None = None
    relay_id: str | None = None
    next_attempt_at: datetime | None = None
    sent: bool = False
    # BOUNCED rows say HARD or SOFT (models.tracking.BounceType): reports count bounces by it.
    bounce_type: str | None = None


async def write_outcomes(outcomes: Sequence[Outcome], now: datetime) -> None:
    """All results of a batch in one UPDATE … FROM (VALUES …), only on rows still SENDING."""
    if not outcomes:
        return
    conn = connections.get("default")
    chunk_rows = 2000
    for start in range(0, len(outcomes), chunk_rows):
        params = SqlParams(dialect_of())
        groups = []
        for o in outcomes[start : start + chunk_rows]:
            groups.append(
                "("
                + ", ".join(
                    (
                        params.typed(o.id, "BIGINT"),
                        params.typed(o.status.value, "TEXT"),
                        params.typed(o.reason, "TEXT"),
                        params.typed(o.error, "TEXT"),
                        params.typed(o.provider_id, "TEXT"),
                        params.typed(o.relay_id, "TEXT"),
                        params.typed(o.next_attempt_at, "TIMESTAMPTZ"),
                        params.typed(1 if o.sent else 0, "INTEGER"),
                        params.typed(o.bounce_type, "TEXT"),
                    )
                )
                + ")"
            )
        updated, sent_at = params.typed(now, "TIMESTAMPTZ"), params.typed(now, "TIMESTAMPTZ")
        sql = (
            f"WITH v(id, status, reason, err, pid, relay, next_at, is_sent, bounce) AS (VALUES {', '.join(groups)}) "
            f"UPDATE delivery SET status = v.status, reason = v.reason, last_error = v.err, "
            f"provider_message_id = COALESCE(v.pid, delivery.provider_message_id), "
            f"relay_id = COALESCE(v.relay, delivery.relay_id), next_attempt_at = v.next_at, "
            f"attempts = delivery.attempts + 1, lease_until = NULL, updated_at = {updated}, "
            f"sent_at = CASE WHEN v.is_sent = 1 THEN {sent_at} ELSE delivery.sent_at END, "
            f"bounce_type = COALESCE(v.bounce, delivery.bounce_type) "
            f"FROM v WHERE delivery.id = v.id AND delivery.status = '{_S}'"
        )
        await conn.execute_query(sql, params.values)


async def cancel_unsent(run_id: int, now: datetime) -> int:
    """Unsent deliveries of an aborted run → CANCELLED. Rows of a batch still in flight (live lease) are left to
    the job sending them, which writes what it sent; the dispatcher cancels them if that job died."""
    params = SqlParams(dialect_of())
    updated, run, expired = params.typed(now), params.add(run_id), params.typed(now)
    sql = (
        f"UPDATE delivery SET status = '{DeliveryStatus.CANCELLED.value}', lease_until = NULL, updated_at = {updated} "
        f"WHERE run_id = {run} AND (status IN ('{_Q}', '{DeliveryStatus.TARGETED.value}') "
        f"OR (status = '{_S}' AND (lease_until IS NULL OR lease_until < {expired})))"
    )
    result = await connections.get("default").execute_query(sql, params.values)
    return int(result[0]) if isinstance(result, tuple) else 0
