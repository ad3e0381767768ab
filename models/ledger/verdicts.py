"""Writing the business rules' verdicts on a claimed batch (models/business_rules/enforcement.py judges): cleared
rows get `cleared_at` (they count against caps while in flight), capped and skipped rows become EXCLUDED with their
reason, delayed rows go back to QUEUED until the quiet hours end. Each a BUSINESS_RULE transition of
ledger/delivery_rules, only on rows still SENDING."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from models.ledger.delivery_rules import DeliveryStatus, DeliveryTransition, check_target, sources_sql
from models.ledger.vocabulary import DeliveryReason
from models.sql.params import SqlParams
from models.sql.reads import dialect_of

_S = DeliveryStatus.SENDING.value


@dataclass
class Verdicts:
    cleared: list[int] = field(default_factory=list)
    capped: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    delayed: dict[int, datetime] = field(default_factory=dict)


async def record_verdicts(conn: BaseDBAsyncClient, run_id: int, verdicts: Verdicts, now: datetime) -> None:
    """The verdicts onto rows still SENDING (a row whose lease was lost meanwhile is someone else's)."""
    if verdicts.cleared:
        params = SqlParams(dialect_of())
        at, run = params.typed(now), params.add(run_id)
        ids = ", ".join(params.add(i) for i in verdicts.cleared)
        await conn.execute_query(
            f"UPDATE delivery SET cleared_at = {at} WHERE run_id = {run} AND status = '{_S}' AND id IN ({ids})",
            params.values,
        )
    excluded = DeliveryStatus.EXCLUDED
    for reason, ids_of in (
        (DeliveryReason.FREQUENCY_CAPPED, verdicts.capped),
        (DeliveryReason.QUIET_HOURS, verdicts.skipped),
    ):
        if not ids_of:
            continue
        params = SqlParams(dialect_of())
        status = params.add(check_target(DeliveryTransition.BUSINESS_RULE, excluded).value)
        why, updated, run = params.add(reason.value), params.typed(now), params.add(run_id)
        ids = ", ".join(params.add(i) for i in ids_of)
        await conn.execute_query(
            f"UPDATE delivery SET status = {status}, reason = {why}, lease_until = NULL, updated_at = {updated} "
            f"WHERE run_id = {run} AND {sources_sql(DeliveryTransition.BUSINESS_RULE)} AND id IN ({ids})",
            params.values,
        )
    if verdicts.delayed:
        params = SqlParams(dialect_of())
        rows = ", ".join(
            f"({params.typed(i, 'BIGINT')}, {params.typed(at, 'TIMESTAMPTZ')})" for i, at in verdicts.delayed.items()
        )
        status = params.add(check_target(DeliveryTransition.BUSINESS_RULE, DeliveryStatus.QUEUED).value)
        why, updated = params.add(DeliveryReason.QUIET_HOURS.value), params.typed(now)
        await conn.execute_query(
            f"WITH v(id, due) AS (VALUES {rows}) "
            f"UPDATE delivery SET status = {status}, reason = {why}, next_attempt_at = v.due, lease_until = NULL, "
            f"cleared_at = NULL, updated_at = {updated} "
            f"FROM v WHERE delivery.id = v.id AND {sources_sql(DeliveryTransition.BUSINESS_RULE, 'delivery.status')}",
            params.values,
        )
