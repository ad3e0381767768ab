"""The API's busy signal and a run's duty cycle while it is up (issue 22: reads during a large send).

A send takes every CPU cycle nobody else wants, but most of its work is done by its PostgreSQL backends, which
run at the API's backends' priority (a worker's nice does not reach them; with the kernel's autogroups all of
PostgreSQL is one scheduling group, the sender's statements and the API's alike): the API's reads queued behind
the sender's statements. So each web process serving API_BUSY_REQUESTS_PER_SECOND or more marks the API busy in
Redis (at most every MARK_INTERVAL, the mark living BUSY_HOLD_MS), and while the mark is up the in-app sender
sends in small batches on one connection and rests after each, so that it works at most SEND_SHARE_WHEN_API_BUSY
of the time: short statements, then the cores left to the API. With the API quiet, it sends at full speed again
within BUSY_HOLD_MS.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from jobs.context import worker_context
from jobs.redis_retry import REDIS_ERRORS

BUSY_KEY = "herald:api:busy"
MARK_INTERVAL = 0.25  # seconds between two marks of one web process (one SET, not one per request)
BUSY_HOLD_MS = 1000  # a mark's life: the API counts as busy this long after its last request
# Requests that say nothing about anyone waiting for an answer: probes and scrapes would keep a send paced forever.
UNMARKED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Rows per batch while the API is busy. A batch is a burst of the worker's and its backend's CPU that the API's
# requests wait behind on a small machine, so its length bounds what a send adds to the API's p99: in
# read_under_send (2 cores, 1,000,000 in-app) the p99 was 2.6-4.0x the idle one with 200 rows, 1.3-2.4x with 50,
# 0.6x with 20 (docs/performance.md, eleventh session). The send's rate while paced is a small part of a run's.
BUSY_BATCH_SIZE = 20
REST_CHECK_SECONDS = 0.1  # a rest ends this soon after the API went quiet


class BusyMark:
    """The web side: marks the API busy once it serves at least `busy_per_second` requests a second (a dashboard's
    few polls do not hold a send back), at most every MARK_INTERVAL, best effort (never fails or waits a request:
    the SET runs as a task of its own)."""

    def __init__(self, redis_url: str, busy_per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = Redis.from_url(redis_url)  # connects on first use
        self.clock = clock
        # Requests within one MARK_INTERVAL that make the API busy.
        self.per_interval = max(1, math.ceil(busy_per_second * MARK_INTERVAL))
        self.next_mark = 0.0
        self.interval_ends = 0.0
        self.seen_in_interval = 0
        self._pending: asyncio.Task[None] | None = None

    def seen(self, path: str) -> None:
        if path in UNMARKED_PATHS:
            return
        now = self.clock()
        if now >= self.interval_ends:
            self.interval_ends, self.seen_in_interval = now + MARK_INTERVAL, 0
        self.seen_in_interval += 1
        if self.seen_in_interval < self.per_interval or now < self.next_mark:
            return
        if self._pending is not None and not self._pending.done():
            return
        self.next_mark = now + MARK_INTERVAL
        self._pending = asyncio.get_running_loop().create_task(self._mark())

    async def _mark(self) -> None:
        try:
            await self.redis.set(BUSY_KEY, b"1", px=BUSY_HOLD_MS)
        except REDIS_ERRORS:
            pass  # no mark: a send goes at full speed, as before

    async def aclose(self) -> None:
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
        await self.redis.aclose()


class SendPacer:
    """The sending side: whether the API is busy, and the rest after a batch sent while it was."""

    def __init__(self, redis: Any, share: float, max_rest: float, *, own: bool = False) -> None:
        self.redis = redis
        self.share = share
        self.max_rest = max_rest
        self._own = own  # a client of its own, closed with the pacer

    async def api_busy(self) -> bool:
        try:
            return bool(await self.redis.exists(BUSY_KEY))
        except REDIS_ERRORS:
            return False  # Redis away: no signal, full speed

    async def rest(self, worked: float) -> None:
        """After `worked` seconds of sending while the API was busy: the rest of the duty cycle (at most max_rest,
        below the run's lease), cut short once the API is quiet."""
        remaining = min(worked * (1 - self.share) / self.share, self.max_rest)
        while remaining > 0:
            step = min(remaining, REST_CHECK_SECONDS)
            await asyncio.sleep(step)
            remaining -= step
            if remaining > 0 and not await self.api_busy():
                return

    async def aclose(self) -> None:
        if self._own:
            await self.redis.aclose()


def pacer_of(ctx: dict[str, Any]) -> SendPacer | None:
    """The run's pacer, on the worker's Redis (or a client of its own when run outside arq); None when pacing is
    off (SEND_SHARE_WHEN_API_BUSY=1) or there is no Redis to carry the signal."""
    settings = worker_context(ctx).settings
    share = settings.send_share_when_api_busy
    if share >= 1 or (ctx.get("redis") is None and settings.redis_url is None):
        return None
    redis, own = (ctx["redis"], False) if ctx.get("redis") is not None else (Redis.from_url(settings.redis_url), True)
    # Rests stay well inside the run's lease, which the sending loop renews between batches.
    return SendPacer(redis, share, max_rest=settings.run_lease_seconds / 5, own=own)
