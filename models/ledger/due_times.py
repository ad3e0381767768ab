"""Due times of a run's ledger rows when it delivers at each recipient's local time (models.campaigns.local_time):
QUEUED rows get `next_attempt_at` = the schedule's wall-clock time in their profile's zone, and are not claimed
before it (models.ledger.claims). Part of the snapshot's transaction, so a repeated snapshot writes the same."""

from __future__ import annotations

from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from models.campaigns.local_time import due_by_zone, passed_before
from models.campaigns.schedule import PassedTime, zone
from models.ledger.delivery import DeliveryStatus
from models.sql.params import SqlParams
from models.sql.reads import dialect_of

_Q = DeliveryStatus.QUEUED.value


async def due_at_local_time(
    run_id: int,
    fire: datetime,
    campaign_zone_name: str,
    activated_at: datetime | None,
    on_passed: PassedTime,
    conn: BaseDBAsyncClient,
) -> None:
    """Sets the due time of the run's QUEUED rows: one UPDATE per distinct due instant (a few dozen zones)."""
    campaign_zone = zone(campaign_zone_name)
    assert campaign_zone is not None, "a validated schedule has a valid time zone"
    params = SqlParams(dialect_of())
    rows = await conn.execute_query_dict(
        f"SELECT DISTINCT p.time_zone AS tz FROM delivery d JOIN profile p ON p.id = d.profile_id "
        f"WHERE d.run_id = {params.add(run_id)} AND d.status = '{_Q}'",
        params.values,
    )
    passed = passed_before(fire, campaign_zone, activated_at)
    dues = due_by_zone(fire, campaign_zone, [r["tz"] for r in rows], passed=passed, on_passed=on_passed)
    zones_by_due: dict[datetime, list[str | None]] = {}
    for name, due in dues.items():
        zones_by_due.setdefault(due, []).append(name)
    for due, names in sorted(zones_by_due.items()):
        params = SqlParams(dialect_of())
        at, run = params.typed(due, "TIMESTAMPTZ"), params.add(run_id)
        named = [n for n in names if n is not None]
        conditions = []
        if named:
            conditions.append("p.time_zone IN (" + ", ".join(params.add(n) for n in named) + ")")
        if None in names:
            conditions.append("p.time_zone IS NULL")
        await conn.execute_query(
            f"UPDATE delivery SET next_attempt_at = {at} WHERE run_id = {run} AND status = '{_Q}' AND EXISTS "
            f"(SELECT 1 FROM profile p WHERE p.id = delivery.profile_id AND ({' OR '.join(conditions)}))",
            params.values,
        )
