"""The run executor (DESIGN §6) as the run's state machine: claim (or resume) the run, snapshot the audience
into the ledger unless that step is recorded, hand "send part" jobs to the other workers, send in batches,
finish. Each step is recorded in the transaction that does it, so a resumed run redoes exactly what is not.

The ledger is the source of truth. A job may run twice or concurrently (at-least-once queue, crashes, the
dispatcher resuming a run whose lease expired): the run is claimed by compare-and-set and each batch of
deliveries by an atomic UPDATE (plus `FOR UPDATE SKIP LOCKED` on PostgreSQL), so a message is sent again
only if a worker died while it was in flight, and then with the same idempotency key / Message-ID.
Status changes go through models/campaigns/transitions (runs, campaigns) and models/ledger (deliveries).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from arq.worker import Retry
from tortoise.transactions import in_transaction

from jobs.adapters import build_adapter
from jobs.context import worker_context
from jobs.inapp_direct import IN_APP_BATCH_SIZE, DirectInApp
from jobs.leased_batch import send_leased
from jobs.pausing import pause_sending
from jobs.progress import Progress
from jobs.queue import JobQueue
from jobs.rendering import Renderer
from jobs.run_end import finish_if_done, settle_held_sends, stopped
from jobs.send_pacing import pacer_of
from jobs.sending import keep_run_leased, with_db_retry
from jobs.throttle import Throttle, campaign_throttle_key
from jobs.tracking import MessageTracker
from jobs.trigger_runs import progress_of
from models.audience.entities import Segment
from models.business_rules.enforcement import (
    SendRules,
    candidates_of,
    judge_batch,
    outranked_by_waiting_run,
    send_rules_for,
)
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.experiment_rules import ExperimentMode
from models.campaigns.review import can_activate, review
from models.campaigns.review_snapshot import LinkFacts
from models.campaigns.reviewing import build_snapshot
from models.campaigns.rules import CampaignStatus, CampaignType
from models.campaigns.run_rules import RunStatus
from models.campaigns.transitions import (
    claim_run,
    extend_run_lease,
    fail_campaign,
    finish_run,
    record_snapshot_done,
)
from models.campaigns.values import schedule_from_stored
from models.campaigns.versions import bind_run_version, campaign_for_run
from models.campaigns.waves import waves_from_stored
from models.ledger.claims import BATCH_SIZE, Claimed, claim_batch, taken_elsewhere
from models.ledger.counts import Counts, ledger_counts, snapshot_counts, store_counters
from models.ledger.due_times import due_at_local_time
from models.ledger.experiment_snapshot import assign_treatments, snapshot_rest
from models.ledger.snapshot import analyze_if_large, exclude_beyond_throttle, snapshot_audience
from models.ledger.waves import assign_waves, open_next_wave
from models.presets.preset import MessagePreset
from models.presets.secret_box import SecretsUnreadableError
from models.sql.params import Dialect
from models.sql.reads import dialect_of
from models.tenancy.identity import IdentityNamespace

# A send part finding its worker process already busy with the run comes back after this.
PART_RETRY_SECONDS = 0.5
# A run outranked by a higher-priority run not yet snapshotted (business rules) looks again after this.
PRIORITY_POLL_SECONDS = 0.25
DEFAULT_RETRY_MINUTES = 84 * 60


def _now(ctx: dict[str, Any]) -> datetime:
    return worker_context(ctx).clock()


def _lease(ctx: dict[str, Any]) -> float:
    return float(worker_context(ctx).settings.run_lease_seconds)


async def execute_run(ctx: dict[str, Any], run_id: int) -> dict[str, Any]:
    """The run's main job: claim it, snapshot the audience unless recorded, hand extra "send part" jobs to the
    other workers, then send until nothing is left."""
    await _wait_for_higher_priorities(ctx, run_id)
    if await CampaignRun.filter(id=run_id, open_for_triggers=True).exists():
        return await send_triggers(ctx, run_id)  # a retry due in an API campaign's run (retry_run_at)
    lease, now = _lease(ctx), _now(ctx)
    claimed = await claim_run(run_id, now, now + timedelta(seconds=lease))
    if claimed is None:
        return {"runId": run_id, "claimed": False}
    run, _fresh = claimed
    # Marked as served here before its parts exist, so none of them starts a second sender in this process.
    with _serving(ctx, run.id):
        counts: Counts | None = None
        if run.snapshot_done_at is None:
            campaign = await Campaign.get(id=run.campaign_id)
            # The lease is short (another worker resumes a killed one's run within seconds); a snapshot of a
            # large audience takes longer, so it is renewed meanwhile.
            async with keep_run_leased(run, lease):
                outcome = await _snapshot(ctx, run, campaign, now)
            if not isinstance(outcome, Counts):
                return outcome
            counts = outcome
        # The version the snapshot fixed, for the whole run: a version published meanwhile is the next run's.
        campaign = await campaign_for_run(run)
        await _enqueue_parts(ctx, run, campaign, counts)
        return await _send_until_done(ctx, run, campaign, lease, counts)


async def send_triggers(ctx: dict[str, Any], run_id: int) -> dict[str, Any]:
    """A wake-up of an API campaign's long-lived run (JobQueue.wake_triggers after acceptances, coalesced; the
    dispatcher as the safety net): sends every row due, across triggers, through the same claim/lease/outcome path
    as a run, several jobs and workers at once if need be (each batch is claimed atomically). The run is not
    claimed (it stays RUNNING while its campaign is LIVE): its lease is only renewed while a batch is sent."""
    run = await CampaignRun.get_or_none(id=run_id)
    if run is None or not run.open_for_triggers or run.status is not RunStatus.RUNNING:
        return {"runId": run_id, "status": run.status.value if run else None}
    campaign = await campaign_for_run(run)
    return await _send_until_done(ctx, run, campaign, _lease(ctx))


async def send_run_part(ctx: dict[str, Any], run_id: int, part: int) -> dict[str, Any]:
    """An extra sender of a RUNNING run (DESIGN §6: large runs split across jobs so several workers share one
    run). It claims batches from the ledger like the main job until none is left; whoever sees the last one
    finishes the run, under a compare-and-set."""
    run = await CampaignRun.get_or_none(id=run_id)
    if run is None or run.status is not RunStatus.RUNNING or run.snapshot_done_at is None:
        return {"runId": run_id, "part": part, "status": run.status.value if run else None}
    if worker_context(ctx).serving_runs[run_id] > 0:
        # This process already sends for the run (with the channel's concurrency): leave the part to another
        # worker process; it comes back until the run is over.
        raise Retry(defer=PART_RETRY_SECONDS)
    with _serving(ctx, run_id):
        campaign = await campaign_for_run(run)
        result = await _send_until_done(ctx, run, campaign, _lease(ctx))
    return {**result, "part": part}


async def _wait_for_higher_priorities(ctx: dict[str, Any], run_id: int) -> None:
    """Under caps, the runs of a higher priority due with this one take their snapshots first (a bounded wait,
    polled: the state is in the database, shared by every worker process)."""
    while True:
        if not await _outranked(run_id, _now(ctx)):
            return
        await asyncio.sleep(PRIORITY_POLL_SECONDS)


async def _outranked(run_id: int, now: datetime) -> bool:
    """A PENDING run under caps waits for the higher-priority runs due with it to take their snapshots."""
    run = await CampaignRun.get_or_none(id=run_id)
    if run is None or run.status is not RunStatus.PENDING:
        return False
    campaign = await Campaign.get(id=run.campaign_id)
    rules = await send_rules_for(campaign, run.id)
    return rules is not None and bool(rules.caps) and await outranked_by_waiting_run(campaign, run, now)


@contextlib.contextmanager
def _serving(ctx: dict[str, Any], run_id: int) -> Iterator[None]:
    """Counts the runs this worker process sends for (in the worker context, shared by its jobs)."""
    serving = worker_context(ctx).serving_runs
    serving[run_id] += 1
    try:
        yield
    finally:
        serving[run_id] -= 1
        if serving[run_id] <= 0:
            del serving[run_id]


def _batch_size(campaign: Campaign) -> int:
    if campaign.throttle_per_second:
        # About a second of sending per batch, so waiting for tokens never outlasts the leases.
        return max(1, min(BATCH_SIZE, int(campaign.throttle_per_second)))
    return BATCH_SIZE


async def _snapshot(
    ctx: dict[str, Any], run: CampaignRun, campaign: Campaign, now: datetime
) -> dict[str, Any] | Counts:
    """The run's first step, redone until recorded: stopped campaign → cancel, failing review → FAILED (the job's
    result); else the audience and `snapshot_done_at` in one transaction (the insert is idempotent), then counts."""
    if campaign.status not in (CampaignStatus.LIVE, CampaignStatus.SCHEDULED):
        final = Progress(None, run).event(Counts({}), RunStatus.CANCELLED, final=True)
        await finish_run(run, RunStatus.CANCELLED, f"campaign is {campaign.status.value}", now, final)
        return {"runId": run.id, "status": RunStatus.CANCELLED.value}
    settings = worker_context(ctx).settings
    inserted: list[dict[str, Any]] | None = None  # the snapshot statement's counts (PostgreSQL)
    async with in_transaction() as conn:
        # The published version is fixed here, with the audience: the run sends it to the end.
        campaign, version_number = await bind_run_version(conn, campaign, now)
        links = LinkFacts(settings.public_url, settings.is_prod)
        # Only errors stop a run, and none depends on the audience estimates: skipped, they would scan the
        # audience three more times before the snapshot scans it.
        alerts = review(await build_snapshot(campaign, now=now, conn=conn, links=links, estimates=False), now)
        if not can_activate(alerts):
            codes = sorted({a.code.value for a in alerts if a.severity.value == "ERROR"})
            reason = "review failed: " + ", ".join(codes)
        else:
            reason = None
            segment = await Segment.get(id=campaign.segment_id).using_db(conn)
            namespace = await IdentityNamespace.get(id=campaign.namespace_id).using_db(conn)
            preset = await MessagePreset.get_or_none(id=campaign.preset_id).using_db(conn)
            rest = await _rest_of_test(run, campaign)
            if rest is not None:
                await snapshot_rest(run, campaign, namespace, preset, rest[0], rest[1], now, conn)
            else:
                inserted = await snapshot_audience(run, campaign, segment, namespace, preset, now, conn)
                if campaign.experiment:
                    await assign_treatments(run.id, campaign.experiment, conn)
            if campaign.throttle_per_second:
                await exclude_beyond_throttle(run, campaign.throttle_per_second, conn)
            schedule = schedule_from_stored(campaign.schedule or {})
            if schedule.local_time:
                await due_at_local_time(
                    run.id, run.scheduled_for, schedule.timezone, campaign.activated_at, schedule.on_passed_time, conn
                )
            waves = waves_from_stored(campaign.waves)
            if waves is not None:
                await assign_waves(run, waves, now, conn)
            recorded = await record_snapshot_done(conn, run, now, campaign_version=version_number)
            # The statement's own counts are the ledger's when nothing changed its rows since (an experiment's
            # holdout, a throttle's cut, waves) and no other worker's snapshot of the run was recorded first.
            if not recorded or campaign.experiment or campaign.throttle_per_second or waves is not None:
                inserted = None
    if reason is not None:
        final = Progress(None, run).event(Counts({}), RunStatus.FAILED, final=True)
        await finish_run(run, RunStatus.FAILED, reason, now, final)
        return {"runId": run.id, "status": RunStatus.FAILED.value, "reason": reason}
    counts = snapshot_counts(run, inserted) if inserted is not None else await ledger_counts(run.id)
    await store_counters(run.id, counts)
    await analyze_if_large(counts.total)
    return counts


async def _rest_of_test(run: CampaignRun, campaign: Campaign) -> tuple[int, str] | None:
    """(the test run, the winner) when `run` sends a test-then-winner experiment's winner to the rest: a later run
    of the campaign once the winner is chosen."""
    experiment = campaign.experiment or {}
    winner = (experiment.get("winner") or {}).get("treatment")
    if experiment.get("mode") != ExperimentMode.TEST_THEN_WINNER.value or not winner:
        return None
    first = await CampaignRun.filter(campaign_id=campaign.id).order_by("id").first()
    if first is None or first.id == run.id:
        return None
    return first.id, winner


async def _enqueue_parts(ctx: dict[str, Any], run: CampaignRun, campaign: Campaign, counts: Counts | None) -> None:
    redis = ctx.get("redis")
    wanted = worker_context(ctx).settings.run_send_parts
    # SQLite is the embedded single-process mode: nobody else to share the run with. A trigger's run has at most
    # 1,000 rows (two batches): not worth counting them to split.
    if redis is None or wanted <= 0 or dialect_of() is not Dialect.POSTGRES:
        return
    if campaign.type == CampaignType.API_TRIGGERED:
        return
    if counts is None:  # not given the snapshot's, taken just now
        counts = await ledger_counts(run.id)
    parts = min(wanted, counts.pending // _batch_size(campaign))
    # Deterministic per claim of the run: enqueuing twice is a no-op, a resumed run gets parts of its own.
    claim_tag = int(run.lease_until.timestamp() * 1000) if run.lease_until else 0
    for part in range(1, parts + 1):
        await JobQueue(redis).send_run_part(run.id, part, claim_tag)


async def _send_until_done(
    ctx: dict[str, Any], run: CampaignRun, campaign: Campaign, lease: float, counted: Counts | None = None
) -> dict[str, Any]:
    """`counted`: the counts just taken at the snapshot, published now; the sending loop's first count then
    waits as if it had taken them (a second scan of a fresh 1,000,000-row ledger at the first batch)."""
    now = _now(ctx)
    progress = progress_of(ctx, run)
    if counted is not None:
        progress.counted_rows(counted.total)
        await progress.publish(counted, RunStatus.RUNNING)
    preset = await MessagePreset.get(id=campaign.preset_id) if campaign.preset_id else None
    namespace = await IdentityNamespace.get(id=campaign.namespace_id)
    renderer = Renderer(campaign)
    tracker = MessageTracker(worker_context(ctx).settings, campaign, run)
    try:
        adapter = build_adapter(ctx, campaign, preset, namespace) if preset is not None else None
    except SecretsUnreadableError:
        reason = "the preset's secrets cannot be decrypted with the current SECRET_KEY"
        final = progress.event(await ledger_counts(run.id), RunStatus.FAILED, final=True)
        if await finish_run(run, RunStatus.FAILED, reason, now, final):
            await fail_campaign(campaign.id, reason, now)
        return {"runId": run.id, "status": RunStatus.FAILED.value, "reason": reason}
    retry_minutes = int(
        ((preset.settings or {}) if preset else {}).get("retry_period_minutes") or DEFAULT_RETRY_MINUTES
    )
    # A trigger run lives as long as its campaign: its retry period counts from this job (a row's first attempt).
    retry_deadline = (now if run.open_for_triggers else run.started_at or now) + timedelta(minutes=retry_minutes)
    await settle_held_sends(ctx, run.id, now, campaign)
    batch_size = _batch_size(campaign)
    triggered = campaign.type == CampaignType.API_TRIGGERED
    throttle = None
    if campaign.throttle_per_second and ctx.get("redis") is not None:
        # An API campaign's throttle is the campaign's, shared by its runs (older triggers had a run each).
        key = campaign_throttle_key(campaign.id) if triggered else None
        throttle = Throttle(ctx["redis"], run.id, campaign.throttle_per_second, key=key)
    send_rules = await send_rules_for(campaign, run.id)
    direct = None
    if DirectInApp.fits(adapter, send_rules, throttle, triggered):
        direct, batch_size = DirectInApp(run, adapter, renderer, tracker, pacer_of(ctx)), IN_APP_BATCH_SIZE
    after_id = 0  # keyset position of this pass over the ledger
    try:
        while True:
            now = _now(ctx)
            if not await extend_run_lease(run, now + timedelta(seconds=lease)):
                return await stopped(run, progress, now)
            if throttle is not None:
                # Tokens before the claim: waiting for them must not eat into the batch's lease.
                await throttle.take(batch_size)
                now = _now(ctx)
            if direct is not None:
                # Taken and delivered in one transaction; None: the run goes on the leased path.
                delivered = await direct.deliver(now, batch_size, after_id)
                if delivered is None:
                    await direct.close()
                    direct, batch_size = None, _batch_size(campaign)
                    continue
                batch = delivered
            else:
                batch = await claim_batch(run.id, now, lease, batch_size, after_id=after_id)
            # A short batch of a pass from the start took every row due: no other pass (a trigger's run is one).
            asked = direct.asked if direct is not None else batch_size  # fewer while the API is busy
            last_pass = after_id == 0 and len(batch) < asked and run.wave is None
            if not batch:
                if after_id == 0:
                    if run.wave is not None and await with_db_retry(open_next_wave, run.id):
                        continue  # the previous wave is finished: the next one's rows may be claimed
                    break
                after_id = 0  # one more pass from the start: retries now due, leases that expired meanwhile
                continue
            after_id = max(after_id, batch[-1].id)  # a killed worker's rows may lie behind
            if direct is None:
                if send_rules is not None:
                    batch = await _cleared(send_rules, batch, now)
                    if not batch:
                        continue
                paused = await send_leased(ctx, run, campaign, batch, adapter, renderer, tracker, retry_deadline, now)
                if paused is not None:
                    return await pause_sending(ctx, run, campaign.preset_id, *paused, progress, now)
            if last_pass:
                break  # counted and published by finish_if_done right after
            if progress.counting_due():
                share = direct.share if direct is not None else 1.0
                count = functools.partial(_count_ledger, run, progress, share)
                if direct is None:
                    progress.count_beside(count)  # the next batch's messages go out meanwhile
                else:  # in-app rows are the database's own work: a count beside them would only compete
                    await count()
        if direct is not None and await with_db_retry(taken_elsewhere, run.id, _now(ctx)):
            # Rows another sender took and has not committed look QUEUED: that sender finishes the run.
            return {"runId": run.id, "status": RunStatus.RUNNING.value}
    finally:
        await progress.settle()  # a count in flight is not left behind, whatever ended the loop
        if adapter is not None:
            await adapter.close()
        if direct is not None:
            await direct.close()
    return await finish_if_done(ctx, run, campaign, progress)


async def _count_ledger(run: CampaignRun, progress: Progress, share: float) -> None:
    """The sending loop's count: the ledger counted, the run's counters stored, the figures published."""
    started = time.monotonic()
    # Serial: a parallel count took the API's core for its second (models.ledger.counts).
    counts = await with_db_retry(functools.partial(ledger_counts, serial=True), run.id)
    await with_db_retry(store_counters, run.id, counts)
    progress.counted(started, share)
    await progress.publish(counts, RunStatus.RUNNING)


async def _cleared(send_rules: SendRules, batch: list[Claimed], now: datetime) -> list[Claimed]:
    """The part of a claimed batch the business rules let go now (the rest is recorded in the ledger)."""
    candidates = await with_db_retry(candidates_of, [(c.id, c.profile_id) for c in batch])
    verdicts = await with_db_retry(judge_batch, send_rules, candidates, now)
    cleared = set(verdicts.cleared)
    return [c for c in batch if c.id in cleared]
