"""Open-pixel throughput vs a plain Starlette route inserting one row (issue 7: >= 0.7 of its requests/s).

Herald's `GET /t/o/{token}` (token verified, one `INSERT … SELECT` from the delivery, the 43-byte GIF, the full
middleware stack) under `herald serve`, against `reference_app` below: the same GIF after one plain `INSERT`
of a tracking_event row with constant values through Tortoise's connection — no token, no lookup. Both are
one uvicorn process on the same database with the same pool size and no access log; the load comes from
`bench.loadgen` in another process, rounds alternate, the medians count.

    BENCH_DELIVERY_ID=… DATABASE_URL=postgres://… uvicorn bench.tracking:reference_app --no-access-log
"""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tortoise import connections
from tortoise.contrib.starlette import RegisterTortoise

from bench.common import (
    SERVER_CPU,
    Result,
    dsn_for,
    free_port,
    herald_serve,
    pinned,
    process,
    run_async,
    server_env,
)
from bench.graphql_read import CONNECTIONS, DURATION, ROUNDS, load

TARGET = 0.7
_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
_INSERT = (
    "INSERT INTO tracking_event (sandbox_id, campaign_id, run_id, delivery_id, profile_id, kind, link_id, "
    "user_agent, dedupe_key, created_at) VALUES ($1, $2, $3, $4, $5, 'OPEN', NULL, $6, NULL, $7)"
)


# ---- the reference ------------------------------------------------------------------------------------------


async def _reference_open(request: Request) -> Response:
    ids = request.app.state.ids
    await connections.get("default").execute_query(
        _INSERT, [*ids, request.headers.get("user-agent"), datetime.now(UTC)]
    )
    return Response(_GIF, media_type="image/gif", headers={"Cache-Control": "no-store"})


async def _healthz(request: Request) -> Response:
    return Response(b"ok")


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    from api.settings import tortoise_config

    pool = int(os.environ.get("DB_POOL_MAX", "20"))  # Herald's default
    async with RegisterTortoise(app, config=tortoise_config(os.environ["DATABASE_URL"], pool)):
        rows = await connections.get("default").execute_query_dict(
            "SELECT sandbox_id, campaign_id, run_id, id, profile_id FROM delivery WHERE id = $1",
            [int(os.environ["BENCH_DELIVERY_ID"])],
        )
        row = rows[0]
        app.state.ids = [row["sandbox_id"], row["campaign_id"], row["run_id"], row["id"], row["profile_id"]]
        yield


reference_app = Starlette(
    routes=[Route("/o/{token}", _reference_open), Route("/healthz", _healthz)], lifespan=_lifespan
)


# ---- the run ------------------------------------------------------------------------------------------------


async def _one_delivery(database: str, seeded: dict) -> int:
    """A sent delivery of one of the seeded runs, for the pixel to name."""
    from tortoise import Tortoise

    from api.settings import tortoise_config
    from models.audience.entities import Profile
    from models.campaigns.campaign import CampaignRun
    from models.ledger.delivery import Delivery, DeliveryStatus

    await Tortoise.init(config=tortoise_config(dsn_for(database), 2))
    try:
        run = await CampaignRun.filter(sandbox_id=seeded["sandbox_id"]).order_by("id").first()
        profile = await Profile.create(sandbox_id=run.sandbox_id, attributes={})
        now = datetime.now(UTC)
        delivery = await Delivery.create(
            sandbox_id=run.sandbox_id, run_id=run.id, campaign_id=run.campaign_id, profile_id=profile.id,
            status=DeliveryStatus.SENT, address="bench@example.com", idempotency_key=f"{run.id}-{profile.id}",
            created_at=now, updated_at=now,
        )  # fmt: skip
        return delivery.id
    finally:
        await Tortoise.close_connections()


async def _open_events(database: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn_for(database))
    try:
        return int(await conn.fetchval("SELECT COUNT(*) FROM tracking_event WHERE kind = 'OPEN'"))
    finally:
        await conn.close()


def run(database: str, seeded: dict) -> Result:
    from models.reporting.tracking_tokens import TokenPurpose, TokenSigner

    secret = secrets.token_urlsafe(48)
    delivery_id = run_async(_one_delivery(database, seeded))
    token = TokenSigner(secret).sign(TokenPurpose.OPEN, delivery_id)
    ref_port, herald_port = free_port(), free_port()
    ref_env = server_env(database, BENCH_DELIVERY_ID=str(delivery_id))
    ref_cmd = pinned([sys.executable, "-m", "uvicorn", "bench.tracking:reference_app", "--host", "127.0.0.1",
                      "--port", str(ref_port), "--no-access-log", "--log-level", "warning", "--no-server-header"],
                     SERVER_CPU)  # fmt: skip
    headers = ["User-Agent: Mozilla/5.0 (bench) MailClient/1.0"]
    with (
        process(ref_cmd, ref_env, ready_url=f"http://127.0.0.1:{ref_port}/healthz") as ref_server,
        herald_serve(database, herald_port, ("SECRET_KEY", secret), cpu=SERVER_CPU) as herald_server,
    ):
        ref_runs, herald_runs = [], []
        for round_no in range(ROUNDS):
            order = ["ref", "herald"] if round_no % 2 == 0 else ["herald", "ref"]
            for which in order:
                if which == "ref":
                    ref_runs.append(load(ref_port, f"/o/{token}", "GET", None, headers, ref_server.pid))
                else:
                    herald_runs.append(load(herald_port, f"/t/o/{token}", "GET", None, headers, herald_server.pid))
    for runs, name in ((ref_runs, "reference"), (herald_runs, "herald")):
        for r in runs:
            if r["errors"]:
                raise RuntimeError(f"{name}: {r['errors']} failed requests, first: {r.get('first_error')}")
    recorded = run_async(_open_events(database))
    served = sum(r["requests"] for r in ref_runs + herald_runs)
    if recorded < served:  # every answered request (warm-up ones too) wrote its row
        raise RuntimeError(f"{served} opens answered but only {recorded} rows written")
    herald_rps = statistics.median(r["rps"] for r in herald_runs)
    ref_rps = statistics.median(r["rps"] for r in ref_runs)
    p99 = statistics.median(r["p99_ms"] for r in herald_runs)
    herald_cpu = statistics.median(r["cpu_ms"] for r in herald_runs)
    ref_cpu = statistics.median(r["cpu_ms"] for r in ref_runs)
    return Result(
        "tracking_open", "req/s", herald_rps, ref_rps, f">= {TARGET}", herald_rps / ref_rps >= TARGET,
        f"p99 {p99:.1f} ms at {CONNECTIONS} connections, {DURATION:.0f} s x {ROUNDS} rounds; server CPU per "
        f"request {herald_cpu:.2f} ms (reference {ref_cpu:.2f} ms, ratio {ref_cpu / herald_cpu:.2f}); "
        f"rounds herald {[round(r['rps']) for r in herald_runs]} ref {[round(r['rps']) for r in ref_runs]}",
    )  # fmt: skip
