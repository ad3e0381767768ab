"""The outbox relay (DESIGN §4): publishes committed events to Redis pub/sub in id order, then marks them.

One runs in every `herald serve` and `herald worker` process; models.outbox.store makes sure only one publishes
at a time. It wakes when this process commits an event (models.outbox.committed) and polls every
POLL_INTERVAL for the others' events. Redis or the database away: events stay in the table and the relay
retries with backoff, logging one WARNING per outage. It never dies on an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError

from jobs.events import publish
from models.outbox import store
from models.outbox.model import OutboxEvent
from models.outbox.payloads import envelope

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.1
# Passes start at least this far apart: commits close together share one (at 100-200 trigger acceptances a second,
# a pass per commit was a fifth of the server's CPU). It bounds the latency it adds to an event.
MIN_PASS_GAP = 0.02
PRUNE_EVERY = 60.0
BATCH = 200
MAX_BACKOFF = 5.0

# The relays running in this process (tests pause the app's relay to watch one of their own).
RUNNING: set[OutboxRelay] = set()


class OutboxRelay:
    def __init__(
        self,
        redis: Any,
        *,
        retention: timedelta,
        poll_interval: float = POLL_INTERVAL,
        min_pass_gap: float = MIN_PASS_GAP,
        prune_every: float = PRUNE_EVERY,
        batch: int = BATCH,
        lock: asyncio.Lock | None = None,
    ) -> None:
        """`lock`: by default the process's one relay lock; tests give two relays their own on PostgreSQL to
        act as two processes (the advisory lock then keeps them apart)."""
        self.redis = redis
        self.retention = retention
        self.poll_interval = poll_interval
        self.min_pass_gap = min_pass_gap
        self.prune_every = prune_every
        self.batch = batch
        self.lock = lock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_prune = 0.0
        self._failures = 0
        self._outage: str | None = None  # what is down ("Redis" / "the database"), logged once per outage

    def start(self) -> None:
        store.add_listener(self._wake.set)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        RUNNING.add(self)

    async def stop(self) -> None:
        store.remove_listener(self._wake.set)
        RUNNING.discard(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _publish(self, event: OutboxEvent) -> None:
        await publish(self.redis, event.sandbox_id, event.topic, envelope(event.id, event.payload))

    async def publish_pending(self) -> int:
        """Publishes every pending event (batch after batch); errors propagate. The loop and tests call it."""
        total = 0
        while True:
            published = await store.publish_pending(self._publish, limit=self.batch, lock=self.lock)
            total += published
            if published < self.batch:
                return total

    async def prune(self, now: datetime | None = None) -> int:
        return await store.prune((now or datetime.now(UTC)) - self.retention)

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before the pass: a commit during it wakes the next one
            started = time.monotonic()
            try:
                await self.publish_pending()
                if time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + self.prune_every
                    await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._backoff("Redis" if isinstance(exc, RedisError | OSError) else "the database", exc)
                continue
            if self._outage is not None:
                logger.warning("outbox relay: %s is back, pending events published", self._outage)
                self._outage, self._failures = None, 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            rest = started + self.min_pass_gap - time.monotonic()
            if rest > 0:
                await asyncio.sleep(rest)

    async def _backoff(self, down: str, exc: Exception) -> None:
        if self._outage != down:
            logger.warning("outbox relay: %s unavailable (%r); events kept, retrying", down, exc)
            self._outage = down
        self._failures += 1
        await asyncio.sleep(min(self.poll_interval * 2 ** min(self._failures, 8), MAX_BACKOFF))
