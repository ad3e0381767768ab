"""WebSocket subscribers for the fan-out benchmark (run by bench/fanout.py in its own process).

Opens N graphql-transport-ws connections spread over the given server ports, subscribes each to
campaignStatusChanged, makes sure every subscription is live (warm-up events published on Redis until each
subscriber has seen one), then archives one campaign through the GraphQL API and prints, as JSON, the time
from sending that mutation until the last subscriber received the change.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import time
from datetime import UTC, datetime

import httpx
import websockets
from redis.asyncio import Redis

from jobs.events import channel_name
from models.outbox.payloads import CAMPAIGN_STATUS_TOPIC, envelope

SUBSCRIPTION = "subscription { campaignStatusChanged { campaignId status previousStatus version at } }"
ARCHIVE = (
    "mutation Archive($id: ID!) { campaignArchive(input: {id: $id}) { __typename "
    "... on CampaignSuccess { campaign { status } } } }"
)


def global_id(pk: int) -> str:
    return base64.b64encode(f"Campaign:{pk}".encode()).decode()


class Subscriber:
    def __init__(self, url: str, key: str, target: str) -> None:
        self.url, self.key, self.target = url, key, target
        self.warm = asyncio.Event()
        self.received_at: float | None = None
        self.done = asyncio.Event()
        self.ws = None

    async def open(self) -> None:
        self.ws = await websockets.connect(
            self.url, subprotocols=["graphql-transport-ws"], max_queue=None, open_timeout=60
        )
        await self.ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {self.key}"}}))
        ack = json.loads(await self.ws.recv())
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
        await self.ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))

    async def listen(self) -> None:
        async for raw in self.ws:
            now = time.perf_counter()
            message = json.loads(raw)
            if message.get("type") != "next":
                if message.get("type") in {"error", "complete"}:
                    raise RuntimeError(f"subscription ended: {message}")
                continue
            change = message["payload"]["data"]["campaignStatusChanged"]
            if change["campaignId"] == self.target and change["status"] == "ARCHIVED":
                self.received_at = now
                self.done.set()
                return
            self.warm.set()


async def main(args: argparse.Namespace) -> dict[str, object]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ports = [int(p) for p in args.ports.split(",")]
    target = global_id(args.campaign)
    subscribers = [
        Subscriber(f"ws://127.0.0.1:{ports[i % len(ports)]}/graphql", args.key, target) for i in range(args.n)
    ]
    started = time.perf_counter()
    gate = asyncio.Semaphore(50)  # connection setup in waves, not 1,000 handshakes at once

    async def open_one(sub: Subscriber) -> None:
        async with gate:
            await sub.open()

    await asyncio.gather(*(open_one(s) for s in subscribers))
    listeners = [asyncio.create_task(s.listen()) for s in subscribers]
    connect_seconds = time.perf_counter() - started

    # A subscription is live once its resolver has joined the event bus; only an event proves it.
    redis = Redis.from_url(args.redis_url)
    warmup = {"campaignId": 0, "status": "DRAFT", "previousStatus": None}
    version = 0  # subscribers drop a campaign's versions they have seen
    deadline = time.monotonic() + 60
    while not all(s.warm.is_set() for s in subscribers):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sum(not s.warm.is_set() for s in subscribers)} subscribers never went live")
        version += 1
        change = {**warmup, "version": version, "at": datetime.now(UTC).isoformat()}
        await redis.publish(channel_name(args.sandbox, CAMPAIGN_STATUS_TOPIC), json.dumps(envelope(None, change)))
        await asyncio.sleep(0.2)
    await redis.aclose()
    await asyncio.sleep(0.5)  # let the last warm-up events drain everywhere

    async with httpx.AsyncClient() as http:
        sent = time.perf_counter()
        response = await http.post(
            f"http://127.0.0.1:{ports[0]}/graphql",
            json={"query": ARCHIVE, "variables": {"id": target}},
            headers={"Authorization": f"Bearer {args.key}"},
        )
        answered = time.perf_counter()
    body = response.json()
    if body.get("data", {}).get("campaignArchive", {}).get("__typename") != "CampaignSuccess":
        raise RuntimeError(f"archive failed: {body}")
    try:
        await asyncio.wait_for(asyncio.gather(*(s.done.wait() for s in subscribers)), timeout=args.timeout)
    except TimeoutError:
        pass
    times = sorted(s.received_at - sent for s in subscribers if s.received_at is not None)
    for task in listeners:
        task.cancel()
    await asyncio.gather(*(s.ws.close() for s in subscribers), return_exceptions=True)
    return {
        "subscribers": args.n,
        "received": len(times),
        "last_ms": times[-1] * 1000 if times else None,
        "p50_ms": times[len(times) // 2] * 1000 if times else None,
        "mutation_ms": (answered - sent) * 1000,
        "connect_s": connect_seconds,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--sandbox", type=int, required=True)
    parser.add_argument("--campaign", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=10.0)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
