"""`create_app(settings)`: the Starlette application, its lifespan and its routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from tortoise.contrib.starlette import RegisterTortoise

from api.compiled_front import CompiledReadFront, CompiledReads
from api.exports import export_run_deliveries
from api.feedback import ROUTES as FEEDBACK_ROUTES
from api.graphiql import ASSETS_ROUTE, serve_asset
from api.graphql import HeraldGraphQL
from api.health import healthz, metrics, readyz
from api.imports import upload_profiles
from api.loop_probe import start_probe
from api.middleware import (
    ApiBusyMiddleware,
    BodySizeLimitMiddleware,
    HeraldCORSMiddleware,
    MetricsMiddleware,
    RequestIdMiddleware,
    cors_middleware,
)
from api.migrate import ensure_migrated
from api.ratelimit import CostBudget
from api.settings import Settings, tortoise_config
from api.tracking import ROUTES as TRACKING_ROUTES
from api.triggers import create_trigger
from api.webhooks import ROUTES as WEBHOOK_ROUTES
from api.webhooks import WEBHOOK_MAX_BODY_BYTES
from jobs.events import EventBus
from jobs.outbox_relay import OutboxRelay
from jobs.queue import JobQueue
from jobs.send_pacing import BusyMark
from jobs.worker import build_worker
from models.reporting.tracking_tokens import TokenSigner
from resolvers.schema import SchemaOptions, build_schema

logger = logging.getLogger(__name__)


def create_app(settings: Settings) -> Starlette:
    settings.check_secure()
    if settings.redis_url is None:
        raise ValueError("create_app needs settings.redis_url; `herald serve` starts an embedded Redis and sets it")
    schema = build_schema(
        SchemaOptions(
            max_depth=settings.graphql_max_depth,
            max_tokens=settings.graphql_max_tokens,
            max_aliases=settings.graphql_max_aliases,
            max_complexity=settings.graphql_max_complexity,
            max_page_size=settings.graphql_max_page_size,
            introspection=settings.introspection_enabled,
            planned_execution=settings.graphql_planned_execution,
        )
    )
    graphql_app = HeraldGraphQL(schema, settings)
    if settings.graphql_compiled_reads and schema.planned_execution:
        graphql_app.compiled_reads = CompiledReads(graphql_app, settings.persisted_query_cache_size)
    # Its own client (connecting on first use), so the limit holds even for an app served without lifespan.
    graphql_app.cost_budget = CostBudget(
        Redis.from_url(settings.redis_url), settings.cost_budget_maximum, settings.cost_restore_rate
    )
    busy_mark = BusyMark(settings.redis_url, settings.api_busy_requests_per_second)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with RegisterTortoise(app, config=tortoise_config(settings.resolved_database_url, settings.db_pool_max)):
            await ensure_migrated()
            redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
            events = EventBus(redis)
            app.state.redis = redis
            graphql_app.queue = JobQueue(redis)
            app.state.queue = graphql_app.queue
            graphql_app.events = events
            relay = OutboxRelay(redis, retention=timedelta(hours=settings.outbox_retention_hours))
            relay.start()
            app.state.events = events
            probe = start_probe()
            worker_task = None
            worker = None
            if settings.worker_in_process:
                worker = build_worker(settings, in_process=True)
                worker_task = asyncio.create_task(worker.async_run(), name="in-process-worker")
            # Everything built so far (schema, models, pools) lives as long as the process: keeping it out of
            # the cyclic GC's full collections cut the CPU of a small request by a fifth (bench/tracking.py).
            gc.freeze()
            try:
                yield
            finally:
                if worker is not None and worker_task is not None:
                    await worker.close()
                    worker_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker_task
                if probe is not None:
                    probe.cancel()
                await relay.stop()
                await events.close()
                await redis.aclose()
                await graphql_app.cost_budget.aclose()
                await busy_mark.aclose()

    app = Starlette(
        routes=[
            # Opens and clicks outnumber every other request: matched first.
            *TRACKING_ROUTES,
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
            Route("/graphql/schema.graphql", graphql_app.schema_sdl, methods=["GET"]),
            Route(ASSETS_ROUTE + "/{name}", serve_asset, methods=["GET"]),
            WebSocketRoute("/graphql", graphql_app),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/imports/profiles", upload_profiles, methods=["POST"]),
            Route("/exports/runs/{run_id}/deliveries.csv", export_run_deliveries, methods=["GET"]),
            Route("/campaigns/{campaign_id}/triggers", create_trigger, methods=["POST"]),
            *WEBHOOK_ROUTES,
            *FEEDBACK_ROUTES,
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.graphql_app = graphql_app  # tests drive its cost budget's clock
    app.state.busy_mark = busy_mark
    app.state.token_signer = TokenSigner(settings.secret_key.get_secret_value())
    app.add_middleware(
        BodySizeLimitMiddleware,
        limits={"/graphql": settings.graphql_max_body_bytes, "/webhooks/": WEBHOOK_MAX_BODY_BYTES},
    )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    if graphql_app.compiled_reads is not None:
        # In front of the middleware stack and the router: it does their share for the requests it answers.
        app.add_middleware(CompiledReadFront, graphql_app=graphql_app)
    # In front of the compiled reads too: every request tells a run's sender that someone waits for an answer.
    app.add_middleware(ApiBusyMiddleware, mark=busy_mark)
    if settings.allowed_origins:
        # Outermost: every answer, a 401 or a 413 included, carries the CORS headers a browser needs to read it.
        app.add_middleware(HeraldCORSMiddleware, **cors_middleware(settings.allowed_origins))
    return app
