"""Typed events for subscription resolvers: envelopes opened, malformed ones logged and skipped, repeats dropped.

The outbox relay publishes at least once, so the same outbox id may arrive twice; a malformed message must
never end a subscriber's stream.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from models.outbox.payloads import Payload, PayloadError, open_envelope

logger = logging.getLogger(__name__)

REMEMBERED_IDS = 4096


async def typed_events(messages: AsyncIterator[Any], topic: str) -> AsyncIterator[Payload]:
    seen: set[int] = set()
    order: deque[int] = deque()
    async for message in messages:
        try:
            outbox_id, payload = open_envelope(topic, message)
        except PayloadError as exc:
            logger.warning("skipped a malformed event: %s", exc)
            continue
        if outbox_id is not None:
            # A set, not the highest id: a lower id may commit (and be published) after a higher one.
            if outbox_id in seen:
                continue
            seen.add(outbox_id)
            order.append(outbox_id)
            if len(order) > REMEMBERED_IDS:
                seen.discard(order.popleft())
        yield payload
