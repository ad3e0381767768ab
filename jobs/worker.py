"""arq worker: `herald worker` runs it as its own process; `herald serve` on embedded defaults runs it in-process."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from arq.connections import RedisSettings, create_pool
from arq.worker import Worker, func
from tortoise import Tortoise

from api.settings import Settings, tortoise_config
from jobs.context import CONTEXT_KEY, WorkerContext
from jobs.diagnostics import worker_ping
from jobs.dispatcher import DISPATCH_CRON, quiet_dispatch_logs
from jobs.imports import import_profiles_job
from jobs.metrics import JOBS_FINISHED, JOBS_STARTED
from jobs.outbox_relay import OutboxRelay
from jobs.presets import validate_preset
from jobs.proofs import send_proof
from jobs.redis_retry import REDIS_ERRORS, Outage, retry_redis
from jobs.runs import execute_run, send_run_part, send_triggers
from jobs.webhooks import WEBHOOK_CRON

logger = logging.getLogger(__name__)

# A run job may send for hours (a throttled run has up to 12 h): arq's default 300 s timeout would cancel it
# mid-batch every 5 minutes, and each cancellation sends that batch's messages again after the lease.
RUN_JOB_TIMEOUT = 13 * 3600
FUNCTIONS = [
    worker_ping,
    validate_preset,
    import_profiles_job,
    # No result kept: a run job that failed (its claim cut off from the database) would otherwise block the
    # run's fixed job id for an hour, and the dispatcher could not enqueue the still PENDING run again.
    func(execute_run, timeout=RUN_JOB_TIMEOUT, keep_result=0),
    # A part comes back (Retry) while its worker process already sends for the run, until the run is over.
    func(send_run_part, timeout=RUN_JOB_TIMEOUT, max_tries=1_000_000),
    func(send_triggers, timeout=RUN_JOB_TIMEOUT, keep_result=0),
    send_proof,
]
CRON_JOBS = [DISPATCH_CRON, WEBHOOK_CRON]


async def _on_job_start(ctx: dict[str, Any]) -> None:
    JOBS_STARTED.labels(function=ctx.get("job_name", "unknown")).inc()


async def _after_job_end(ctx: dict[str, Any]) -> None:
    JOBS_FINISHED.labels(function=ctx.get("job_name", "unknown")).inc()


class ResilientWorker(Worker):
    """An arq worker that outlives a Redis outage.

    arq lets a failed poll (Redis restarted or unreachable) end the worker process, cancelling the jobs in
    flight. Here the poll is retried with backoff while running jobs carry on: their state is in the database,
    and the dispatcher re-enqueues what Redis lost once it is back. Every Redis call of arq's loop runs inside
    `_poll_iteration` (queue read, job start, abort check, a finished job's bookkeeping re-raised by
    `t.result()`, health record, cron enqueue), so catching there covers them all.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outage = Outage("worker poll", logger)

    async def main(self) -> None:
        if self._pool is None:
            # A worker started before Redis (or during a restart) waits for it rather than exit.
            self._pool = await retry_redis(
                self._outage,
                create_pool,
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        await super().main()

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_ERRORS as exc:
            await asyncio.sleep(self._outage.failed(exc))
        else:
            self._outage.succeeded()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # arq counts a job as started (semaphore taken, job_counter + 1) before its WATCH/MULTI; a Redis error
        # there would leak both, and after max_jobs leaks the worker would never pick a job again.
        for job_id in job_ids:
            if self.job_counter >= self.max_jobs:
                return  # as arq's own loop: the rest waits for the next poll
            try:
                await super().start_jobs([job_id])
            except REDIS_ERRORS:
                self.job_counter -= 1
                self.sem.release()
                raise


def lower_priority(settings: Settings) -> None:
    """For a worker process of its own: a run's sending loops then give way to web processes sharing the cores
    (a read during a send waited behind them), and still take every cycle nobody else wants. Never inside
    `herald serve`: that would slow the web process itself."""
    if settings.worker_nice:
        os.nice(settings.worker_nice)


T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Runs a worker process's event loop: uvloop where it is installed (uvicorn's `standard` extra brings it, and
    `herald serve` runs its in-process worker on it), so both processes send on one loop. Against asyncio's own:
    0.23 ms of the email_run worker's CPU per message instead of 0.27."""
    try:
        import uvloop
    except ImportError:  # a platform uvloop does not build on
        return asyncio.run(main)
    return uvloop.run(main)


def freeze_startup_heap() -> None:
    """Takes what start-up allocated (modules, ORM metadata) out of the cyclic collector's view: its full
    collections walked that whole heap again and again while a run sent (4-6% of the email_run worker's CPU).
    Only for a worker process of its own, once it is initialised."""
    gc.collect()
    gc.freeze()


def build_worker(settings: Settings, *, in_process: bool = False, burst: bool = False) -> Worker:
    """`in_process=True` inside the web app: Tortoise is already initialised and signals belong to uvicorn."""
    orm_config = None if in_process else tortoise_config(settings.resolved_database_url, settings.db_pool_max)
    quiet_dispatch_logs()

    async def on_startup(ctx: dict[str, Any]) -> None:
        if orm_config is not None:
            await Tortoise.init(config=orm_config)
        ctx[CONTEXT_KEY] = WorkerContext(settings)
        if not in_process:  # in `herald serve` the app's lifespan runs the process's relay
            ctx["outbox_relay"] = OutboxRelay(ctx["redis"], retention=timedelta(hours=settings.outbox_retention_hours))
            ctx["outbox_relay"].start()
            freeze_startup_heap()

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if ctx.get("outbox_relay") is not None:
            await ctx["outbox_relay"].stop()
        if orm_config is not None:
            await Tortoise.close_connections()

    return ResilientWorker(
        functions=FUNCTIONS,
        cron_jobs=CRON_JOBS,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        on_job_start=_on_job_start,
        after_job_end=_after_job_end,
        max_jobs=settings.worker_max_jobs,
        poll_delay=settings.worker_poll_delay_seconds,
        handle_signals=not in_process,
        burst=burst,
    )


class WorkerSettings:
    """For `arq jobs.worker.WorkerSettings`; `herald worker` is the supported entry point."""

    functions = FUNCTIONS
    cron_jobs = CRON_JOBS
    redis_settings = RedisSettings.from_dsn(Settings().redis_url or "redis://127.0.0.1:6379")
    on_job_start = _on_job_start
    after_job_end = _after_job_end

    @staticmethod
    async def on_startup(ctx: dict[str, Any]) -> None:
        settings = Settings()
        await Tortoise.init(config=tortoise_config(settings.resolved_database_url, settings.db_pool_max))
        ctx[CONTEXT_KEY] = WorkerContext(settings)

    @staticmethod
    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await Tortoise.close_connections()
