"""The snapshot's experiment step: every QUEUED row of the run gets its treatment, the holdout is EXCLUDED with
HOLDOUT and (TEST_THEN_WINNER) the rest is EXCLUDED with AWAITING_WINNER, by the sticky assignment of
models/campaigns/experiment_rules.py; and the snapshot of the run sending the winner to that rest. In the snapshot's
transaction: redone whole if the snapshot is."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.experiment_rules import Arm, assign_stored
from models.ledger.delivery_rules import DeliveryTransition, sources_sql
from models.ledger.snapshot import member_reasons
from models.ledger.vocabulary import DeliveryReason, DeliveryStatus
from models.presets.preset import MessagePreset
from models.sql.params import SqlParams
from models.sql.reads import dialect_of
from models.tenancy.identity import IdentityNamespace

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


async def snapshot_rest(
    run: CampaignRun,
    campaign: Campaign,
    namespace: IdentityNamespace,
    preset: MessagePreset | None,
    test_run_id: int,
    winner: str,
    now: datetime,
    conn: BaseDBAsyncClient,
) -> None:
    """The audience of a test-then-winner experiment's second run: the profiles of the first run's rows EXCLUDED
    with AWAITING_WINNER (its snapshot's non-test, non-holdout profiles), QUEUED with the winner — judged again as
    a snapshot judges them (consent, suppression, address), since they may have unsubscribed or bounced meanwhile:
    those are EXCLUDED with the snapshot's reason and no treatment. A deleted profile has no row. Nobody in the test
    or the holdout is in it, so nobody gets both."""
    params = SqlParams(dialect_of())

    async def awaiting(params: SqlParams) -> str:
        test_run, waiting = params.add(test_run_id), params.add(DeliveryReason.AWAITING_WINNER.value)
        return (
            f"p.id IN (SELECT w.profile_id FROM delivery w WHERE w.run_id = {test_run} "
            f"AND w.status = '{_EX}' AND w.reason = {waiting})"
        )

    audience, _ = await member_reasons(params, campaign, run.sandbox_id, namespace, preset, awaiting)
    # The outer SELECT's placeholders come after those of the CTEs.
    sandbox, run_id = params.typed(run.sandbox_id, "BIGINT"), params.typed(run.id, "BIGINT")
    campaign_id, treatment = params.typed(campaign.id, "BIGINT"), params.typed(winner, "TEXT")
    prefix = params.typed(f"{run.id}-", "TEXT")
    created, updated = params.typed(now, "TIMESTAMPTZ"), params.typed(now, "TIMESTAMPTZ")
    await conn.execute_query(
        f"{audience} "
        f"INSERT INTO delivery (sandbox_id, run_id, campaign_id, profile_id, status, reason, address, treatment, "
        f"idempotency_key, attempts, created_at, updated_at) "
        f"SELECT {sandbox}, {run_id}, {campaign_id}, y.profile_id, "
        f"CASE WHEN y.reason IS NULL THEN '{_Q}' ELSE '{_EX}' END, y.reason, y.address, "
        f"CASE WHEN y.reason IS NULL THEN {treatment} END, "
        f"{prefix} || CAST(y.profile_id AS TEXT), 0, {created}, {updated} FROM y WHERE 1 = 1 "
        f"ON CONFLICT (idempotency_key) DO NOTHING",
        params.values,
    )
