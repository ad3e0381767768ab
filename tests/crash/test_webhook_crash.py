"""Webhooks survive a worker killed with SIGKILL during a burst of outbox events (10,000 for the issue): every
event reaches the receiver (by webhook-id), each delivery ends SUCCEEDED, none is lost. Real `herald worker` processes,
PostgreSQL (leases taken over across processes)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobs.webhooks import seal_secret
from models.presets.secret_box import SecretBox
from models.webhooks.rules import new_secret
from tests.conftest import TEST_DB, TEST_SECRET
from tests.crash.harness import Herald
from tests.e2e.polling import wait_until

# 10,000 for the figure (WEBHOOK_CRASH_EVENTS=10000: ~5 min here); CI runs a burst big enough to be
# killed in the middle of.
EVENTS = int(os.environ.get("WEBHOOK_CRASH_EVENTS", "2000"))

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="needs PostgreSQL (worker processes sharing leases)")


class Receiver:
    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.ids: set[str] = set()
        self.requests = 0
        self.bad_signatures = 0

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.requests += 1
        try:
            self.webhook.verify(body, dict(request.headers))
        except Exception:
            self.bad_signatures += 1
            return Response(status_code=400)
        self.ids.add(request.headers["webhook-id"])
        return Response(status_code=204)


@pytest.fixture
async def receiver_url() -> AsyncIterator[tuple[Receiver, str, str]]:
    secret = new_secret()
    state = Receiver(secret)
    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    app = Starlette(routes=[Route("/hook", state.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield state, f"http://127.0.0.1:{sock.getsockname()[1]}/hook", secret
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_a_worker_killed_during_a_burst_of_events_loses_none(
    herald: Herald,
    receiver_url: tuple[Receiver, str, str],
) -> None:
    receiver, url, secret = receiver_url
    db = herald.db
    sandbox_id = await db.fetchval(
        "INSERT INTO sandbox (name, created_at) VALUES ('webhook-burst', now()) RETURNING id"
    )
    await db.execute(
        "INSERT INTO webhook_endpoint (sandbox_id, url, events, secret_sealed, enabled, max_in_flight, "
        "rate_per_second, created_at, updated_at) VALUES ($1, $2, '[\"campaign.status_changed\"]', $3, true, 50, "
        "1000, now(), now())",
        sandbox_id,
        url,
        seal_secret(SecretBox(TEST_SECRET), secret, sandbox_id=sandbox_id),
    )
    # The burst: EVENTS committed events at once, as if from as many campaign changes.
    await db.execute(
        "INSERT INTO outbox_event (sandbox_id, topic, payload, created_at) SELECT $1, 'campaign.status', "
        "jsonb_build_object('campaignId', n, 'status', 'LIVE', 'previousStatus', 'DRAFT', 'version', 2, "
        "'at', now()::text, 'actor', null), now() FROM generate_series(1, $2) AS n",
        sandbox_id,
        EVENTS,
    )
    env = {"WEBHOOK_LEASE_SECONDS": "15", "WEBHOOK_TIMEOUT_SECONDS": "5"}
    first = herald.worker(**env)
    await wait_until(lambda: len(receiver.ids) >= EVENTS // 5, timeout=180)
    first.kill9()
    at_kill = len(receiver.ids)
    herald.worker(**env)
    await wait_until(lambda: len(receiver.ids) >= EVENTS, timeout=1200)

    async def all_succeeded() -> bool:
        pending = await db.fetchval(
            "SELECT count(*) FROM webhook_delivery d JOIN webhook_endpoint e ON e.id = d.endpoint_id "
            "WHERE e.sandbox_id = $1 AND d.status <> 'SUCCEEDED'",
            sandbox_id,
        )
        return pending == 0

    await wait_until(all_succeeded, timeout=60)
    made = await db.fetchval("SELECT count(*) FROM webhook_delivery WHERE sandbox_id = $1", sandbox_id)
    assert made == EVENTS  # one delivery per event: the fan-out lost none and made none twice
    assert len(receiver.ids) == EVENTS and receiver.bad_signatures == 0
    assert at_kill < EVENTS
    print(f"webhook burst: {EVENTS} events, killed at {at_kill}, {receiver.requests} requests (duplicates by id: "
          f"{receiver.requests - EVENTS})")  # fmt: skip
