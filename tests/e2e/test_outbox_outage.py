"""The outbox relay through a Redis outage: a redis-server this test starts itself (never the shared one), first
absent, then refusing the relay, then answering. Real processes and a relay loop: waits with deadlines."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from jobs.events import channel_name
from jobs.outbox_relay import OutboxRelay
from models.outbox.payloads import CAMPAIGN_STATUS_TOPIC
from tests.conftest import SandboxKeys, free_port
from tests.e2e.polling import wait_until
from tests.jobs.test_outbox import (  # noqa: F401 - app_relay_paused is a fixture
    RETENTION,
    all_published,
    app_relay_paused,
    emit_changes,
    received_until_sentinel,
    rows_of,
    sandbox_id,
)


@contextlib.asynccontextmanager
async def own_redis_server(port: int) -> AsyncIterator[None]:
    """A redis-server of this test only (never the shared one), refusing clients without a password at first."""
    process = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--requirepass", "secret",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        process.terminate()
        await process.wait()


async def answers(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except RedisConnectionError:  # still starting
        return False


async def test_events_written_while_redis_is_away_are_published_once_it_answers(
    app_relay_paused: None,  # noqa: F811 - the fixture imported above
    sandbox: SandboxKeys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="jobs.outbox_relay")
    sandbox_pk = await sandbox_id(sandbox)
    port = free_port()
    client = Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    relay_ = OutboxRelay(client, retention=RETENTION, poll_interval=0.01)
    relay_.start()
    try:
        # Nothing listens on the port: the events stay in the table, the relay retries.
        campaign_ids = await emit_changes(sandbox_pk, 3)
        await wait_until(lambda: relay_._failures >= 3)
        assert all(row.published_at is None for row in await rows_of(sandbox_pk))

        async with own_redis_server(port):
            admin = Redis(host="127.0.0.1", port=port, password="secret")
            await wait_until(lambda: answers(admin))
            pubsub = admin.pubsub()
            channel = channel_name(sandbox_pk, CAMPAIGN_STATUS_TOPIC)
            await pubsub.subscribe(channel)
            # Still refused (no password): the outage goes on with Redis up; then Redis answers the relay.
            failures = relay_._failures
            await wait_until(lambda: relay_._failures >= failures + 2)
            assert all(row.published_at is None for row in await rows_of(sandbox_pk))
            await admin.config_set("requirepass", "")
            await wait_until(lambda: all_published(sandbox_pk))
            received = await received_until_sentinel(admin, channel, pubsub)
            await pubsub.aclose()
            await admin.aclose()
    finally:
        await relay_.stop()
        await client.aclose()
    assert [m["data"]["campaignId"] for m in received] == campaign_ids
    assert [m["id"] for m in received] == [row.id for row in await rows_of(sandbox_pk)]
    warnings = [r.getMessage() for r in caplog.records if r.name == "jobs.outbox_relay"]
    assert len([w for w in warnings if "unavailable" in w]) == 1, warnings  # once per outage, not per attempt
    assert len([w for w in warnings if "is back" in w]) == 1, warnings
