"""An endpoint's limits hold across workers: the claim counts every worker's in-flight leases and spends one
shared rate bucket, under a lock on the endpoint's row."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobs.webhooks import send_due
from models.webhooks.model import WebhookDelivery, WebhookEndpoint
from models.webhooks.rules import new_secret, rate_tokens
from tests.conftest import RunningServer
from tests.jobs.fan_out_drain import drain_fan_out
from tests.jobs.test_webhooks import BOX, LOOPBACK, _endpoint, _status_event

T0 = datetime(2031, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tokens", "seconds_since", "rate", "expected"),
    [
        (None, 0, 10.0, 20.0),  # a new endpoint: a full bucket, RATE_BURST_SECONDS of its rate
        (0.0, 1, 10.0, 10.0),
        (0.0, 5, 10.0, 20.0),  # never more than the burst
        (1.5, 0, 10.0, 1.5),
        (0.0, -30, 10.0, 0.0),  # a clock that went back refills nothing
        (None, 0, 0.1, 1.0),  # a slow endpoint still gets one request
        (0.0, 5, 0.1, 0.5),
    ],
)
def test_rate_bucket(tokens: float | None, seconds_since: float, rate: float, expected: float) -> None:
    at = None if tokens is None else T0
    assert rate_tokens(tokens, at, rate, T0 + timedelta(seconds=seconds_since)) == pytest.approx(expected)


@dataclass
class HoldingReceiver:
    url: str = ""
    in_flight: int = 0
    most_in_flight: int = 0
    answered: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: Request) -> Response:
        await request.body()
        async with self.changed:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.changed.notify_all()
        await self.release.wait()
        async with self.changed:
            self.in_flight -= 1
            self.answered += 1
        return Response(status_code=200)

    async def wait_in_flight(self, n: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.in_flight >= n)


@contextlib.asynccontextmanager
async def holding_receiver() -> AsyncIterator[HoldingReceiver]:
    state = HoldingReceiver()
    sock = socket.create_server(("127.0.0.1", 0))
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    app = Starlette(routes=[Route("/hook", state.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield state
    finally:
        state.release.set()
        server.should_exit = True
        await task
        sock.close()


async def _worker_pass(endpoint: WebhookEndpoint, now: datetime) -> int:
    """One worker's pass over this endpoint (each call its own claim, as a separate process's would be)."""
    return await send_due(box=BOX, policy=LOOPBACK, timeout=30, now=now, endpoint_ids=[endpoint.id])


async def test_in_flight_limit_holds_for_two_workers_together(server: RunningServer) -> None:
    async with holding_receiver() as partner:
        endpoint = await _endpoint(partner.url, new_secret())
        await WebhookEndpoint.filter(id=endpoint.id).update(max_in_flight=2, rate_per_second=1000)
        for _ in range(2):
            await _status_event(endpoint.sandbox_id)
        await drain_fan_out(T0)

        first = asyncio.create_task(_worker_pass(endpoint, T0))
        await partner.wait_in_flight(2)
        # More events while those two are in flight: the other worker finds both slots taken and leases nothing
        # (each worker keeping its own count would send two more).
        for _ in range(4):
            await _status_event(endpoint.sandbox_id)
        await drain_fan_out(T0)
        assert await _worker_pass(endpoint, T0) == 0
        assert await WebhookDelivery.filter(endpoint_id=endpoint.id, leased_until__isnull=False).count() == 2
        partner.release.set()
        assert await first == 2
        # Slots free again: two workers at once share them.
        second = await asyncio.gather(_worker_pass(endpoint, T0), _worker_pass(endpoint, T0))
        assert sum(second) == 2
    assert partner.most_in_flight == 2 and partner.answered == 4


async def test_rate_bucket_is_shared_by_workers(server: RunningServer) -> None:
    async with holding_receiver() as partner:
        partner.release.set()  # answers at once
        endpoint = await _endpoint(partner.url, new_secret())
        await WebhookEndpoint.filter(id=endpoint.id).update(max_in_flight=50, rate_per_second=1)
        for _ in range(6):
            await _status_event(endpoint.sandbox_id)
        await drain_fan_out(T0)
        # A full bucket is two requests (RATE_BURST_SECONDS of 1/s), whichever worker takes them.
        assert sorted(await asyncio.gather(_worker_pass(endpoint, T0), _worker_pass(endpoint, T0))) in ([0, 2], [1, 1])
        assert await _worker_pass(endpoint, T0) == 0
        assert await _worker_pass(endpoint, T0 + timedelta(seconds=1)) == 1
        assert await _worker_pass(endpoint, T0 + timedelta(seconds=10)) == 2  # refilled to the burst, no more
        assert await _worker_pass(endpoint, T0 + timedelta(seconds=10)) == 0
    assert partner.answered == 5
