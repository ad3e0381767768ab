"""The snapshot's experiment step: every QUEUED row of the run gets its treatment, the holdout is EXCLUDED with
HOLDOUT and (TEST_THEN_WINNER) the rest is EXCLUDED with AWAITING_WINNER, by the sticky assignment of
models/campaigns/experiment_rules.py. In the snapshot's transaction: redone whole if the snapshot is."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from models.campaigns.experiment_rules import Arm, assign_stored
from models.ledger.delivery_rules import DeliveryTransition, sources_sql
from models.ledger.vocabulary import DeliveryReason, DeliveryStatus
from models.sql.params import SqlParams
from models.sql.reads import dialect_of

# Ids per UPDATE (SQLite allows 32,766 placeholders; PostgreSQL 65,535).
CHUNK = 2000
_Q, _EX = DeliveryStatus.QUEUED.value, DeliveryStatus.EXCLUDED.value
_HELD_BACK = {Arm.HOLDOUT: DeliveryReason.HOLDOUT, Arm.REST: DeliveryReason.AWAITING_WINNER}


async def assign_treatments(run_id: int, experiment: Mapping[str, Any], conn: BaseDBAsyncClient) -> None:
    params = SqlParams(dialect_of())
    rows = await conn.execute_query_dict(
        f"SELECT id, profile_id FROM delivery WHERE run_id = {params.add(run_id)} "
        f"AND status = '{_Q}' AND treatment IS NULL",
        params.values,
    )
    treated: dict[str, list[int]] = defaultdict(list)
    held: dict[Arm, list[int]] = defaultdict(list)
    for row in rows:
        assignment = assign_stored(experiment, int(row["profile_id"]))
        if assignment.arm is Arm.TEST:
            treated[assignment.treatment].append(int(row["id"]))
        else:
            held[assignment.arm].append(int(row["id"]))
    for key, ids in treated.items():
        for chunk in _chunks(ids):
            params = SqlParams(dialect_of())
            treatment, run = params.add(key), params.add(run_id)
            in_list = ", ".join(params.add(i) for i in chunk)
            await conn.execute_query(
                f"UPDATE delivery SET treatment = {treatment} WHERE run_id = {run} AND id IN ({in_list})",
                params.values,
            )
    for arm, ids in held.items():
        await exclude_ids(run_id, ids, _HELD_BACK[arm], conn)


async def exclude_ids(run_id: int, ids: Sequence[int], reason: DeliveryReason, conn: BaseDBAsyncClient) -> None:
    """QUEUED rows of the snapshot → EXCLUDED with `reason` (the holdout, the rest awaiting a winner)."""
    for chunk in _chunks(ids):
        params = SqlParams(dialect_of())
        reason_param, run = params.add(reason.value), params.add(run_id)
        in_list = ", ".join(params.add(i) for i in chunk)
        await conn.execute_query(
            f"UPDATE delivery SET status = '{_EX}', reason = {reason_param} WHERE run_id = {run} "
            f"AND {sources_sql(DeliveryTransition.HOLDOUT)} AND id IN ({in_list})",
            params.values,
        )


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


async def snapshot_rest(run_id: int, test_run_id: int, winner: str, now: datetime, conn: BaseDBAsyncClient) -> None:
    """The audience of a test-then-winner experiment's second run: the first run's rows EXCLUDED with
    AWAITING_WINNER (its snapshot's non-test, non-holdout profiles), QUEUED with the winner. Nobody in the test or
    the holdout is in it, so nobody gets both."""
    params = SqlParams(dialect_of())
    run, treatment = params.typed(run_id, "BIGINT"), params.typed(winner, "TEXT")
    prefix = params.typed(f"{run_id}-", "TEXT")
    created, updated = params.typed(now, "TIMESTAMPTZ"), params.typed(now, "TIMESTAMPTZ")
    test_run, waiting = params.add(test_run_id), params.add(DeliveryReason.AWAITING_WINNER.value)
    await conn.execute_query(
        f"INSERT INTO delivery (sandbox_id, run_id, campaign_id, profile_id, status, reason, address, treatment, "
        f"idempotency_key, attempts, created_at, updated_at) "
        f"SELECT sandbox_id, {run}, campaign_id, profile_id, '{_Q}', NULL, address, {treatment}, "
        f"{prefix} || CAST(profile_id AS TEXT), 0, {created}, {updated} FROM delivery "
        f"WHERE run_id = {test_run} AND status = '{_EX}' AND reason = {waiting} "
        f"ON CONFLICT (run_id, profile_id) DO NOTHING",
        params.values,
    )
