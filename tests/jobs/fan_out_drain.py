"""Fanning out every outbox event committed so far, for webhook tests that drive the sender themselves."""

from __future__ import annotations

from datetime import datetime

from models.outbox.model import OutboxEvent
from models.webhooks.fanout import fan_out
from tests.e2e.polling import wait_until


async def drain_fan_out(now: datetime) -> None:
    """A pass skips events another transaction holds locked: the session app's outbox relay marks events published
    in a transaction of its own. So a pass taking nothing is not "nothing left": wait until no event is left."""

    async def nothing_left() -> bool:
        while await fan_out(now=now):
            pass
        return not await OutboxEvent.filter(webhooks_at__isnull=True).exists()

    await wait_until(nothing_left, timeout=30)
