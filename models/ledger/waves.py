"""A run sent in waves (models.campaigns.waves) in the ledger: the snapshot assigns each row to send its wave and
its earliest start; the run's `wave` is the one being sent, and claims (models.ledger.claims) take no row of a
later wave; the next wave opens, by compare-and-set, once no row of the current one is queued or being sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from models.campaigns.campaign import CampaignRun
from models.campaigns.waves import Waves, wave_ends, wave_starts
from models.ledger.delivery import DeliveryStatus
from models.ledger.figures import DeliveryFigures, delivery_figures
from models.sql.params import SqlParams
from models.sql.reads import dialect_of

_Q, _S, _T = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value, DeliveryStatus.TARGETED.value


async def assign_waves(run: CampaignRun, waves: Waves, first: datetime, conn: BaseDBAsyncClient) -> None:
    """In the snapshot's transaction: the rows to send, in profile order, get their wave and its earliest start
    (`next_attempt_at`); the run opens wave 1. A repeated snapshot assigns the same."""
    params = SqlParams(dialect_of())
    rows = await conn.execute_query_dict(
        f"SELECT COUNT(*) AS n FROM delivery WHERE run_id = {params.add(run.id)} AND status = '{_Q}'", params.values
    )
    total = int(rows[0]["n"])
    starts = wave_starts(waves, first)
    previous_end, low = 0, None
    for number, (end, start) in enumerate(zip(wave_ends(waves, total), starts, strict=True), start=1):
        if end <= previous_end:
            continue  # an empty wave (a small audience)
        params = SqlParams(dialect_of())
        found = await conn.execute_query_dict(
            f"SELECT profile_id FROM delivery WHERE run_id = {params.add(run.id)} AND status = '{_Q}' "
            f"ORDER BY profile_id LIMIT 1 OFFSET {params.add(end - 1)}",
            params.values,
        )
        high = int(found[0]["profile_id"])
        params = SqlParams(dialect_of())
        wave, at, run_id = params.add(number), params.typed(start, "TIMESTAMPTZ"), params.add(run.id)
        above = f" AND profile_id > {params.add(low)}" if low is not None else ""
        await conn.execute_query(
            f"UPDATE delivery SET wave = {wave}, next_attempt_at = {at} WHERE run_id = {run_id} "
            f"AND status = '{_Q}'{above} AND profile_id <= {params.add(high)}",
            params.values,
        )
        previous_end, low = end, high
    await CampaignRun.filter(id=run.id).using_db(conn).update(wave=1)
    run.wave = 1


async def open_next_wave(run_id: int) -> bool:
    """The run's wave + 1, when no row of it (or before it) is still queued or being sent and a later wave has
    rows. One compare-and-set statement: of two jobs finding the wave finished, one opens the next."""
    params = SqlParams(dialect_of())
    run, run_max, run_open = params.add(run_id), params.add(run_id), params.add(run_id)
    sql = (
        f"UPDATE campaign_run SET wave = wave + 1 WHERE id = {run} AND wave IS NOT NULL "
        f"AND wave < (SELECT MAX(d.wave) FROM delivery d WHERE d.run_id = {run_max}) "
        f"AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.run_id = {run_open} AND d.wave <= campaign_run.wave "
        f"AND d.status IN ('{_Q}', '{_S}', '{_T}'))"
    )
    changed = await connections.get("default").execute_query(sql, params.values)
    return bool(changed[0])


@dataclass(frozen=True, slots=True)
class WaveFigures:
    wave: int
    starts_at: datetime | None  # the earliest start given at the snapshot (rows keep it until claimed)
    figures: DeliveryFigures


async def wave_figures(run_id: int) -> list[WaveFigures]:
    """Per wave: the counters of models.ledger.figures over its rows."""
    params = SqlParams(dialect_of())
    rows = await connections.get("default").execute_query_dict(
        f"SELECT wave, status, reason, bounce_type, COUNT(*) AS n FROM delivery WHERE run_id = {params.add(run_id)} "
        "AND wave IS NOT NULL GROUP BY wave, status, reason, bounce_type ORDER BY wave",
        params.values,
    )
    groups: dict[int, list[dict]] = {}
    for row in rows:
        groups.setdefault(int(row["wave"]), []).append(row)
    return [WaveFigures(wave, None, delivery_figures(group)) for wave, group in sorted(groups.items())]
