"""Writing events (`emit`) and the relay's side of the table: publish pending rows in order, prune old ones."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from models.outbox.model import OutboxEvent
from models.outbox.payloads import Payload

# Any constant: the transaction-scoped PostgreSQL advisory lock that lets one relay publish at a time.
RELAY_LOCK_KEY = 0x6865726F7574  # "herout"
WEBHOOK_GRACE = timedelta(days=7)

_listeners: set[Callable[[], None]] = set()
_local_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


async def emit(payload: Payload, *, sandbox_id: int, conn: BaseDBAsyncClient) -> None:
    """Write `payload` as an event in the caller's transaction `conn`: it exists only if the change commits.

    Call `committed()` after the transaction to have this process's relay publish it at once."""
    await OutboxEvent.create(sandbox_id=sandbox_id, topic=payload.topic, payload=payload.to_json(), using_db=conn)


def committed() -> None:
    """Wakes the relays of this process (after a commit that emitted); they also poll, so this is only latency."""
    for listener in list(_listeners):
        listener()


def add_listener(listener: Callable[[], None]) -> None:
    _listeners.add(listener)


def remove_listener(listener: Callable[[], None]) -> None:
    _listeners.discard(listener)


def _local_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _local_locks.get(loop)
    if lock is None:
        lock = _local_locks[loop] = asyncio.Lock()
    return lock


async def publish_pending(
    publish: Callable[[OutboxEvent], Awaitable[None]], *, limit: int = 200, lock: asyncio.Lock | None = None
) -> int:
    """Publish up to `limit` unpublished events in id order with `publish`, and mark them published.

    One relay at a time: in-process by a lock; across processes (PostgreSQL) by a transaction-scoped advisory
    lock held while publishing (another relay holds it → 0 here: that one is publishing). SQLite has a single
    process and one connection: no transaction is held open while Redis is called. If `publish` raises, the
    events published before are marked and the error propagates; the rest stay for the next attempt."""
    async with lock or _local_lock():
        default = connections.get("default")
        if default.capabilities.dialect == "sqlite":
            done, error = await _publish_batch(default, publish, limit)
        elif not await OutboxEvent.filter(published_at__isnull=True).exists():
            return 0  # the idle poll: one indexed read, no transaction
        else:
            async with in_transaction() as conn:
                rows = await conn.execute_query_dict(f"SELECT pg_try_advisory_xact_lock({RELAY_LOCK_KEY}) AS locked")
                if not rows[0]["locked"]:
                    return 0
                done, error = await _publish_batch(conn, publish, limit)
    if error is not None:
        raise error
    return done


async def _publish_batch(
    conn: BaseDBAsyncClient, publish: Callable[[OutboxEvent], Awaitable[None]], limit: int
) -> tuple[int, Exception | None]:
    events = await OutboxEvent.filter(published_at__isnull=True).order_by("id").limit(limit).using_db(conn)
    done: list[int] = []
    error: Exception | None = None
    for event in events:
        try:
            await publish(event)
        except Exception as exc:  # returned, so the transaction commits what was published before
            error = exc
            break
        done.append(event.id)
    if done:
        await OutboxEvent.filter(id__in=done).using_db(conn).update(published_at=datetime.now(UTC))
    return len(done), error


async def prune(before: datetime) -> int:
    """Deletes events published before `before`; unpublished ones are kept whatever their age, and those not
    yet made into webhook deliveries for a week more (then no worker sends webhooks: WEBHOOK_DELIVERY=false)."""
    fanned_out = Q(webhooks_at__isnull=False) | Q(created_at__lt=before - WEBHOOK_GRACE)
    return await OutboxEvent.filter(fanned_out, published_at__isnull=False, published_at__lt=before).delete()


async def pending_count() -> int:
    return await OutboxEvent.filter(published_at__isnull=True).using_db(connections.get("default")).count()
