"""The transactional outbox and its relay, on the real database and real Redis servers.

The session server runs a relay of its own; tests that watch one relay alone pause it (`app_relay_paused`).
Pub/sub channels are shared by every Redis database number, so messages are matched on the campaign ids a
test made up, never counted blindly.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import websockets
from redis.asyncio import Redis
from strawberry import relay
from tortoise.transactions import in_transaction

from jobs.events import channel_name
from jobs.outbox_relay import RUNNING, OutboxRelay
from models import outbox
from models.campaigns.campaign import CampaignRun, RunStatus
from models.campaigns.rules import CampaignStatus
from models.campaigns.transitions import fail_campaign
from models.outbox.model import OutboxEvent
from models.outbox.payloads import (
    CAMPAIGN_RUN_PROGRESS_TOPIC,
    CAMPAIGN_STATUS_TOPIC,
    CampaignStatusChanged,
    RunProgress,
    envelope,
)
from models.tenancy.sandbox import Sandbox
from tests.conftest import TEST_DB, GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, active_in_app_preset, audience, create, ready_input

RETENTION = timedelta(hours=24)
SUBSCRIBE = "subscription($id: ID) { campaignStatusChanged(id: $id) { campaignId status previousStatus version at } }"


@pytest.fixture
async def app_relay_paused(server: RunningServer) -> AsyncIterator[None]:
    paused = list(RUNNING)
    for running in paused:
        await running.stop()
    try:
        yield
    finally:
        for running in paused:
            running.start()


async def sandbox_id(sandbox: SandboxKeys) -> int:
    return (await Sandbox.get(name=sandbox.name)).id


async def emit_changes(sandbox_pk: int, count: int) -> list[int]:
    """`count` status events, each committed in its own transaction; their made-up campaign ids."""
    first = random.randrange(10**9, 2 * 10**9)
    campaign_ids = list(range(first, first + count))
    for campaign_id in campaign_ids:
        change = CampaignStatusChanged(
            campaign_id=campaign_id,
            status=CampaignStatus.LIVE,
            previous_status=CampaignStatus.DRAFT,
            version=2,
            at=datetime.now(UTC),
            actor="test",
        )
        async with in_transaction() as conn:
            await outbox.emit(change, sandbox_id=sandbox_pk, conn=conn)
    outbox.committed()
    return campaign_ids


async def rows_of(sandbox_pk: int) -> list[OutboxEvent]:
    return await OutboxEvent.filter(sandbox_id=sandbox_pk).order_by("id")


async def all_published(sandbox_pk: int) -> bool:
    return not await OutboxEvent.filter(sandbox_id=sandbox_pk, published_at__isnull=True).exists()


async def received_until_sentinel(client: Redis, channel: str, pubsub: Any) -> list[dict[str, Any]]:
    """Messages on `channel` up to a sentinel published now: anything published before it has arrived."""
    await client.publish(channel, orjson.dumps({"sentinel": True}))
    received = []
    async with asyncio.timeout(10):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            data = orjson.loads(message["data"])
            if data.get("sentinel"):
                return received
            received.append(data)


async def test_no_event_for_a_rolled_back_change(sandbox: SandboxKeys) -> None:
    sandbox_pk = await sandbox_id(sandbox)
    change = CampaignStatusChanged(
        campaign_id=1, status=CampaignStatus.LIVE, previous_status=None, version=1, at=datetime.now(UTC)
    )
    with pytest.raises(RuntimeError):
        async with in_transaction() as conn:
            await outbox.emit(change, sandbox_id=sandbox_pk, conn=conn)
            raise RuntimeError("the change fails after its event was written")
    assert await rows_of(sandbox_pk) == []
    async with in_transaction() as conn:
        await outbox.emit(change, sandbox_id=sandbox_pk, conn=conn)
    assert [row.payload for row in await rows_of(sandbox_pk)] == [change.to_json()]


async def test_two_relays_publish_each_event_once_and_in_order(
    app_relay_paused: None, redis: Redis, sandbox: SandboxKeys
) -> None:
    sandbox_pk = await sandbox_id(sandbox)
    channel = channel_name(sandbox_pk, CAMPAIGN_STATUS_TOPIC)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    campaign_ids = set(await emit_changes(sandbox_pk, 60))
    # On PostgreSQL each relay gets its own lock, as in two processes: only the advisory lock keeps them apart.
    locks = (asyncio.Lock(), asyncio.Lock()) if TEST_DB == "postgres" else (None, None)
    relays = [OutboxRelay(redis, retention=RETENTION, batch=7, poll_interval=0.01, lock=lock) for lock in locks]
    try:
        # Both relays at once, pass after pass, as two processes' loops would run them.
        for _ in range(100):
            if await all_published(sandbox_pk):
                break
            await asyncio.gather(*(each.publish_pending() for each in relays))
        assert await all_published(sandbox_pk)
        received = await received_until_sentinel(redis, channel, pubsub)
    finally:
        await pubsub.aclose()
    ours = [m for m in received if m["data"]["campaignId"] in campaign_ids]
    assert [m["id"] for m in ours] == [row.id for row in await rows_of(sandbox_pk)]
    assert {m["data"]["campaignId"] for m in ours} == campaign_ids


async def test_published_events_are_pruned_after_the_retention(app_relay_paused: None, sandbox: SandboxKeys) -> None:
    sandbox_pk = await sandbox_id(sandbox)
    now = datetime.now(UTC)
    ages = {"old published": now - timedelta(hours=25), "recent published": now - timedelta(hours=23)}
    for name, published in ages.items():
        await OutboxEvent.create(sandbox_id=sandbox_pk, topic=name, payload={}, published_at=published, webhooks_at=now)
    await OutboxEvent.create(sandbox_id=sandbox_pk, topic="old unpublished", payload={}, webhooks_at=now)
    await OutboxEvent.filter(sandbox_id=sandbox_pk, topic="old unpublished").update(created_at=now - timedelta(days=9))
    # Published long ago but not yet made into webhook deliveries: kept for the fan-out.
    await OutboxEvent.create(
        sandbox_id=sandbox_pk, topic="old, no webhooks yet", payload={}, published_at=ages["old published"]
    )
    # ... but not forever (no worker sends webhooks): a week past the retention, it goes too.
    await OutboxEvent.create(sandbox_id=sandbox_pk, topic="ancient", payload={}, published_at=ages["old published"])
    await OutboxEvent.filter(sandbox_id=sandbox_pk, topic="ancient").update(created_at=now - timedelta(days=9))
    await OutboxRelay(None, retention=RETENTION).prune(now)
    assert [row.topic for row in await rows_of(sandbox_pk)] == [
        "recent published",
        "old unpublished",
        "old, no webhooks yet",
    ]
    # An unparsable row must not stay in the way of the relay: clean up before the app's relay resumes.
    await OutboxEvent.filter(sandbox_id=sandbox_pk).delete()


async def subscribed(server: RunningServer, sandbox: SandboxKeys, campaign_id: str) -> Any:
    ws = await websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox.admin}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    payload = {"query": SUBSCRIBE, "variables": {"id": campaign_id}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def next_change(ws: Any) -> dict[str, Any]:
    async with asyncio.timeout(10):
        message = json.loads(await ws.recv())
    assert message["type"] == "next", message
    return message["payload"]["data"]["campaignStatusChanged"]


async def test_malformed_events_do_not_end_a_status_stream(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys, redis: Redis
) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    campaign = await create(gql, sandbox, ready_input(preset_id, await audience(gql, sandbox)))
    pk = int(relay.GlobalID.from_id(campaign["id"]).node_id)
    ws = await subscribed(server, sandbox, campaign["id"])
    try:
        assert (await next_change(ws))["status"] == "DRAFT"  # the current state first: subscribed from here
        channel = channel_name(await sandbox_id(sandbox), CAMPAIGN_STATUS_TOPIC)
        at = datetime.now(UTC).isoformat()
        for garbage in (
            b"not json",
            orjson.dumps([1, 2]),
            orjson.dumps({"campaignId": pk, "status": "LIVE"}),  # no envelope
            orjson.dumps(envelope(None, {"campaignId": pk, "status": "LIVE", "version": 9})),  # no `at`
            orjson.dumps(envelope(None, {"campaignId": pk, "status": "SIDEWAYS", "version": 9, "at": at})),
            orjson.dumps(envelope("7", {"campaignId": pk, "status": "LIVE", "version": 9, "at": at})),
        ):
            await redis.publish(channel, garbage)
        assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
        change = await next_change(ws)
        assert (change["status"], change["previousStatus"]) == ("LIVE", "DRAFT")
    finally:
        await ws.close()


async def test_a_failed_campaign_event_carries_at_and_previous_status(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    campaign = await create(gql, sandbox, ready_input(preset_id, await audience(gql, sandbox)))
    await activate(gql, sandbox, campaign["id"])
    pk = int(relay.GlobalID.from_id(campaign["id"]).node_id)
    ws = await subscribed(server, sandbox, campaign["id"])
    try:
        current = await next_change(ws)
        assert current["status"] == "LIVE"
        before = datetime.now(UTC)
        await fail_campaign(pk, "test: every send failed", datetime.now(UTC))
        change = await next_change(ws)
    finally:
        await ws.close()
    assert (change["status"], change["previousStatus"], change["version"]) == ("FAILED", "LIVE", current["version"] + 1)
    assert datetime.fromisoformat(change["at"]) >= before


async def test_a_run_s_final_progress_is_an_outbox_event(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    campaign = await create(gql, sandbox, ready_input(preset_id, await audience(gql, sandbox, size=3)))
    run_id = int(relay.GlobalID.from_id((await activate(gql, sandbox, campaign["id"]))["run"]["id"]).node_id)

    async def finished() -> bool:
        return await CampaignRun.filter(id=run_id, status=RunStatus.SUCCEEDED).exists()

    await gql.drain_jobs()
    assert await finished()
    events = await OutboxEvent.filter(sandbox_id=await sandbox_id(sandbox), topic=CAMPAIGN_RUN_PROGRESS_TOPIC)
    assert [(e.payload["runId"], e.payload["status"], e.payload["final"], e.payload["sent"]) for e in events] == [
        (run_id, "SUCCEEDED", True, 3)
    ]


PROGRESS = "subscription($id: ID!) { campaignRunProgress(campaignId: $id) { runId status sent pending } }"


async def test_progress_subscribers_get_the_snapshot_each_event_once_then_the_final_one(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys, redis: Redis
) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    campaign = await create(gql, sandbox, ready_input(preset_id, await audience(gql, sandbox, size=3)))
    pk = int(relay.GlobalID.from_id(campaign["id"]).node_id)
    ws = await websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"])

    async def progress() -> dict[str, Any]:
        async with asyncio.timeout(30):
            message = json.loads(await ws.recv())
        assert message["type"] == "next", message
        return message["payload"]["data"]["campaignRunProgress"]

    try:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox.admin}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": PROGRESS, "variables": {"id": campaign["id"]}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        assert await progress() == {"runId": None, "status": None, "sent": 0, "pending": 0}  # no run yet

        # Published twice (at least once), malformed in between: one event, and the stream goes on.
        channel = channel_name(await sandbox_id(sandbox), CAMPAIGN_RUN_PROGRESS_TOPIC)
        tick = RunProgress(
            campaign_id=pk, run_id=10**9, status="RUNNING", targeted=2, excluded=0, sent=1, failed=0, pending=1,
            rate_per_second=None, eta_seconds=None, at=datetime.now(UTC), final=False,
        )  # fmt: skip
        outbox_id = random.randrange(10**12, 2 * 10**12)
        for message in (envelope(outbox_id, tick.to_json()), {"id": 1, "data": {"campaignId": pk}}):
            await redis.publish(channel, orjson.dumps(message))
        await redis.publish(channel, orjson.dumps(envelope(outbox_id, tick.to_json())))
        assert (await progress())["pending"] == 1

        run_id = (await activate(gql, sandbox, campaign["id"]))["run"]["id"]
        await gql.drain_jobs()
        while (event := await progress())["status"] != "SUCCEEDED":
            assert event["runId"] == run_id and event["status"] == "RUNNING", event
    finally:
        await ws.close()
    assert event == {"runId": run_id, "status": "SUCCEEDED", "sent": 3, "pending": 0}


async def test_commits_close_together_share_one_relay_pass(
    app_relay_paused: None, redis: Redis, sandbox: SandboxKeys
) -> None:
    """The relay starts passes at least min_pass_gap apart: the events committed meanwhile go out in one."""
    sandbox_pk = await sandbox_id(sandbox)
    channel = channel_name(sandbox_pk, CAMPAIGN_STATUS_TOPIC)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    relay_ = OutboxRelay(redis, retention=RETENTION, poll_interval=60, min_pass_gap=3.0)
    relay_.start()
    try:
        # Each committed on its own and announced at once, as acceptances do, 50 ms apart (without the gap, time
        # for a pass each).
        first = random.randrange(10**9, 2 * 10**9)
        campaign_ids = list(range(first, first + 6))
        for campaign_id in campaign_ids:
            change = CampaignStatusChanged(
                campaign_id=campaign_id,
                status=CampaignStatus.LIVE,
                previous_status=None,
                version=1,
                at=datetime.now(UTC),
            )
            async with in_transaction() as conn:
                await outbox.emit(change, sandbox_id=sandbox_pk, conn=conn)
            outbox.committed()
            await asyncio.sleep(0.05)
        seen: set[int] = set()
        async with asyncio.timeout(10):
            while seen != set(campaign_ids):
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    seen.add(orjson.loads(message["data"])["data"]["campaignId"])
    finally:
        await relay_.stop()
        await pubsub.aclose()
    passes = {row.published_at for row in await rows_of(sandbox_pk)}
    # The first commit's pass, then one for the five committed while it waited out the gap.
    assert len(passes) <= 2, passes
