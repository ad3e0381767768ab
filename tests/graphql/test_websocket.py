"""graphql-transport-ws conformance: init timeout (4408), duplicate ids (4409), repeated init (4429), the
per-connection subscription cap, and browser origins (4401 for bad keys is in test_auth.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.conftest import RunningServer, SandboxKeys, make_settings, running_server

PROTOCOL = ["graphql-transport-ws"]
PONGS = "subscription { workerPong { pingId } }"
ALLOWED_ORIGIN = "https://app.example"


@pytest.fixture
async def strict_server(server: RunningServer) -> AsyncIterator[RunningServer]:
    settings = make_settings(
        server.settings.database_url, ws_connection_init_timeout_seconds=0.3, allowed_origins=[ALLOWED_ORIGIN]
    )
    async with running_server(settings, lifespan="off") as running:
        yield running


async def _close_code(ws: Any, timeout: float = 5) -> int:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    return closed.value.rcvd.code


async def _init(ws: Any, key: str) -> None:
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"


async def test_no_connection_init_closes_4408_after_the_configured_timeout(strict_server: RunningServer) -> None:
    async with websockets.connect(strict_server.ws_url, subprotocols=PROTOCOL) as ws:
        assert await _close_code(ws, timeout=3) == 4408


async def test_a_second_connection_init_closes_4429(server: RunningServer, sandbox: SandboxKeys) -> None:
    async with websockets.connect(server.ws_url, subprotocols=PROTOCOL) as ws:
        await _init(ws, sandbox.admin)
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox.admin}"}}))
        assert await _close_code(ws) == 4429


async def test_a_duplicate_subscription_id_closes_4409(server: RunningServer, sandbox: SandboxKeys) -> None:
    async with websockets.connect(server.ws_url, subprotocols=PROTOCOL) as ws:
        await _init(ws, sandbox.admin)
        for _ in range(2):
            await ws.send(json.dumps({"id": "same", "type": "subscribe", "payload": {"query": PONGS}}))
        assert await _close_code(ws) == 4409


async def test_subscribe_before_init_closes_4401(server: RunningServer) -> None:
    async with websockets.connect(server.ws_url, subprotocols=PROTOCOL) as ws:
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": PONGS}}))
        assert await _close_code(ws) == 4401


async def test_subscriptions_per_connection_are_capped(server: RunningServer, sandbox: SandboxKeys) -> None:
    cap = server.settings.ws_max_subscriptions
    async with websockets.connect(server.ws_url, subprotocols=PROTOCOL) as ws:
        await _init(ws, sandbox.admin)
        for i in range(cap):
            await ws.send(json.dumps({"id": f"s{i}", "type": "subscribe", "payload": {"query": PONGS}}))
        await ws.send(json.dumps({"id": "over", "type": "subscribe", "payload": {"query": PONGS}}))
        refused = json.loads(await ws.recv())
        assert refused["id"] == "over" and refused["type"] == "error"
        assert refused["payload"][0]["message"] == "Subscription limit reached"
        # Completing one frees a slot.
        await ws.send(json.dumps({"id": "s0", "type": "complete"}))
        await ws.send(json.dumps({"id": "again", "type": "subscribe", "payload": {"query": "{ viewer { role } }"}}))
        reply = json.loads(await ws.recv())
        assert reply["id"] == "again" and reply["type"] == "next"


async def test_cross_origin_handshakes_need_an_allowed_origin(
    server: RunningServer, strict_server: RunningServer, sandbox: SandboxKeys
) -> None:
    for url, origin in [(server.ws_url, ALLOWED_ORIGIN), (strict_server.ws_url, "https://evil.example")]:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(url, subprotocols=PROTOCOL, origin=origin):
                pass
        assert refused.value.response.status_code == 403
    async with websockets.connect(strict_server.ws_url, subprotocols=PROTOCOL, origin=ALLOWED_ORIGIN) as ws:
        await _init(ws, sandbox.admin)
    # Same-origin pages and non-browser clients (no Origin header) are always allowed.
    async with websockets.connect(server.ws_url, subprotocols=PROTOCOL, origin=server.base_url) as ws:
        await _init(ws, sandbox.admin)
