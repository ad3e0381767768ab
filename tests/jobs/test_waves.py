"""Runs sent in waves, with the clock driven by the test: 10/20/30/40 % of the recipients in profile order, each
wave at its time and only once the previous one is finished (a row another worker still sends holds the next
wave back), per-wave figures through GraphQL (the run's and its progress events'), and input validation."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import websockets

from models.campaigns.actions import activate_campaign
from models.campaigns.campaign import CampaignRun, RunStatus
from models.ledger.claims import claim_batch
from models.ledger.delivery import Delivery, DeliveryStatus
from models.ledger.outcomes import Outcome, write_outcomes
from models.tenancy.sandbox import Sandbox
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import active_in_app_preset, create, ready_input
from tests.graphql.test_profiles import email, upsert
from tests.graphql.test_segments import CREATE as SEGMENT_CREATE
from tests.graphql.test_segments import cond
from tests.jobs.test_dispatcher import pk

T0 = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
WAVES = {"count": 4, "sizing": "PERCENT", "sizes": [10, 20, 30, 40], "intervalMinutes": 30}

RUN = """query($id: ID!) { campaignRuns(campaignId: $id, first: 1) { nodes {
  status currentWave sent pending waves { wave audience sent pending } } } }"""


async def wave_audience(gql: GraphQLClient, sandbox: SandboxKeys, size: int) -> str:
    people = [
        email(f"w{i:02}@example.com", attributes={"wave": "yes", "person": {"name": {"firstName": f"W{i}"}}})
        for i in range(size)
    ]
    await upsert(gql, sandbox.admin, people)
    created = await gql(
        SEGMENT_CREATE, {"input": {"kind": "RULE", "name": "w", "rule": cond("wave", "EQ", "yes")}}, key=sandbox.admin
    )
    return created["segmentCreate"]["segment"]["id"]


async def step(gql: GraphQLClient, now: datetime) -> None:
    await gql.drain_jobs(dispatch_at=now, until=now, clock=lambda: now)


async def sent_per_wave(run_id: int) -> dict[int, int]:
    rows = await Delivery.filter(run_id=run_id, status=DeliveryStatus.SENT).values_list("wave", flat=True)
    return {w: rows.count(w) for w in sorted(set(rows))}


async def test_waves_of_10_20_30_40_percent_each_waits_for_the_previous(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await wave_audience(gql, sandbox, 20)
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id, waves=WAVES))
    campaign_id = pk(campaign["id"])
    sandbox_id = (await Sandbox.get(name=sandbox.name)).id
    activation = await activate_campaign(sandbox_id, campaign_id, actor="test", now=T0)
    assert activation.run is not None
    run_id = activation.run.id

    await step(gql, T0)
    # Waves by profile order: the first 2 profiles, the next 4, 6, then 8.
    rows = await Delivery.filter(run_id=run_id).order_by("profile_id").values_list("wave", flat=True)
    assert rows == [1] * 2 + [2] * 4 + [3] * 6 + [4] * 8
    assert await sent_per_wave(run_id) == {1: 2}
    run = await CampaignRun.get(id=run_id)
    assert run.status is RunStatus.RUNNING and run.wave == 2  # wave 1 finished: wave 2 open, due at T0 + 30 min

    await step(gql, T0 + 29 * MINUTE)
    assert await sent_per_wave(run_id) == {1: 2}
    await step(gql, T0 + 30 * MINUTE)
    assert await sent_per_wave(run_id) == {1: 2, 2: 4}

    # Another worker claims two rows of wave 3 at its time and is still sending them when wave 4's time comes:
    # wave 4 waits.
    held = await claim_batch(run_id, T0 + 60 * MINUTE, lease=3600, size=2)
    assert len(held) == 2
    await step(gql, T0 + 61 * MINUTE)  # the rest of wave 3 goes; the held rows are leased
    await step(gql, T0 + 95 * MINUTE)
    assert await sent_per_wave(run_id) == {1: 2, 2: 4, 3: 4}
    progress = (await gql(RUN, {"id": campaign["id"]}, key=sandbox.admin))["campaignRuns"]["nodes"][0]
    assert progress["status"] == "RUNNING" and progress["currentWave"] == 3
    assert progress["waves"] == [
        {"wave": 1, "audience": 2, "sent": 2, "pending": 0},
        {"wave": 2, "audience": 4, "sent": 4, "pending": 0},
        {"wave": 3, "audience": 6, "sent": 4, "pending": 2},
        {"wave": 4, "audience": 8, "sent": 0, "pending": 8},
    ]

    # That worker finishes: wave 4 starts (its time has long come).
    await write_outcomes([Outcome(c.id, DeliveryStatus.SENT, sent=True) for c in held], T0 + 96 * MINUTE)
    await step(gql, T0 + 97 * MINUTE + timedelta(hours=1))  # past the run's lease: the dispatcher resumes it
    assert await sent_per_wave(run_id) == {1: 2, 2: 4, 3: 6, 4: 8}
    progress = (await gql(RUN, {"id": campaign["id"]}, key=sandbox.admin))["campaignRuns"]["nodes"][0]
    assert progress["status"] == "SUCCEEDED" and progress["sent"] == 20 and progress["currentWave"] == 4
    assert [w["sent"] for w in progress["waves"]] == [2, 4, 6, 8]
    # Each profile got one message.
    assert await Delivery.filter(run_id=run_id, status=DeliveryStatus.SENT).count() == 20


async def test_waves_input_is_validated(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    mutation = """mutation($input: CampaignCreateInput!) { campaignCreate(input: $input) { __typename
      ... on CampaignSuccess { campaign { waves { count sizing sizes intervalMinutes startTimes } } }
      ... on InvalidInputError { fieldErrors { field code } } } }"""
    ok = await gql(mutation, {"input": {"name": "w", "waves": WAVES}}, key=sandbox.admin)
    assert ok["campaignCreate"]["campaign"]["waves"] == {**WAVES, "startTimes": []}
    listed = await gql(
        "{ campaigns(first: 5) { nodes { name waves { count sizes } schedule { deliverAt } } } }", key=sandbox.admin
    )  # the list page reads the columns itself (models/sql/reads.py)
    assert listed["campaigns"]["nodes"] == [
        {"name": "w", "waves": {"count": 4, "sizes": [10, 20, 30, 40]}, "schedule": {"deliverAt": "CAMPAIGN_TIME_ZONE"}}
    ]
    bad = {"count": 11, "sizing": "PERCENT", "sizes": [50, 40], "intervalMinutes": 10}
    refused = await gql(mutation, {"input": {"name": "w", "waves": bad}}, key=sandbox.admin)
    assert refused["campaignCreate"]["fieldErrors"] == [{"field": "input.waves.count", "code": "OUT_OF_RANGE"}]
    bad = {"count": 4, "sizing": "PERCENT", "sizes": [10, 20, 30, 30], "intervalMinutes": 10}
    refused = await gql(mutation, {"input": {"name": "w", "waves": bad}}, key=sandbox.admin)
    assert refused["campaignCreate"]["fieldErrors"] == [
        {"field": "input.waves.sizes", "code": "INVALID"},
        {"field": "input.waves.intervalMinutes", "code": "OUT_OF_RANGE"},
    ]
    local = {"deliverAt": "PROFILE_TIME_ZONE"}
    refused = await gql(mutation, {"input": {"name": "w", "waves": WAVES, "schedule": local}}, key=sandbox.admin)
    assert refused["campaignCreate"]["fieldErrors"] == [{"field": "input.waves", "code": "INVALID"}]


REPORT = """query($id: ID!, $window: ReportWindowInput) { campaignReport(id: $id, window: $window) {
  ... on CampaignReport { sent waves { wave plannedSize startsAt finished targeted sent delivered failed excluded
  pending } } } }"""


def wave_row(wave: int, starts: datetime, finished: bool, sent: int, pending: int = 0) -> dict:
    return {
        "wave": wave, "plannedSize": 2, "startsAt": starts.isoformat(), "finished": finished, "targeted": 2,
        "sent": sent, "delivered": sent, "failed": 0, "excluded": 0, "pending": pending,
    }  # fmt: skip


async def test_report_and_run_show_each_waves_plan_start_and_figures(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await wave_audience(gql, sandbox, 6)
    waves = {"count": 3, "sizing": "EQUAL", "intervalMinutes": 45}
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id, waves=waves))
    sandbox_id = (await Sandbox.get(name=sandbox.name)).id
    activation = await activate_campaign(sandbox_id, pk(campaign["id"]), actor="test", now=T0)
    assert activation.run is not None
    run_gid = (await gql(RUN.replace("status", "id status"), {"id": campaign["id"]}, key=sandbox.admin))[
        "campaignRuns"
    ]["nodes"][0]["id"]
    starts = [T0, T0 + 45 * MINUTE, T0 + 90 * MINUTE]

    async def report(window: dict | None = None) -> list[dict]:
        got = await gql(REPORT, {"id": campaign["id"], "window": window}, key=sandbox.admin)
        return got["campaignReport"]["waves"]

    await step(gql, T0)
    expected = [
        wave_row(1, starts[0], True, 2),
        wave_row(2, starts[1], False, 0, 2),
        wave_row(3, starts[2], False, 0, 2),
    ]
    assert await report() == expected
    await step(gql, T0 + 45 * MINUTE)
    expected[1] = wave_row(2, starts[1], True, 2)
    assert await report({"runId": run_gid}) == expected
    await step(gql, T0 + 90 * MINUTE)
    expected[2] = wave_row(3, starts[2], True, 2)
    assert await report() == await report({"runId": run_gid}) == expected
    run_waves = """query($id: ID!) { campaignRuns(campaignId: $id, first: 1) { nodes { waves { wave plannedSize
      startsAt finished targeted sent delivered failed excluded pending } } } }"""
    got = await gql(run_waves, {"id": campaign["id"]}, key=sandbox.admin)
    assert got["campaignRuns"]["nodes"][0]["waves"] == expected
    # A campaign without waves reports none.
    other = await create(gql, sandbox, ready_input(preset_id, segment_id))
    assert (await gql(REPORT, {"id": other["id"]}, key=sandbox.admin))["campaignReport"]["waves"] == []


async def test_an_update_may_not_combine_stored_waves_with_profile_time_zone(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    mutation = """mutation($input: CampaignUpdateInput!) { campaignUpdate(input: $input) { __typename
      ... on CampaignSuccess { campaign { version } } ... on InvalidInputError { fieldErrors { field code } } } }"""
    waved = await create(gql, sandbox, {"name": "w", "waves": WAVES})
    local = {"startAt": "2027-06-01T09:00:00Z", "timeZone": "Europe/Paris", "deliverAt": "PROFILE_TIME_ZONE"}
    update = {"id": waved["id"], "version": 1, "schedule": local}
    refused = (await gql(mutation, {"input": update}, key=sandbox.admin))["campaignUpdate"]
    assert refused["fieldErrors"] == [{"field": "input.schedule.deliverAt", "code": "INVALID"}]
    timed = await create(gql, sandbox, {"name": "t", "schedule": local})
    update = {"id": timed["id"], "version": 1, "waves": WAVES}
    refused = (await gql(mutation, {"input": update}, key=sandbox.admin))["campaignUpdate"]
    assert refused["fieldErrors"] == [{"field": "input.waves", "code": "INVALID"}]
    # Without the other one, each is accepted.
    update = {"id": timed["id"], "version": 1, "waves": None, "schedule": {**local, "deliverAt": "CAMPAIGN_TIME_ZONE"}}
    assert (await gql(mutation, {"input": update}, key=sandbox.admin))["campaignUpdate"]["__typename"] == (
        "CampaignSuccess"
    )


PROGRESS = """subscription($id: ID!) { campaignRunProgress(campaignId: $id) { status sent
  waves { wave plannedSize startsAt finished sent pending } } }"""


@contextlib.asynccontextmanager
async def progress_events(server: RunningServer, key: str, campaign_id: str) -> AsyncIterator[Any]:
    """The campaign's progress subscription over a websocket: a function awaiting its next event."""
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": PROGRESS, "variables": {"id": campaign_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))

        async def next_event() -> dict[str, Any]:
            async with asyncio.timeout(30):
                message = json.loads(await ws.recv())
            assert message["type"] == "next", message
            return message["payload"]["data"]["campaignRunProgress"]

        yield next_event


