"""Redis going away while runs send, seen by real processes (issue 14, "Done when"): two `herald worker`
processes and a `herald serve` whose WebSocket subscribers follow the run, against a redis-server the test owns
and kills. Every worker outlives the outages, the run completes with the ledger's counters, and every subscriber
gets the run's final progress event (written to the outbox, published once Redis is back)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import TEST_DB, free_port
from tests.crash.harness import ROOT, Herald, SlowSink, contactable
from tests.e2e.polling import wait_until

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="needs PostgreSQL (several processes share the run)")

RESTARTS = 10
PROGRESS = "subscription($id: ID!) { campaignRunProgress(campaignId: $id) { runId status sent targeted } }"
STATUS = "subscription($id: ID!) { campaignStatusChanged(id: $id) { status previousStatus at version } }"


def _spawn(args: list[str], env: dict[str, str], log: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env, stdout=log, stderr=log)


@pytest.fixture
async def serve(herald: Herald, tmp_path: Path) -> AsyncIterator[str]:
    """`herald serve` on the scenario's database and Redis, without an in-process worker; yields its ws URL."""
    port = free_port()
    env = herald.env(WORKER_IN_PROCESS="false", DATA_DIR=str(tmp_path / "serve"), LOG_LEVEL="WARNING")
    log = (tmp_path / "serve.log").open("ab")
    process = _spawn(["serve", "--port", str(port)], env, log)
    try:
        async with httpx.AsyncClient() as client:

            async def ready() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                return False

            await wait_until(ready, timeout=30, interval=0.1)
        yield f"ws://127.0.0.1:{port}/graphql"
        assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class Subscriber:
    """One WebSocket (graphql-transport-ws) with one subscription; keeps every payload it receives."""

    def __init__(self, url: str, key: str, query: str, variables: dict[str, Any]) -> None:
        self.url, self.key, self.query, self.variables = url, key, query, variables
        self.events: list[dict[str, Any]] = []
        self.ended: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def _run(self) -> None:
        async with websockets.connect(self.url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {self.key}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            payload = {"query": self.query, "variables": self.variables}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            self.subscribed.set()
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "next":
                    self.events.append(message["payload"])
                elif message["type"] in ("error", "complete"):
                    self.ended = raw
                    return

    def start(self) -> Subscriber:
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def data(self, field: str) -> list[dict[str, Any]]:
        return [e["data"][field] for e in self.events if e.get("data")]


async def test_redis_killed_and_restarted_ten_times_during_a_run(
    herald: Herald, sink: tuple[SlowSink, int], serve: str
) -> None:
    handler, port = sink
    # Throttled so the run lasts through the ten outages (about 10 s at 60 a second).
    seeded = await herald.action(
        "seed", {"profiles": 600, "sink_port": port, "throttle": 60, "enqueue": False, "api_key": True}
    )
    run_id, campaign_id = seeded["run_id"], seeded["campaign_id"]
    subscribers = [Subscriber(serve, seeded["api_key"], PROGRESS, {"id": str(campaign_id)}).start() for _ in range(3)]
    await asyncio.gather(*(s.subscribed.wait() for s in subscribers))
    herald.worker(), herald.worker()
    await herald.enqueue(run_id)
    await wait_until(lambda: len(handler.pairs) >= 20, timeout=30)
    for _ in range(RESTARTS):
        herald.redis.stop()
        herald.redis.start()  # empty: the queue, the throttle bucket and the pub/sub subscriptions are gone
        sent = len(handler.pairs)
        # The run goes on after each outage (or has nothing left to send).
        await wait_until(lambda: len(handler.pairs) >= min(sent + 15, 593), timeout=30)  # noqa: B023
    result = await herald.check(run_id, handler, contactable=contactable(600), crashes=RESTARTS, in_flight=60)
    assert all(w.alive for w in herald.workers)

    def final_seen() -> bool:
        return all(any(p["status"] == "SUCCEEDED" for p in s.data("campaignRunProgress")) for s in subscribers)

    try:
        await wait_until(final_seen, timeout=30, interval=0.1)
    finally:
        for subscriber in subscribers:
            await subscriber.stop()
    for subscriber in subscribers:
        assert subscriber.ended is None, subscriber.ended
        final = [p for p in subscriber.data("campaignRunProgress") if p["status"] == "SUCCEEDED"][-1]
        assert final["sent"] == result["run"]["sent"]
        assert base64.b64decode(final["runId"]).decode() == f"CampaignRun:{run_id}"
    print("redis restarts:", result["by_status"], "resends", result["duplicated"],
          "events per subscriber", [len(s.events) for s in subscribers])  # fmt: skip


async def test_a_failed_campaign_status_event_reaches_subscribers(
    herald: Herald, sink: tuple[SlowSink, int], serve: str
) -> None:
    _, port = sink
    # Every address refused with 550: every send fails, the run and then the campaign FAIL.
    seeded = await herald.action(
        "seed", {"profiles": 50, "sink_port": port, "rejected_every": 1, "enqueue": False, "api_key": True}
    )
    subscribers = [
        Subscriber(serve, seeded["api_key"], STATUS, {"id": str(seeded["campaign_id"])}).start() for _ in range(2)
    ]
    # The current state comes first: then the subscription is live.
    await wait_until(lambda: all(s.data("campaignStatusChanged") for s in subscribers), timeout=15)
    herald.worker()
    await herald.enqueue(seeded["run_id"])
    run = await herald.wait_finished(seeded["run_id"])
    assert run["status"] == "FAILED"

    def failed_seen() -> bool:
        return all(any(c["status"] == "FAILED" for c in s.data("campaignStatusChanged")) for s in subscribers)

    try:
        await wait_until(failed_seen, timeout=15, interval=0.1)
    finally:
        for subscriber in subscribers:
            await subscriber.stop()
    for subscriber in subscribers:
        assert subscriber.ended is None, subscriber.ended
        change = next(c for c in subscriber.data("campaignStatusChanged") if c["status"] == "FAILED")
        assert change["previousStatus"] == "LIVE" and change["at"], change
