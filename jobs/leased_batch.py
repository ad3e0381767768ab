"""Sending one claimed batch under its lease (jobs/runs.py's loop, every channel but the in-app direct path):
rendered, sent through the adapter chunk by chunk or as a stream, the lease renewed meanwhile.

A batch can be leased and prepared ahead (`lease_and_prepare`) while the one before it is being sent, so the
channel's connections do not wait for the claim, the profile read and the rendering between batches (issue 22:
2.2 s of a 30 s email run). Its lease is renewed from the moment it is prepared, and `release` puts rows that
will not be sent (the run paused or stopped meanwhile) back in the queue."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import datetime
from typing import Any

from jobs.channels.base import ConcurrentAdapter
from jobs.context import worker_context
from jobs.pausing import not_sent
from jobs.rendering import Renderer
from jobs.sending import PreparedBatch, keep_leased, prepare_batch, send_chunks, with_db_retry
from jobs.streaming import stream_batch
from jobs.tracking import MessageTracker
from models.business_rules.enforcement import SendRules, candidates_of, judge_batch
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.rules import CampaignType, Channel
from models.campaigns.values import CONTACT_CHANNEL
from models.ledger.claims import Claimed, claim_batch
from models.ledger.outcomes import write_outcomes

logger = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class LeasedBatch:
    """A claimed batch rendered, its lease renewed until `close`."""

    rows: list[Claimed]
    prepared: PreparedBatch
    renewing: asyncio.Lock
    leases: contextlib.AsyncExitStack

    async def close(self) -> None:
        await self.leases.aclose()

    async def release(self, run: CampaignRun, now: datetime) -> None:
        """Not to be sent by this job: the rows back to QUEUED, no attempt counted (as a paused batch's unsent)."""
        try:
            async with self.renewing:
                await with_db_retry(write_outcomes, not_sent(self.rows), now, run.sandbox_id)
        finally:
            await self.close()


async def lease_and_prepare(
    ctx: dict[str, Any],
    run: CampaignRun,
    campaign: Campaign,
    batch: list[Claimed],
    renderer: Renderer,
    tracker: MessageTracker,
    now: datetime,
    *,
    pace: bool = False,
) -> LeasedBatch:
    """The batch's lease renewed from now on, and its messages rendered. `pace`: let the event loop run other
    tasks (the batch being sent) every few messages."""
    clock = worker_context(ctx).clock
    lease = float(worker_context(ctx).settings.run_lease_seconds)
    leases = contextlib.AsyncExitStack()
    renewing = await leases.enter_async_context(keep_leased(run, batch, lease, clock))
    try:
        triggered = campaign.type == CampaignType.API_TRIGGERED
        prepared = await prepare_batch(batch, renderer, now, tracker, triggered=triggered, pace=pace)
    except BaseException:
        await leases.aclose()
        raise
    return LeasedBatch(batch, prepared, renewing, leases)


async def send_leased(
    ctx: dict[str, Any],
    run: CampaignRun,
    campaign: Campaign,
    batch: list[Claimed],
    adapter: Any,
    renderer: Renderer,
    tracker: MessageTracker,
    retry_deadline: datetime,
    now: datetime,
    leased: LeasedBatch | None = None,
    halfway: asyncio.Event | None = None,
) -> tuple[Any, ...] | None:
    """A claimed batch sent under its lease, renewed meanwhile; the pause when the provider refused the preset.
    `leased`: the batch already leased and prepared (`lease_and_prepare`). `halfway`: set once half the batch is
    handed to the provider (by a stream; a batch sent chunk by chunk sets it at once)."""
    if leased is None:
        leased = await lease_and_prepare(ctx, run, campaign, batch, renderer, tracker, now)
    try:
        streams = _streams(adapter, campaign)
        if halfway is not None and not streams:
            halfway.set()
        leased.prepared.halfway = halfway
        send = stream_batch if streams else send_chunks
        paused = await send(
            run,
            leased.prepared,
            adapter,
            leased.renewing,
            retry_deadline,
            worker_context(ctx).clock,
            worker_context(ctx).settings.sms_unconfirmed_window_seconds,
            CONTACT_CHANNEL.get(Channel(campaign.channel)),
        )
    finally:
        await leased.close()
    # An API campaign's triggers (a shared run's, or a one-trigger run's) are recounted in each outcome write's
    # transaction (sending.trigger_recount), not after the batch.
    return paused


async def cleared_of(send_rules: SendRules, batch: list[Claimed], now: datetime) -> list[Claimed]:
    """The part of a claimed batch the business rules let go now (the rest is recorded in the ledger)."""
    candidates = await with_db_retry(candidates_of, [(c.id, c.profile_id) for c in batch])
    verdicts = await with_db_retry(judge_batch, send_rules, candidates, now)
    cleared = set(verdicts.cleared)
    return [c for c in batch if c.id in cleared]


# The next batch as claimed, the part the business rules let go now, and that part leased and prepared.
Ahead = tuple[list[Claimed], list[Claimed], LeasedBatch | None]


class BatchAhead:
    """The batch after `after_id`, claimed, cleared and prepared once the current one is half handed to the
    provider (`halfway`): early enough to be ready when it ends, late enough that a dead worker's rows, whose
    leases expired meanwhile, wait at most half a batch more for this sender's next claim."""

    def __init__(
        self,
        ctx: dict[str, Any],
        run: CampaignRun,
        campaign: Campaign,
        renderer: Renderer,
        tracker: MessageTracker,
        send_rules: SendRules | None,
        batch_size: int,
        after_id: int,
    ) -> None:
        self.halfway = asyncio.Event()
        self._task = asyncio.create_task(
            self._lease(ctx, run, campaign, renderer, tracker, send_rules, batch_size, after_id)
        )

    async def _lease(
        self,
        ctx: dict[str, Any],
        run: CampaignRun,
        campaign: Campaign,
        renderer: Renderer,
        tracker: MessageTracker,
        send_rules: SendRules | None,
        batch_size: int,
        after_id: int,
    ) -> Ahead:
        await self.halfway.wait()
        now = worker_context(ctx).clock()
        lease = float(worker_context(ctx).settings.run_lease_seconds)
        batch = await claim_batch(run.id, now, lease, batch_size, after_id=after_id)
        cleared = await cleared_of(send_rules, batch, now) if send_rules is not None and batch else batch
        if not cleared:
            return batch, cleared, None
        leased = await lease_and_prepare(ctx, run, campaign, cleared, renderer, tracker, now, pace=True)
        return batch, cleared, leased

    async def take(self) -> Ahead:
        self.halfway.set()  # the current batch may have ended without a stream to say so
        return await self._task

    async def release(self, run: CampaignRun, now: datetime) -> None:
        """Not to be sent (the run paused, stopped or failed): the rows claimed back in the queue before the run's
        state changes. Not cancelled once claiming, so no statement is cut off midway; rows of a claim that failed
        midway keep a lease that expires."""
        if not self.halfway.is_set():
            self._task.cancel()  # still waiting: nothing claimed
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            return
        try:
            _, _, leased = await self._task
        except Exception:
            logger.warning("run %s: a batch claimed ahead could not be prepared", run.id, exc_info=True)
            return
        if leased is not None:
            await leased.release(run, now)


async def release_ahead(ahead: BatchAhead | None, run: CampaignRun, now: datetime) -> None:
    """`ahead.release` when there is one; returns None, what the caller's reference becomes."""
    if ahead is not None:
        await ahead.release(run, now)
    return None


def _streams(adapter: Any, campaign: Campaign) -> bool:
    """Messages sent one by one through a pool of connections go as a stream (jobs/streaming.py); in-app inbox
    rows are written a whole batch per statement."""
    return isinstance(adapter, ConcurrentAdapter) and Channel(campaign.channel) is not Channel.IN_APP
