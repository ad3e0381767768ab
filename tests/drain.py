"""Queued work run to completion on demand, so a test knows when it is done (no worker runs beside the tests).

`drain_jobs(settings, redis)` runs the jobs due now in rounds: each round an arq burst worker over the same Redis
and functions as `herald worker` starts exactly the jobs due at the round's start and waits for them; jobs those
enqueue run in the next round. It returns when nothing is due. Deferred jobs (retries, a run's next attempt) stay
deferred unless `until` says they are due: every job due by then is moved to now first. `dispatch_at` runs the
dispatcher (jobs/dispatcher.py) at that time before each round, as its cron would. `clock` is the run executor's
"now" (WorkerContext.clock) for tests that drive time: rows due later are sent once the clock reaches them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis
from arq.constants import default_queue_name, in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker

from api.settings import Settings
from jobs.context import CONTEXT_KEY, WorkerContext
from jobs.dispatcher import dispatch
from jobs.worker import FUNCTIONS

HELD_DEADLINE = 30.0
MAX_ROUNDS = 200


class TestWorker(Worker):
    """A worker running beside the test (the `worker` fixture, for requests that wait on a job's result) that
    drain_jobs can pause: while a drain runs, only the drain's round workers take jobs. Otherwise this worker could
    take a due job a round counted on, and arq's burst mode would poll for it forever while a retry sat deferred in
    the queue."""

    __test__ = False  # not a pytest class

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.polling = asyncio.Lock()

    async def _poll_iteration(self) -> None:
        async with self.polling:
            await super()._poll_iteration()

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Takes no new job inside the block; the jobs it had started have finished when the block begins."""
        self.allow_pick_jobs = False
        try:
            async with self.polling:  # a poll that read job ids before the flag changed has started them
                pass
            await asyncio.gather(*self.tasks.values())
            yield
        finally:
            self.allow_pick_jobs = True


# The test's own running workers, paused by every drain.
RUNNING_TEST_WORKERS: set[TestWorker] = set()


@dataclass
class Drained:
    rounds: int = 0
    complete: int = 0
    failed: int = 0
    retried: int = 0
    # Job ids still deferred to a later time (a retry not yet due).
    deferred: list[str] = field(default_factory=list)


async def make_due(redis: ArqRedis, until: datetime) -> int:
    """Moves the jobs deferred to at most `until` to now; returns how many."""
    now = timestamp_ms()
    later = await redis.zrangebyscore(default_queue_name, now, int(until.timestamp() * 1000))
    if later:
        await redis.zadd(default_queue_name, dict.fromkeys(later, now))
    return len(later)


async def _held_elsewhere(redis: ArqRedis, due_ids: list[bytes], deadline: float = HELD_DEADLINE) -> bool:
    """Whether some due jobs were held by another worker: waits for that worker to finish them (a test that runs
    its own worker, e.g. for proofs, may have it pick one up first). A holder that never finishes is an error:
    arq skips a job another worker holds, so draining would never end."""
    held = [j.decode() for j in due_ids if await redis.exists(in_progress_key_prefix + j.decode())]
    if not held:
        return False
    stop = time.monotonic() + deadline
    while any([await redis.exists(in_progress_key_prefix + j) for j in held]):
        if time.monotonic() > stop:
            raise AssertionError(f"jobs marked in progress by a worker that is gone or stuck: {held}")
        await asyncio.sleep(0.01)
    return True


async def drain_jobs(
    settings: Settings,
    redis: ArqRedis,
    *,
    until: datetime | None = None,
    dispatch_at: datetime | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Drained:
    async with contextlib.AsyncExitStack() as paused:
        for running in list(RUNNING_TEST_WORKERS):
            await paused.enter_async_context(running.paused())
        return await _drain(settings, redis, until=until, dispatch_at=dispatch_at, clock=clock)


async def _drain(
    settings: Settings,
    redis: ArqRedis,
    *,
    until: datetime | None = None,
    dispatch_at: datetime | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Drained:
    drained = Drained()
    if clock is None and dispatch_at is not None:
        # The dispatcher and the executor see the same time: a run the dispatcher resumes at `dispatch_at` is
        # sent as of then (its retries due, its lease counted from then), not by the wall clock, or it would be
        # resumed again at every round (its lease, renewed by the wall clock, long expired at `dispatch_at`).
        clock = lambda: dispatch_at  # noqa: E731

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx[CONTEXT_KEY] = WorkerContext(settings) if clock is None else WorkerContext(settings, clock=clock)

    for _ in range(MAX_ROUNDS):
        if dispatch_at is not None:
            last_report = await dispatch(dispatch_at, redis)
        if until is not None:
            await make_due(redis, until)
        due_ids = await redis.zrangebyscore(default_queue_name, "-inf", timestamp_ms())
        due = len(due_ids)
        if await _held_elsewhere(redis, due_ids):
            continue  # the test's own running worker (the `worker` fixture) finished them: look again
        if due == 0:
            later = await redis.zrangebyscore(default_queue_name, "-inf", "+inf")
            drained.deferred = [job_id.decode() for job_id in later]
            return drained
        # max_burst_jobs=due: the worker stops once it has started (and finished) this round's jobs, rather
        # than waiting for deferred ones as arq's burst mode does while the queue holds any.
        worker = Worker(
            functions=FUNCTIONS,
            redis_pool=redis,
            burst=True,
            max_burst_jobs=due,
            max_jobs=max(due, settings.worker_max_jobs),
            handle_signals=False,
            on_startup=on_startup,
            poll_delay=0.01,
            log_results=False,
        )
        await worker.async_run()
        drained.rounds += 1
        drained.complete += worker.jobs_complete
        drained.failed += worker.jobs_failed
        drained.retried += worker.jobs_retried
    still = [j.decode() for j in await redis.zrangebyscore(default_queue_name, "-inf", timestamp_ms())]
    raise AssertionError(
        f"jobs still due after {MAX_ROUNDS} rounds (a job re-enqueues itself without end): {still}; "
        f"the last dispatch: {locals().get('last_report')}"
    )
