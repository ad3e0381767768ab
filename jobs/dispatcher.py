"""The dispatcher (DESIGN §6): an arq cron every few seconds that turns the database into queued work.

`dispatch(now, redis)` is a plain function so tests drive it with a controlled clock. Every step is safe to
repeat or to run in two processes at once: runs are unique per (campaign, scheduled_for), status changes are
compare-and-set, and run jobs have deterministic ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.cron import cron
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from jobs.queue import JobQueue
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.campaigns.experiment_winner import choose_due_winners
from models.campaigns.local_time import run_start
from models.campaigns.rules import CampaignEvent, CampaignStatus, CampaignType
from models.campaigns.run_rules import FINAL_RUN_STATUSES
from models.campaigns.schedule import fire_times, zone
from models.campaigns.transitions import DISPATCHER, system_transition
from models.campaigns.values import schedule_from_stored
from models.ledger.counts import ledger_counts, store_counters
from models.ledger.outcomes import cancel_unsent
from models.triggers.progress import has_claimable

logger = logging.getLogger(__name__)

# Fire times missed by more than this (dispatcher down) are skipped rather than sent late.
LOOKBACK = timedelta(hours=1)
# A RUNNING run whose lease expired this long ago lost its worker (a deferred retry job starts at expiry).
RESUME_GRACE = timedelta(seconds=2)
# A PENDING run still unclaimed this long after it was due has lost its job (see dispatch).
PENDING_REQUEUE = timedelta(seconds=15)
DISPATCH_SECONDS = set(range(0, 60, 3))
# The longest a local-time run starts before its fire time: UTC+14 ahead of a campaign at UTC-12.
LOCAL_TIME_LEAD = timedelta(hours=26)


@dataclass
class DispatchReport:
    started: list[int] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    enqueued: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    woken: list[int] = field(default_factory=list)  # API campaigns' trigger runs given a wake-up
    winners: list[int] = field(default_factory=list)  # campaigns whose experiment winner was chosen


async def _create_run(campaign: Campaign, when: datetime, starts_at: datetime | None = None) -> CampaignRun | None:
    try:
        return await CampaignRun.create(
            sandbox_id=campaign.sandbox_id, campaign_id=campaign.id, scheduled_for=when, starts_at=starts_at
        )
    except IntegrityError:  # already created (by activation or another dispatcher): unique per time
        return None


async def dispatch(now: datetime, redis: Any = None) -> DispatchReport:
    report = DispatchReport()
    # SCHEDULED → LIVE when the start is reached.
    for campaign in await Campaign.filter(status=CampaignStatus.SCHEDULED):
        schedule = schedule_from_stored(campaign.schedule or {})
        if schedule.start_at is None or schedule.start_at <= now:
            if await system_transition(campaign, CampaignEvent.START, actor=DISPATCHER, now=now):
                report.started.append(campaign.id)

    # Due runs of LIVE scheduled campaigns (one-off and recurring). A run delivering at each recipient's local
    # time is due when the first zone reaches its wall time (models.campaigns.local_time), up to
    # LOCAL_TIME_LEAD before its fire time: its campaign may still be SCHEDULED then.
    live = await Campaign.filter(status=CampaignStatus.LIVE, type=CampaignType.SCHEDULED)
    scheduled = await Campaign.filter(status=CampaignStatus.SCHEDULED, type=CampaignType.SCHEDULED)
    # A campaign with a PAUSED run gets no new run: its preset was refused and would refuse the new one too.
    # Its fire times pass meanwhile like those of a dispatcher that is down: after campaignRunResume, those
    # within LOOKBACK still get their run, older ones are skipped (docs/operations.md, "Paused runs").
    paused = set(await CampaignRun.filter(status=RunStatus.PAUSED).values_list("campaign_id", flat=True))
    for campaign in [*live, *scheduled]:
        if campaign.id in paused:
            continue
        schedule = schedule_from_stored(campaign.schedule or {})
        if campaign.status is CampaignStatus.SCHEDULED and not schedule.local_time:
            continue
        lead = LOCAL_TIME_LEAD if schedule.local_time else timedelta(0)
        times = fire_times(
            schedule,
            window_start=now - LOOKBACK,
            window_end=now + lead + timedelta(microseconds=1),
            activated_at=campaign.activated_at,
        )
        campaign_zone = zone(schedule.timezone)
        for when in times:
            starts_at = run_start(when, campaign_zone) if schedule.local_time and campaign_zone else None
            if starts_at is not None and starts_at > now:
                continue
            run = await _create_run(campaign, when, starts_at)
            if run is not None:
                report.created.append(run.id)

    # Test-then-winner experiments whose test is over: the winner (or the fallback) chosen, audited, and the run
    # sending it to the rest created (enqueued just below).
    for choice in await choose_due_winners(now):
        report.winners.append(choice.campaign.id)

    # Enqueue due PENDING runs; the job id is fixed, so a run still queued is not queued twice. A run due for
    # longer than PENDING_REQUEUE also goes in under an id of this window: a worker killed inside the claim leaves
    # arq's in-progress key on the fixed id for the job's whole timeout, and the claim (compare-and-set) makes an
    # extra job harmless.
    # Runs due at the same time start in their campaigns' priority order, highest first (arq runs jobs in the
    # order they are due, and these are all due now).
    due = Q(scheduled_for__lte=now) | Q(starts_at__lte=now)
    pending = CampaignRun.filter(due, status=RunStatus.PENDING)
    for run in await pending.order_by("scheduled_for", "-campaign__priority", "id").limit(1000):
        if redis is not None:
            queue = JobQueue(redis)
            await queue.execute_run(run.id)
            if (run.starts_at or run.scheduled_for) <= now - PENDING_REQUEUE:
                await queue.requeue_run(run.id, int(now.timestamp() // PENDING_REQUEUE.total_seconds()))
        report.enqueued.append(run.id)

    # RUNNING runs whose worker stopped renewing the lease: resume under a job id of that lease. An API campaign's
    # trigger run holds no lease between wake-ups: it is woken below instead.
    stale = Q(status=RunStatus.RUNNING) & (Q(lease_until__isnull=True) | Q(lease_until__lt=now - RESUME_GRACE))
    for run in await CampaignRun.filter(stale, open_for_triggers=False).order_by("id").limit(1000):
        if redis is not None:
            epoch = int(run.lease_until.timestamp()) if run.lease_until else 0
            await JobQueue(redis).resume_run(run.id, epoch)
        report.resumed.append(run.id)

    # Trigger runs with rows to claim (a wake-up lost with Redis or a killed worker's expired leases), or whose
    # campaign was stopped (the run finishes): woken once per dispatch window.
    open_runs = await CampaignRun.filter(status=RunStatus.RUNNING, open_for_triggers=True).order_by("id").limit(1000)
    if open_runs:
        live_ids = {c.id for c in live} | set(
            await Campaign.filter(id__in=[r.campaign_id for r in open_runs], status=CampaignStatus.LIVE).values_list(
                "id", flat=True
            )
        )
        for run in open_runs:
            if run.campaign_id in live_ids and not await has_claimable(run.id, now):
                continue
            if redis is not None:
                await JobQueue(redis).wake_triggers(run.id, 0, f"d{int(now.timestamp() // 3)}")
            report.woken.append(run.id)

    # Runs aborted by a stop: deliveries nobody is sending any more → CANCELLED (their job may be gone).
    for run in await CampaignRun.filter(status=RunStatus.CANCELLED, finished_at__gte=now - LOOKBACK).limit(1000):
        if await cancel_unsent(run, now):
            await store_counters(run.id, await ledger_counts(run.id))
            report.cancelled.append(run.id)

    # LIVE → COMPLETED once endAt has passed and the last run finished (DESIGN §4). A one-shot campaign
    # without endAt stays LIVE after its message went out, until it is stopped, as AJO's does.
    for campaign in live:
        schedule = schedule_from_stored(campaign.schedule or {})
        if schedule.end_at is None or schedule.end_at > now:
            continue
        runs = await CampaignRun.filter(campaign_id=campaign.id).values_list("status", flat=True)
        if not runs or any(RunStatus(s) not in FINAL_RUN_STATUSES for s in runs):
            continue
        if await system_transition(campaign, CampaignEvent.COMPLETE, actor=DISPATCHER, now=now, finished_at=now):
            report.completed.append(campaign.id)
    return report


async def dispatch_job(ctx: dict[str, Any]) -> dict[str, int]:
    report = await dispatch(datetime.now(UTC), ctx.get("redis"))
    if any(report.__dict__.values()):
        done = ", ".join(f"{name} {ids}" for name, ids in report.__dict__.items() if ids)
        logger.info("dispatcher: %s", done)
    return {k: len(v) for k, v in report.__dict__.items()}


DISPATCH_REF = "dispatch"  # how arq names the cron job in its log lines


# The periodic passes whose start/end lines go to DEBUG (the webhook pass: jobs/webhooks.py).
QUIET_REFS = {DISPATCH_REF, "webhooks"}


class QuietDispatchLog(logging.Filter):
    """arq logs the start and end of every job at INFO: for the dispatcher, two lines every 3 s in every worker
    process. Those go to DEBUG; a pass that did something says so in its own INFO line (dispatch_job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        message = str(record.msg)
        if record.levelno != logging.INFO or len(args) < 2 or args[1] not in QUIET_REFS:
            return True
        if not (message.startswith("%6.2fs → ") or message.startswith("%6.2fs ← ")):
            return True  # retries, aborts: kept as arq logs them
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_dispatch_logs() -> None:
    arq_logger = logging.getLogger("arq.worker")
    if not any(isinstance(f, QuietDispatchLog) for f in arq_logger.filters):
        arq_logger.addFilter(QuietDispatchLog())


DISPATCH_CRON = cron(dispatch_job, name="dispatch", second=DISPATCH_SECONDS, unique=True, run_at_startup=True)
