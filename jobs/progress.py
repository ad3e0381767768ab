"""A run's progress events: counts, rate and ETA, published best effort between the outbox's final event."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from jobs.events import publish
from jobs.redis_retry import REDIS_ERRORS, Outage
from models.campaigns.campaign import CampaignRun, RunStatus
from models.ledger.counts import Counts, counter_values
from models.ledger.delivery import DeliveryStatus
from models.ledger.waves import progress_waves
from models.outbox.payloads import CAMPAIGN_RUN_PROGRESS_TOPIC, RunProgress, envelope

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.25  # seconds between progress events of one run
# Seconds between two counts of a run's ledger per second the last count took: counting stops the sending, so it
# takes at most 1/13 of a run's time (at 4, a fifth: at 1,000,000 rows ~0.3-1 s a count, 10 s of an in-app run).
COUNT_SPACING = 12
# A count's seconds per ledger row (0.3-1 s at 1,000,000): spaces the first count after counts the snapshot gave.
COUNT_SECONDS_PER_ROW = 1e-6


def _now() -> datetime:
    return datetime.now(UTC)


_progress_outage = Outage("run progress ticks", logger)  # one WARNING per outage, not one per tick


class Progress:
    """Publishes a run's counts, rate and ETA, at most every PROGRESS_INTERVAL seconds unless forced."""

    def __init__(self, redis: Any, run: CampaignRun) -> None:
        self.redis = redis
        self.run = run
        self.started = time.monotonic()
        self.last = 0.0
        self.done_at_start: int | None = None
        self.next_count = 0.0
        self._counting: asyncio.Task[None] | None = None

    def counting_due(self) -> bool:
        """Counting the ledger scans all the run's rows: at most every PROGRESS_INTERVAL, and for at most 1/13 of the
        time (COUNT_SPACING; per batch, a 1,000,000-row run spent most of its time counting)."""
        return time.monotonic() >= self.next_count and (self._counting is None or self._counting.done())

    def count_beside(self, count: Callable[[], Awaitable[None]]) -> None:
        """`count` (the sending loop's count of the ledger, which calls `counted`) in a task of its own while the
        next batch is sent: counted between two batches, a 1,000,000-row email run's counts (0.2 s each) left every
        connection idle for 7% of its time. `settle`d before a run's final figures: by `stopped` and `pause_sending`,
        which the loop calls, and by the loop's `finally` before `finish_if_done`."""
        self._counting = asyncio.create_task(self._best_effort(count))

    async def _best_effort(self, count: Callable[[], Awaitable[None]]) -> None:
        started = time.monotonic()
        try:
            await count()
        except Exception:  # figures between batches are best effort; the run's end counts again
            logger.warning("could not count run %s's ledger", self.run.id, exc_info=True)
            self.counted(started)

    async def settle(self) -> None:
        """Waits for a count in flight (`count_beside`), whose figures must not land after the run's last ones."""
        counting, self._counting = self._counting, None
        if counting is not None:
            await counting  # never raises: _best_effort logs what failed

    def counted(self, started: float, share: float = 1.0) -> None:
        """`share`: of the time the sender may work (jobs/send_pacing.py, below 1 while the API is busy): a count,
        one long statement, then takes that share of COUNT_SPACING's part too."""
        now = time.monotonic()
        self.next_count = now + max(PROGRESS_INTERVAL, COUNT_SPACING / share * (now - started))

    def counted_rows(self, rows: int) -> None:
        """Counts of `rows` ledger rows were just had without a count (the snapshot's): the next count is due as
        if a count of that many rows had been taken."""
        self.next_count = time.monotonic() + max(PROGRESS_INTERVAL, COUNT_SPACING * rows * COUNT_SECONDS_PER_ROW)

    def event(
        self, counts: Counts, status: RunStatus, *, final: bool = False, pause_reason: str | None = None
    ) -> RunProgress:
        now = time.monotonic()
        done = counts.of(
            DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.BOUNCED,
            DeliveryStatus.CANCELLED,
        )  # fmt: skip
        if self.done_at_start is None:
            self.done_at_start = done
        elapsed = max(now - self.started, 1e-6)
        rate = (done - self.done_at_start) / elapsed
        return RunProgress(
            campaign_id=self.run.campaign_id,
            run_id=self.run.id,
            status=status.value,
            **counter_values(counts.figures),
            last_error_reason=counts.last_error_reason,
            last_error_count=counts.last_error_count,
            resent=counts.resent,
            rate_per_second=round(rate, 2),
            eta_seconds=round(counts.pending / rate, 1) if rate > 0 and counts.pending else None,
            at=_now(),
            final=final,
            pause_reason=pause_reason,
            waves=progress_waves(counts.waves),
        )

    async def publish(self, counts: Counts, status: RunStatus, *, force: bool = False) -> None:
        """A progress tick, published directly and best effort (lost if Redis is away): the next tick replaces
        it. The run's final event goes through the outbox instead (`event(..., final=True)` to `runs.finish`)."""
        now = time.monotonic()
        if self.redis is None or (not force and now - self.last < PROGRESS_INTERVAL):
            return
        self.last = now
        payload = envelope(None, self.event(counts, status).to_json())
        try:
            # Several jobs may send for the run: one publish per interval for all of them.
            interval_ms = int(PROGRESS_INTERVAL * 1000)
            if not force and not await self.redis.set(f"herald:progress:run:{self.run.id}", 1, nx=True, px=interval_ms):
                return
            await publish(self.redis, self.run.sandbox_id, CAMPAIGN_RUN_PROGRESS_TOPIC, payload)
        except REDIS_ERRORS as exc:  # best effort, not retried: the next tick replaces this one
            _progress_outage.failed(exc)
        except Exception:  # progress is best effort: never fail a run over it
            logger.warning("could not publish run progress", exc_info=True)
        else:
            _progress_outage.succeeded()
