"""What differs for an API campaign's long-lived trigger run (models/triggers/accept.py) in the run executor
(jobs/runs.py): it stays RUNNING while its campaign is LIVE, so a wake-up that finds nothing more to send leaves
it open, and its counters are paced across the wake-up jobs of this process."""

from __future__ import annotations

import time
from typing import Any

from jobs.progress import Progress
from jobs.queue import JobQueue
from jobs.sending import with_db_retry
from models.campaigns.campaign import CampaignRun
from models.campaigns.rules import CampaignStatus
from models.campaigns.run_rules import RunStatus
from models.ledger.counts import ledger_counts, next_retry, store_counters
from models.sql.reads import fetch, sql_params

# The Progress of each trigger run this process sends for, kept across its wake-up jobs: counting the ledger scans
# all the run's rows, and a fresh Progress per job (20 a second at 200 triggers/s) would count at every job.
_OPEN_PROGRESS: dict[int, Progress] = {}
COUNT_AGAIN_SECONDS = 1.0


def progress_of(ctx: dict[str, Any], run: CampaignRun) -> Progress:
    if not run.open_for_triggers:
        return Progress(ctx.get("redis"), run)
    progress = _OPEN_PROGRESS.get(run.id)
    if progress is None or progress.redis is not ctx.get("redis"):
        if len(_OPEN_PROGRESS) >= 1000:
            _OPEN_PROGRESS.clear()
        progress = _OPEN_PROGRESS[run.id] = Progress(ctx.get("redis"), run)
    return progress


async def still_open(run: CampaignRun) -> bool:
    """An API campaign's trigger run ends once its campaign is no longer LIVE (stopped: it finishes what it holds).
    Hand-written: every wake-up job asks, and the ORM's query building cost more than the read."""
    params = sql_params()
    rows = await fetch(f"SELECT status FROM campaign WHERE id = {params.add(run.campaign_id)}", params)
    return bool(rows) and CampaignStatus(rows[0]["status"]) is CampaignStatus.LIVE


async def rest_open(ctx: dict[str, Any], run: CampaignRun, progress: Progress) -> dict[str, Any]:
    """A wake-up of a trigger run found nothing more to send: it stays RUNNING for the next triggers. Its counters
    scan all its rows, so they are stored at most as often as a long run's (Progress.counting_due), not per job;
    when not due now, a wake-up later (coalesced per second) stores them, so the last burst's figures are not
    left unstored. A retry deferred in its ledger gets a wake-up at its time."""
    redis = ctx.get("redis")
    if progress.counting_due():
        counting = time.monotonic()
        counts = await with_db_retry(ledger_counts, run.id)
        await with_db_retry(store_counters, run.id, counts)
        progress.counted(counting)
        await progress.publish(counts, RunStatus.RUNNING, force=True)
    elif redis is not None:
        await JobQueue(redis).wake_triggers(run.id, COUNT_AGAIN_SECONDS)
    retry_at = await next_retry(run.id)
    if retry_at is not None and redis is not None:
        await JobQueue(redis).retry_run_at(run.id, retry_at)
    return {"runId": run.id, "status": RunStatus.RUNNING.value}
