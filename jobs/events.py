"""Event bus over Redis pub/sub, scoped per sandbox.

Any process publishes; each API process holds one pub/sub connection and fans messages out to its local
subscribers, so a thousand WebSocket subscribers cost one Redis connection per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import orjson
from redis.asyncio import Redis

logger = logging.getLogger(__name__)

SUBSCRIBER_BUFFER = 256

# Topics published directly (best effort). Campaign status and run progress are typed outbox payloads: their
# topics live beside them in models/outbox/payloads.py; preset status in models/presets/preset.py.
WORKER_PONG_TOPIC = "worker.pong"


def channel_name(sandbox_id: int, topic: str) -> str:
    return f"herald:events:{sandbox_id}:{topic}"


async def publish(redis: Redis, sandbox_id: int, topic: str, payload: dict[str, Any]) -> None:
    await redis.publish(channel_name(sandbox_id, topic), orjson.dumps(payload))


class EventBus:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._subscription_waiters: list[asyncio.Future[str]] = []

    async def publish(self, sandbox_id: int, topic: str, payload: dict[str, Any]) -> None:
        await publish(self._redis, sandbox_id, topic, payload)

    @contextlib.asynccontextmanager
    async def subscribe(self, sandbox_id: int, topic: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """`async with bus.subscribe(...) as events:` — subscribed on entry, so nothing published after is missed."""
        channel = channel_name(sandbox_id, topic)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BUFFER)
        async with self._lock:
            if not self._subscribers[channel]:
                await self._pubsub.subscribe(channel)
            self._subscribers[channel].add(queue)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="event-bus-reader")
            waiters, self._subscription_waiters = self._subscription_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(channel)
        try:
            yield _drain(queue)
        finally:
            async with self._lock:
                self._subscribers[channel].discard(queue)
                if not self._subscribers[channel]:
                    del self._subscribers[channel]
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(channel)

    def next_subscription(self) -> asyncio.Future[str]:
        """Resolves with the channel of the next subscription made here: a caller (a test) knows a subscriber is
        listening, rather than polling Redis for it."""
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._subscription_waiters.append(waiter)
        return waiter

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("event bus lost its Redis connection; retrying")
                await asyncio.sleep(0.5)
                continue
            if message is None:
                if not self._subscribers:
                    await asyncio.sleep(0.05)
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            try:
                payload = orjson.loads(message["data"])
            except orjson.JSONDecodeError:
                logger.warning("dropped a malformed event on %s", channel)
                continue
            for queue in list(self._subscribers.get(channel, ())):
                if queue.full():
                    # A slow subscriber loses its oldest event rather than stalling everyone else.
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                queue.put_nowait(payload)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()


async def _drain(queue: asyncio.Queue[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    while True:
        yield await queue.get()
