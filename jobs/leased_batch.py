"""Sending one claimed batch under its lease (jobs/runs.py's loop, every channel but the in-app direct path):
rendered, sent through the adapter chunk by chunk or as a stream, the lease renewed meanwhile."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobs.channels.base import ConcurrentAdapter
from jobs.context import worker_context
from jobs.rendering import Renderer
from jobs.sending import keep_leased, prepare_batch, send_chunks
from jobs.streaming import stream_batch
from jobs.tracking import MessageTracker
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.rules import CampaignType, Channel
from models.campaigns.values import CONTACT_CHANNEL
from models.ledger.claims import Claimed


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
    # An API campaign's triggers (a shared run's, or a one-trigger run's) are recounted in each outcome write's
    # transaction (sending.trigger_recount), not after the batch.
    return paused


def _streams(adapter: Any, campaign: Campaign) -> bool:
    """Messages sent one by one through a pool of connections go as a stream (jobs/streaming.py); in-app inbox
    rows are written a whole batch per statement."""
    return isinstance(adapter, ConcurrentAdapter) and Channel(campaign.channel) is not Channel.IN_APP
