"""Ledger counts of a run, the run's counters stored from them, and its next due retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from models.campaigns.campaign import CampaignRun
from models.ledger.delivery import DeliveryStatus
from models.sql.params import SqlParams
from models.sql.reads import dialect_of

_Q, _S = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value


@dataclass
class Counts:
    by_status: dict[str, int]

    def of(self, *statuses: DeliveryStatus) -> int:
        return sum(self.by_status.get(s.value, 0) for s in statuses)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def pending(self) -> int:
        return self.of(DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.TARGETED)


async def ledger_counts(run_id: int, conn: BaseDBAsyncClient | None = None) -> Counts:
    conn = conn or connections.get("default")
    params = SqlParams(dialect_of())
    rows = await conn.execute_query_dict(
        f"SELECT status, COUNT(*) AS n FROM delivery WHERE run_id = {params.add(run_id)} GROUP BY status",
        params.values,
    )
    return Counts({row["status"]: int(row["n"]) for row in rows})


async def store_counters(run_id: int, counts: Counts, conn: BaseDBAsyncClient | None = None) -> None:
    await (
        CampaignRun.filter(id=run_id)
        .using_db(conn)
        .update(
            targeted=counts.total - counts.of(DeliveryStatus.EXCLUDED),
            excluded=counts.of(DeliveryStatus.EXCLUDED),
            sent=counts.of(DeliveryStatus.SENT, DeliveryStatus.DELIVERED),
            delivered=counts.of(DeliveryStatus.DELIVERED),
            failed=counts.of(DeliveryStatus.FAILED, DeliveryStatus.BOUNCED),
        )
    )


async def next_retry(run_id: int) -> datetime | None:
    params = SqlParams(dialect_of())
    rows = await connections.get("default").execute_query_dict(
        f"SELECT MIN(next_attempt_at) AS at FROM delivery WHERE run_id = {params.add(run_id)} AND status = '{_Q}'",
        params.values,
    )
    value = rows[0]["at"] if rows else None
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