def wave_view(waves: list[dict[str, Any]]) -> list[tuple[int, int, datetime, bool, int, int]]:
    return [
        (w["wave"], w["plannedSize"], datetime.fromisoformat(w["startsAt"]), w["finished"], w["sent"], w["pending"])
        for w in waves
    ]


async def test_progress_events_carry_each_wave(gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await wave_audience(gql, sandbox, 20)
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id, waves=WAVES))
    sandbox_id = (await Sandbox.get(name=sandbox.name)).id
    assert (await activate_campaign(sandbox_id, pk(campaign["id"]), actor="test", now=T0)).run is not None

    async with progress_events(server, sandbox.admin, campaign["id"]) as next_event:
        first = await next_event()
        assert (first["status"], first["waves"]) == ("PENDING", [])  # no audience taken yet: no wave

        # Wave 1 sent; the run waits for wave 2's time: its events say so, wave by wave.
        await step(gql, T0)
        while not (event := await next_event())["waves"] or not event["waves"][0]["finished"]:
            assert event["status"] == "RUNNING", event
        assert event["status"] == "RUNNING" and event["sent"] == 2
        assert wave_view(event["waves"]) == [
            (1, 2, T0, True, 2, 0),
            (2, 4, T0 + 30 * MINUTE, False, 0, 4),
            (3, 6, T0 + 60 * MINUTE, False, 0, 6),
            (4, 8, T0 + 90 * MINUTE, False, 0, 8),
        ]
        # A subscriber arriving now gets them in its first event (read from the ledger).
        async with progress_events(server, sandbox.admin, campaign["id"]) as late:
            assert (await late())["waves"] == event["waves"]

        for minutes in (30, 60, 90):
            await step(gql, T0 + minutes * MINUTE)
        while (event := await next_event())["status"] != "SUCCEEDED":
            assert event["status"] == "RUNNING", event
    # The final event (through the outbox, never lost): every wave finished.
    assert event["sent"] == 20
    assert wave_view(event["waves"]) == [
        (1, 2, T0, True, 2, 0),
        (2, 4, T0 + 30 * MINUTE, True, 4, 0),
        (3, 6, T0 + 60 * MINUTE, True, 6, 0),
        (4, 8, T0 + 90 * MINUTE, True, 8, 0),
    ]
