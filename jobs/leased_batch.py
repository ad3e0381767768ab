"""Sending one claimed batch under its lease (jobs/runs.py's loop, every channel but the in-app direct path):
rendered, sent through the adapter chunk by chunk or as a stream, the lease renewed meanwhile."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobs.channels.base import ConcurrentAdapter
from jobs.context import worker_context
from jobs.rendering import Renderer
from jobs.sending import keep_leased, prepare_batch, send_chunks, with_db_retry
from jobs.streaming import stream_batch
from jobs.tracking import MessageTracker
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.rules import CampaignType, Channel
from models.campaigns.values import CONTACT_CHANNEL
from models.ledger.claims import Claimed
from models.triggers.progress import recount_triggers


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
) -> tuple[Any, ...] | None:
    """A claimed batch sent under its lease, renewed meanwhile; the pause when the provider refused the preset."""
    triggered = campaign.type == CampaignType.API_TRIGGERED
    clock = worker_context(ctx).clock
    lease = float(worker_context(ctx).settings.run_lease_seconds)
    async with keep_leased(run, batch, lease, clock) as renewing:
        prepared = await prepare_batch(batch, renderer, now, tracker, triggered=triggered)
        send = stream_batch if _streams(adapter, campaign) else send_chunks
        paused = await send(
            run,
            prepared,
            adapter,
            renewing,
            retry_deadline,
            clock,
            worker_context(ctx).settings.sms_unconfirmed_window_seconds,
            CONTACT_CHANNEL.get(Channel(campaign.channel)),
        )
    if triggered and not run.open_for_triggers:
        # A run of one trigger (before the shared trigger runs): its trigger recounted after the batch. A
        # shared run's triggers are recounted in each outcome write's transaction (sending.trigger_recount).
        ids = [c.id for c in batch]
        await with_db_retry(recount_triggers, run.sandbox_id, run.campaign_id, run.id, ids, clock())
    return paused


def _streams(adapter: Any, campaign: Campaign) -> bool:
    """Messages sent one by one through a pool of connections go as a stream (jobs/streaming.py); in-app inbox
    rows are written a whole batch per statement."""
    return isinstance(adapter, ConcurrentAdapter) and Channel(campaign.channel) is not Channel.IN_APP
