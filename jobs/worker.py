"""arq worker: `herald worker` runs it as its own process; `herald serve` on embedded defaults runs it in-process."""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker
from tortoise import Tortoise

from api.settings import Settings, tortoise_config
from jobs.diagnostics import worker_ping
from jobs.dispatcher import DISPATCH_CRON
from jobs.imports import import_profiles_job
from jobs.metrics import JOBS_FINISHED, JOBS_STARTED
from jobs.presets import validate_preset
from jobs.proofs import send_proof
from jobs.runs import execute_run

logger = logging.getLogger(__name__)

FUNCTIONS = [worker_ping, validate_preset, import_profiles_job, execute_run, send_proof]
CRON_JOBS = [DISPATCH_CRON]


async def _on_job_start(ctx: dict[str, Any]) -> None:
    JOBS_STARTED.labels(function=ctx.get("job_name", "unknown")).inc()


async def _after_job_end(ctx: dict[str, Any]) -> None:
    JOBS_FINISHED.labels(function=ctx.get("job_name", "unknown")).inc()


def build_worker(settings: Settings, *, in_process: bool = False, burst: bool = False) -> Worker:
    """`in_process=True` inside the web app: Tortoise is already initialised and signals belong to uvicorn."""
    orm_config = None if in_process else tortoise_config(settings.resolved_database_url, settings.db_pool_max)

    async def on_startup(ctx: dict[str, Any]) -> None:
        if orm_config is not None:
            await Tortoise.init(config=orm_config)
        ctx["settings"] = settings

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if orm_config is not None:
            await Tortoise.close_connections()

    return Worker(
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

    @staticmethod
    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await Tortoise.close_connections()
