"""How a run's sending ends (jobs/runs.py's loop): stopped by a stop, or finished once the ledger says so, held SMS
sends settled first."""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from jobs.context import worker_context
from jobs.progress import Progress
from jobs.queue import JobQueue
from jobs.sending import with_db_retry
from jobs.trigger_runs import rest_open, still_open
from models import outbox
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.rules import Channel
from models.campaigns.run_rules import RunOutcomeReason, RunStatus
from models.campaigns.transitions import extend_run_lease, fail_campaign, finish_run
from models.ledger.counts import ledger_counts, next_retry, store_counters
from models.ledger.delivery import DeliveryStatus
from models.ledger.outcomes import cancel_unsent, main_failure_reason, settle_unconfirmed

# A run's own warnings keep the run executor's logger name.
logger = logging.getLogger("jobs.runs")


async def settle_held_sends(ctx: dict[str, Any], run_id: int, now: datetime, campaign: Campaign) -> None:
    """Sends held UNCONFIRMED whose window ended without a status callback: the policy settles them (FAILED
    UNCONFIRMED_TIMEOUT by default; QUEUED again with SMS_UNCONFIRMED_POLICY=RESEND). Only SMS holds sends."""
    if Channel(campaign.channel) is not Channel.SMS:
        return
    resend = worker_context(ctx).settings.sms_unconfirmed_policy == "RESEND"
    settled = await with_db_retry(functools.partial(settle_unconfirmed, resend=resend), run_id, now)
    if settled:
        logger.warning(
            "run %s: %s sends without an answer settled as %s", run_id, settled, "QUEUED" if resend else "FAILED",
            extra={"run_id": run_id},
        )  # fmt: skip


async def stopped(run: CampaignRun, progress: Progress, now: datetime) -> dict[str, Any]:
    """The lease could not be extended: aborted by a stop (or finished elsewhere). What was not sent never will be."""
    await progress.settle()  # a count in flight must not land after the final figures
    fresh_run = await CampaignRun.get(id=run.id)
    if fresh_run.status is RunStatus.CANCELLED:
        await cancel_unsent(run, now)
        counts = await ledger_counts(run.id)
        async with in_transaction() as conn:
            await store_counters(run.id, counts, conn)
            final = progress.event(counts, RunStatus.CANCELLED, final=True)
            await outbox.emit(final, sandbox_id=run.sandbox_id, conn=conn)
        outbox.committed()
    return {"runId": run.id, "status": fresh_run.status.value}


async def finish_if_done(
    ctx: dict[str, Any], run: CampaignRun, campaign: Campaign, progress: Progress
) -> dict[str, Any]:
    """After the sending loop, whose `finally` has settled any count in flight (Progress.count_beside)."""
    now = worker_context(ctx).clock()
    if run.snapshot_done_at is None:
        # Never finish on a ledger whose audience was not taken: the resume takes the snapshot first.
        return {"runId": run.id, "status": RunStatus.RUNNING.value}
    await settle_held_sends(ctx, run.id, now, campaign)
    if run.open_for_triggers and await still_open(run):
        return await rest_open(ctx, run, progress)
    counts = await ledger_counts(run.id)
    await store_counters(run.id, counts)
    if counts.of(DeliveryStatus.SENDING):
        # Another job holds a live lease on some rows: it finishes the run.
        return {"runId": run.id, "status": RunStatus.RUNNING.value}
    retry_at = await next_retry(run.id)
    if retry_at is not None and run.open_for_triggers:
        redis = ctx.get("redis")
        if redis is not None:
            await JobQueue(redis).retry_run_at(run.id, retry_at)
        return {"runId": run.id, "status": RunStatus.RUNNING.value, "retryAt": retry_at.isoformat()}
    if retry_at is not None:
        # Nobody may claim the run before the deferred job runs; the dispatcher resumes it if that job is lost.
        await extend_run_lease(run, retry_at)
        redis = ctx.get("redis")
        if redis is not None:
            await JobQueue(redis).retry_run_at(run.id, retry_at)
        await progress.publish(counts, RunStatus.RUNNING, force=True)
        return {"runId": run.id, "status": RunStatus.RUNNING.value, "retryAt": retry_at.isoformat()}
    sent, failed = counts.of(DeliveryStatus.SENT, DeliveryStatus.DELIVERED), counts.of(DeliveryStatus.FAILED)
    # Several jobs may get here at once: the compare-and-set picks the one that finishes the run.
    if sent == 0 and failed > 0:
        reason = await main_failure_reason(run.id)
        final = progress.event(counts, RunStatus.FAILED, final=True)
        if await finish_run(run, RunStatus.FAILED, f"every send failed: {reason}", now, final):
            await fail_campaign(campaign.id, f"run {run.id}: every send failed: {reason}", now)
    else:
        # The snapshot is recorded (execute_run, send_run_part): an empty ledger is an empty audience, said so.
        empty = RunOutcomeReason.AUDIENCE_EMPTY if counts.total == 0 else None
        final = progress.event(counts, RunStatus.SUCCEEDED, final=True)
        if not await finish_run(run, RunStatus.SUCCEEDED, None, now, final, outcome=empty):
            status = (await CampaignRun.get(id=run.id)).status
            if run.open_for_triggers and status is RunStatus.RUNNING and ctx.get("redis") is not None:
                # Rows an acceptance committed as the run was finishing: sent by the next wake-up.
                await JobQueue(ctx["redis"]).wake_triggers(run.id, 0, f"late{int(now.timestamp())}")
            return {"runId": run.id, "status": status.value}
    return {"runId": run.id, "status": run.status.value, "sent": sent, "failed": failed}
