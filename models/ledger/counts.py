"""Ledger counts of a run, the run's counters stored from them (the definitions of models.ledger.figures), its
latest error, and its next due retry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models.campaigns.campaign import CampaignRun
from models.ledger.delivery import DeliveryStatus
from models.ledger.figures import DeliveryFigures, delivery_figures
from models.ledger.waves import WaveFigures, counted_wave_figures
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of

_Q, _S = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value


@dataclass
class Counts:
    by_status: dict[str, int]
    figures: DeliveryFigures = field(default_factory=DeliveryFigures)
    # The reason of the run's latest failed or postponed send (record_last_error), None before any.
    last_error_reason: str | None = None
    resent: int = 0  # the run's `resent`: messages handed to the provider again after a worker died
    waves: list[WaveFigures] = field(default_factory=list)  # a run sent in waves: per wave; empty without

    @property
    def last_error_count(self) -> int:
        return self.figures.error_count(self.last_error_reason)

    def of(self, *statuses: DeliveryStatus) -> int:
        return sum(self.by_status.get(s.value, 0) for s in statuses)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def pending(self) -> int:
        return self.of(DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.TARGETED)


async def ledger_counts(run_id: int, conn: BaseDBAsyncClient | None = None, *, serial: bool = False) -> Counts:
    """The run's counters from its ledger rows. `serial`: on PostgreSQL, without parallel workers, for a count
    taken while the run sends: a parallel GROUP BY of 1,000,000 rows took three backends on two cores for a
    second, the worst second of the API's latency in read_under_send's traces; one backend leaves it a core."""
    params = SqlParams(dialect_of())
    serial = serial and conn is None and params.dialect is Dialect.POSTGRES  # SET LOCAL needs its own transaction
    conn = conn or connections.get("default")
    # The same groups and the same fold as campaignReport's: one definition of every counter.
    sql = (
        f"SELECT wave, status, reason, bounce_type, COUNT(*) AS n FROM delivery WHERE run_id = {params.add(run_id)} "
        "GROUP BY wave, status, reason, bounce_type"
    )
    if serial:
        async with in_transaction() as serial_conn:
            await serial_conn.execute_script("SET LOCAL max_parallel_workers_per_gather = 0")
            rows = await serial_conn.execute_query_dict(sql, params.values)
    else:
        rows = await conn.execute_query_dict(sql, params.values)
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + int(row["n"])
    run = await CampaignRun.get_or_none(id=run_id).using_db(conn).only("id", "last_error_reason", "resent")
    if run is None:
        return Counts(by_status, delivery_figures(rows))
    waves = await counted_wave_figures(run_id, rows, conn)
    return Counts(by_status, delivery_figures(rows), run.last_error_reason, run.resent, waves)


def snapshot_counts(run: CampaignRun, inserted: list[dict[str, Any]]) -> Counts:
    """What ledger_counts reads right after a snapshot whose statement inserted the run's whole ledger, from that
    statement's (status, reason, n) groups: no scan of the rows just written (1,000,000 at a large run)."""
    groups = [{**group, "wave": None, "bounce_type": None} for group in inserted]
    by_status: dict[str, int] = {}
    for group in groups:
        by_status[group["status"]] = by_status.get(group["status"], 0) + int(group["n"])
    return Counts(by_status, delivery_figures(groups), run.last_error_reason, run.resent)


def counter_values(figures: DeliveryFigures) -> dict[str, int]:
    """The columns of campaign_run that hold a run's counters (audience is targeted + excluded)."""
    return {
        "targeted": figures.targeted,
        "excluded": figures.excluded,
        "sent": figures.sent,
        "delivered": figures.delivered,
        "failed": figures.failed,
        "pending": figures.pending,
        "retrying": figures.retrying,
    }


async def store_counters(run_id: int, counts: Counts, conn: BaseDBAsyncClient | None = None) -> None:
    await (
        CampaignRun.filter(id=run_id)
        .using_db(conn)
        .update(**counter_values(counts.figures), last_error_count=counts.last_error_count)
    )


async def record_last_error(run_id: int, reason: str, conn: BaseDBAsyncClient | None = None) -> None:
    """The reason of the run's latest failed or postponed send; its count comes with the next store_counters."""
    await CampaignRun.filter(id=run_id).using_db(conn).update(last_error_reason=reason)


async def next_retry(run_id: int) -> datetime | None:
    """When the run has something to do next: a QUEUED retry falls due, or an UNCONFIRMED window ends."""
    params = SqlParams(dialect_of())
    rows = await connections.get("default").execute_query_dict(
        f"SELECT MIN(next_attempt_at) AS at FROM delivery WHERE run_id = {params.add(run_id)} "
        f"AND status IN ('{_Q}', '{DeliveryStatus.UNCONFIRMED.value}')",
        params.values,
    )
    value = rows[0]["at"] if rows else None
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
