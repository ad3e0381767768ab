"""A run sent in waves (models.campaigns.waves) in the ledger: the snapshot assigns each row to send its wave and
its earliest start; the run's `wave` is the one being sent, and claims (models.ledger.claims) take no row of a
later wave; the next wave opens, by compare-and-set, once no row of the current one is queued or being sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from models.campaigns.campaign import CampaignRun
from models.campaigns.run_rules import RunStatus
from models.campaigns.waves import Waves, wave_ends, wave_starts, waves_from_stored
from models.ledger.delivery import DeliveryStatus
from models.ledger.figures import DeliveryFigures, delivery_figures
from models.ledger.reports import ReportWindow, window_condition
from models.outbox.payloads import WaveProgress
from models.sql.params import SqlParams
from models.sql.reads import dialect_of

_Q, _S, _T = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value, DeliveryStatus.TARGETED.value
_FINAL = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value)


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
    starts_at: datetime | None  # the earliest start given at the snapshot; null when the campaign lost its waves
    finished: bool  # opened, and no row of it queued or being sent (what the next wave waits for)
    figures: DeliveryFigures  # figures.audience: the wave's planned size (its rows, fixed at the snapshot)


async def wave_figures(run_id: int, conn: BaseDBAsyncClient | None = None) -> list[WaveFigures]:
    """Per wave of one run: the counters of models.ledger.figures over its rows."""
    params = SqlParams(dialect_of())
    return await _waves(f"run_id = {params.add(run_id)}", params, conn)


async def counted_wave_figures(
    run_id: int, groups: list[Mapping[str, Any]], conn: BaseDBAsyncClient | None = None
) -> list[WaveFigures]:
    """Per wave of one run from ledger_counts' groups (by wave, status, reason, bounce_type): no second scan of the
    ledger. Empty for a run without waves, without a query."""
    waved = [{**group, "run_id": run_id} for group in groups if group["wave"] is not None]
    return await _fold(waved, conn or connections.get("default")) if waved else []


def progress_waves(waves: list[WaveFigures]) -> tuple[WaveProgress, ...]:
    """The waves as a run's progress event carries them."""
    return tuple(
        WaveProgress(
            wave=w.wave,
            starts_at=w.starts_at,
            finished=w.finished,
            targeted=w.figures.targeted,
            excluded=w.figures.excluded,
            sent=w.figures.sent,
            delivered=w.figures.delivered,
            failed=w.figures.failed,
            pending=w.figures.pending,
            retrying=w.figures.retrying,
            delayed=w.figures.delayed,
        )
        for w in waves
    )


async def report_wave_figures(sandbox_id: int, campaign_id: int, window: ReportWindow) -> list[WaveFigures]:
    """Per wave over a report's window, summed over its runs: a wave starts at its earliest start in any of them
    and is finished when it is in all."""
    params = SqlParams(dialect_of())
    return await _waves(window_condition(params, sandbox_id, campaign_id, window), params)


async def _waves(condition: str, params: SqlParams, conn: BaseDBAsyncClient | None = None) -> list[WaveFigures]:
    conn = conn or connections.get("default")
    rows = await conn.execute_query_dict(
        f"SELECT run_id, wave, status, reason, bounce_type, COUNT(*) AS n FROM delivery WHERE {condition} "
        "AND wave IS NOT NULL GROUP BY run_id, wave, status, reason, bounce_type",
        params.values,
    )
    return await _fold(rows, conn) if rows else []


async def _fold(rows: list[Mapping[str, Any]], conn: BaseDBAsyncClient) -> list[WaveFigures]:
    """(run_id, wave, status, reason, bounce_type, n) groups → the figures per wave, over their runs."""
    runs = (
        await CampaignRun.filter(id__in={int(r["run_id"]) for r in rows})
        .using_db(conn)
        .values("id", "wave", "status", "snapshot_done_at", "campaign__waves")
    )
    starts = {
        run["id"]: wave_starts(waves, run["snapshot_done_at"])
        if (waves := waves_from_stored(run["campaign__waves"])) and run["snapshot_done_at"]
        else []
        for run in runs
    }
    by_run = {run["id"]: run for run in runs}
    groups: dict[int, list[Mapping[str, Any]]] = {}
    open_rows: set[tuple[int, int]] = set()  # (run, wave) with rows still to send
    for row in rows:
        wave, run_id = int(row["wave"]), int(row["run_id"])
        groups.setdefault(wave, []).append(row)
        if row["status"] in (_Q, _S, _T):
            open_rows.add((run_id, wave))
    result = []
    for wave, group in sorted(groups.items()):
        run_ids = {int(r["run_id"]) for r in group}
        run_starts = [starts[r][wave - 1] for r in run_ids if len(starts[r]) >= wave]
        finished = all(
            (r, wave) not in open_rows
            and (by_run[r]["status"] in _FINAL or (by_run[r]["wave"] is not None and wave <= by_run[r]["wave"]))
            for r in run_ids
        )
        result.append(WaveFigures(wave, min(run_starts, default=None), finished, delivery_figures(group)))
    return result
