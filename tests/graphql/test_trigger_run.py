"""An API campaign's triggers share its one long-lived run (issue 17, throughput): acceptance only adds ledger rows
to it, a coalesced job (or the dispatcher, when that job is lost) sends them across triggers, and each trigger's
own counts stay right.

Real parts: the SMTP sink (aiosmtpd), the suite's database and Redis, queued jobs run by `drain_jobs()`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import websockets
from arq.constants import default_queue_name
from tortoise import Tortoise
from tortoise.transactions import in_transaction

from jobs.queue import SEND_TRIGGERS, JobQueue
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.campaigns.transitions import finish_run
from models.ledger.delivery import Delivery
from models.tenancy.sandbox import Role
from models.triggers.accept import accept_trigger
from models.triggers.trigger import CampaignTrigger
from models.triggers.values import TriggerRecipient, TriggerRequest
from tests.conftest import TEST_DB, GraphQLClient, RunningServer, SandboxKeys
from tests.e2e.polling import wait_until
from tests.graphql.test_campaigns import STOP
from tests.graphql.test_triggers import DELIVERIES, api_campaign, people, pk, recipient, trigger
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER
from tests.serving import subscribe

REPORT = """query($id: ID!, $window: ReportWindowInput) { campaignReport(id: $id, window: $window) {
  ... on CampaignReport { window { kind triggerId } audience sent } } }"""
STATUS = """subscription($id: ID!) { campaignTriggerStatus(triggerId: $id) {
  triggerId status accepted sent failed excluded pending final } }"""


@contextlib.asynccontextmanager
async def transactional_campaign(gql: GraphQLClient, sandbox: SandboxKeys) -> AsyncIterator[tuple[SinkHandler, str]]:
    """A LIVE transactional API campaign sending to an SMTP sink, and the people the tests name."""
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "TRANSACTIONAL")
        await people(gql, sandbox)
        yield handler, campaign_id


async def test_triggers_share_one_run_and_a_profile_gets_a_message_per_trigger(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    async with transactional_campaign(gql, sandbox) as (handler, campaign_id):
        # The first triggers arrive together: they agree on one run (the unique index makes the losers retry).
        bodies = [
            {
                "campaignId": campaign_id,
                "idempotencyKey": f"order-{n}",
                "context": {"order": {"id": f"A-{n}"}},
                "recipients": [recipient("yes@example.com", name=f"Y{n}")]
                + ([recipient("no@example.com", name="N")] if n == 0 else []),
            }
            for n in range(3)
        ]
        results = await asyncio.gather(*(trigger(gql, sandbox, body) for body in bodies))
        assert {r["__typename"] for r in results} == {"CampaignTriggerSuccess"}, results
        run_ids = {r["trigger"]["runId"] for r in results}
        assert len(run_ids) == 1, run_ids
        await gql.drain_jobs()

    runs = await CampaignRun.filter(campaign_id=pk(campaign_id))
    assert len(runs) == 1 and runs[0].open_for_triggers and runs[0].status is RunStatus.RUNNING
    # Its wake-ups read the run's row, never write it: every acceptance holds that row FOR KEY SHARE.
    assert runs[0].lease_until is None
    # yes@ was named by the three triggers: three rows, three messages, each with its own Message-ID and context.
    rows = await Delivery.filter(campaign_id=pk(campaign_id)).order_by("id")
    assert sorted((r.address, r.status.value) for r in rows) == [
        ("no@example.com", "SENT"),
        ("yes@example.com", "SENT"),
        ("yes@example.com", "SENT"),
        ("yes@example.com", "SENT"),
    ]
    assert len({r.idempotency_key for r in rows}) == 4
    subjects = sorted(m.parsed["Subject"] for m in handler.received if m.recipients == ["yes@example.com"])
    assert subjects == ["Order A-0", "Order A-1", "Order A-2"]
    assert len({m.message_id for m in handler.received}) == 4

    first = results[0]["trigger"]["id"]
    row = await CampaignTrigger.get(id=pk(first))
    assert (row.accepted, row.sent, row.failed, row.excluded, row.pending) == (2, 2, 0, 0, 0)
    listed = await gql(DELIVERIES, {"id": first}, key=sandbox.keys[Role.VIEWER])
    assert sorted(e["node"]["address"] for e in listed["deliveries"]["edges"]) == ["no@example.com", "yes@example.com"]
    # The report by trigger covers that trigger's rows, not the whole shared run's.
    by_trigger = await gql(REPORT, {"id": campaign_id, "window": {"triggerId": first}}, key=sandbox.keys[Role.VIEWER])
    assert by_trigger["campaignReport"]["window"] == {"kind": "TRIGGER", "triggerId": first}
    assert (by_trigger["campaignReport"]["audience"], by_trigger["campaignReport"]["sent"]) == (2, 2)
    by_run = await gql(REPORT, {"id": campaign_id, "window": {"runId": run_ids.pop()}}, key=sandbox.keys[Role.VIEWER])
    assert (by_run["campaignReport"]["audience"], by_run["campaignReport"]["sent"]) == (4, 4)


async def test_a_lost_wake_up_is_sent_by_the_dispatcher_and_wake_ups_coalesce(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    async with transactional_campaign(gql, sandbox) as (handler, campaign_id):
        campaign = pk(campaign_id)

        def request(n: int) -> TriggerRequest:
            one = TriggerRecipient(None, "Email", "yes@example.com", {"name": "Y"})
            return TriggerRequest(campaign, f"lost-{n}", (one,), {"order": {"id": f"L-{n}"}})

        sandbox_pk = (await Campaign.get(id=campaign)).sandbox_id
        # Accepted by the domain function alone: committed, but nobody woke the sender (Redis lost the job).
        answers = [await accept_trigger(sandbox_pk, request(n)) for n in range(3)]
        await gql.drain_jobs()
        assert handler.received == []
        assert await Delivery.filter(campaign_id=campaign, status="QUEUED").count() == 3

        # The dispatcher's pass finds the run's rows to claim and wakes it.
        now = datetime.now(UTC)
        await gql.drain_jobs(dispatch_at=now)
        assert len(handler.received) == 3
        assert await Delivery.filter(campaign_id=campaign, status="SENT").count() == 3
        assert {t.pending for t in await CampaignTrigger.filter(campaign_id=campaign)} == {0}

        # Fifty acceptances in one window make one wake-up (two if the window ended meanwhile), due at its end.
        run_id = answers[0].run_id
        assert run_id is not None
        later = [await accept_trigger(sandbox_pk, request(n)) for n in range(3, 53)]
        redis = gql.app.state.redis
        queue = JobQueue(redis)
        for answer in later:
            await queue.wake_triggers(run_id, 5.0, f"t{answer.trigger_id}")
        prefix = f"{SEND_TRIGGERS}:{run_id}:w".encode()
        jobs = [j for j in await redis.zrange(default_queue_name, 0, -1) if j.startswith(prefix)]
        assert 1 <= len(jobs) <= 2, jobs
        await gql.drain_jobs(until=datetime.now(UTC) + timedelta(seconds=11))
    assert len(handler.received) == 53
    assert len({m.message_id for m in handler.received}) == 53


async def test_a_stop_ends_the_trigger_run_once_its_rows_are_sent(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    async with transactional_campaign(gql, sandbox) as (handler, campaign_id):
        yes = recipient("yes@example.com", name="Y")
        body = {"campaignId": campaign_id, "idempotencyKey": "s-1", "recipients": [yes]}
        accepted = await trigger(gql, sandbox, {**body, "context": {"order": {"id": "S"}}})
        assert accepted["__typename"] == "CampaignTriggerSuccess", accepted
        stopped = await gql(STOP, {"input": {"id": campaign_id}}, key=sandbox.keys[Role.PUBLISHER])
        assert stopped["campaignStop"]["__typename"] == "CampaignSuccess", stopped
        # Accepted before the stop: still sent; then the run ends (the dispatcher wakes it once nothing is left).
        await gql.drain_jobs()
        await gql.drain_jobs(dispatch_at=datetime.now(UTC))
        assert len(handler.received) == 1
        run = await CampaignRun.get(id=pk(accepted["trigger"]["runId"]))
        assert run.status is RunStatus.SUCCEEDED and run.sent == 1
        refused = await trigger(gql, sandbox, {**body, "idempotencyKey": "s-2", "context": {"order": {"id": "T"}}})
        assert refused["__typename"] == "InvalidStateError", refused


async def test_the_status_subscription_follows_the_trigger_s_own_rows(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    async with transactional_campaign(gql, sandbox) as (_handler, campaign_id):
        # Another trigger in the same run, sent in the same batch: its counts are not this one's.
        other = [recipient("yes@example.com", name="O"), recipient("unsubscribed@example.com", name="U")]
        mine = [recipient("no@example.com", name="N"), recipient("bounced@example.com", name="B")]
        order = {"order": {"id": "O-1"}}
        results = [
            await trigger(
                gql, sandbox, {"campaignId": campaign_id, "idempotencyKey": key, "recipients": rows, "context": order}
            )
            for key, rows in (("other", other), ("mine", mine))
        ]
        trigger_id = results[1]["trigger"]["id"]
        async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox.keys[Role.VIEWER]}"}}
            await ws.send(json.dumps(init))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            message = {"id": "1", "type": "subscribe", "payload": {"query": STATUS, "variables": {"id": trigger_id}}}
            answer = await subscribe(server, ws, message)
            events = [answer] if answer is not None else []
            async with asyncio.timeout(30):
                if not events:
                    events.append(json.loads(await ws.recv()))
                await gql.drain_jobs()
                while (
                    events[-1]["type"] == "next" and not events[-1]["payload"]["data"]["campaignTriggerStatus"]["final"]
                ):
                    events.append(json.loads(await ws.recv()))
    states = [e["payload"]["data"]["campaignTriggerStatus"] for e in events]
    # Accepted: one queued, one excluded (suppressed); then its own row sent, whatever the other trigger did.
    assert (states[0]["accepted"], states[0]["pending"], states[0]["excluded"], states[0]["final"]) == (2, 1, 1, False)
    last = states[-1]
    assert (last["triggerId"], last["sent"], last["failed"], last["excluded"], last["pending"]) == (
        trigger_id,
        1,
        0,
        1,
        0,
    )
    assert last["final"] is True


async def test_a_finish_leaves_a_trigger_run_open_while_rows_wait(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    """Rows committed after the finisher counted (an acceptance that read the campaign LIVE before its stop) are
    sent, not left QUEUED in an ended run: the finish checks for them in its own transaction."""
    async with transactional_campaign(gql, sandbox) as (handler, campaign_id):
        yes = recipient("yes@example.com", name="Y")
        body = {
            "campaignId": campaign_id,
            "idempotencyKey": "f-1",
            "recipients": [yes],
            "context": {"order": {"id": "F"}},
        }
        accepted = await trigger(gql, sandbox, body)
        assert accepted["__typename"] == "CampaignTriggerSuccess", accepted
        stopped = await gql(STOP, {"input": {"id": campaign_id}}, key=sandbox.keys[Role.PUBLISHER])
        assert stopped["campaignStop"]["__typename"] == "CampaignSuccess", stopped
        run = await CampaignRun.get(id=pk(accepted["trigger"]["runId"]))
        # A finisher that counted before the row was there: the finish refuses, the row is sent, then it ends.
        assert await finish_run(run, RunStatus.SUCCEEDED, None, datetime.now(UTC)) is False
        assert (await CampaignRun.get(id=run.id)).status is RunStatus.RUNNING
        await gql.drain_jobs(dispatch_at=datetime.now(UTC))
        await gql.drain_jobs(dispatch_at=datetime.now(UTC))
    assert len(handler.received) == 1
    assert (await CampaignRun.get(id=run.id)).status is RunStatus.SUCCEEDED


@pytest.mark.skipif(TEST_DB != "postgres", reason="row locks are PostgreSQL's (SQLite's transactions are serial)")
async def test_a_finish_waits_for_an_acceptance_in_flight(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    """An acceptance holds the run's row shared until it commits (trigger_audience); a finish takes it exclusively,
    so it sees the acceptance's rows once it gets the lock, instead of ending the run under them."""
    async with transactional_campaign(gql, sandbox) as (handler, campaign_id):
        yes = recipient("yes@example.com", name="Y")
        body = {
            "campaignId": campaign_id,
            "idempotencyKey": "w-1",
            "recipients": [yes],
            "context": {"order": {"id": "W"}},
        }
        accepted = await trigger(gql, sandbox, body)
        await gql.drain_jobs()
        sent = await Delivery.get(trigger_id=pk(accepted["trigger"]["id"]))
        run = await CampaignRun.get(id=sent.run_id)
        stopped = await gql(STOP, {"input": {"id": campaign_id}}, key=sandbox.keys[Role.PUBLISHER])
        assert stopped["campaignStop"]["__typename"] == "CampaignSuccess", stopped
        holding, release = asyncio.Event(), asyncio.Event()

        async def acceptance_in_flight() -> None:
            # What trigger_audience does: the run's row shared, a QUEUED row written, the commit later.
            async with in_transaction() as conn:
                await conn.execute_query(
                    "SELECT id FROM campaign_run WHERE id = $1 AND status = 'RUNNING' FOR KEY SHARE", [run.id]
                )
                await conn.execute_query(
                    "INSERT INTO delivery (sandbox_id, run_id, campaign_id, trigger_id, context, profile_id, status, "
                    "address, idempotency_key, attempts, created_at, updated_at) SELECT sandbox_id, run_id, "
                    "campaign_id, trigger_id, context, profile_id, 'QUEUED', address, idempotency_key || '-late', 0, "
                    "created_at, updated_at FROM delivery WHERE id = $1",
                    [sent.id],
                )
                holding.set()
                await release.wait()

        accepting = asyncio.create_task(acceptance_in_flight())
        await holding.wait()
        finishing = asyncio.create_task(finish_run(run, RunStatus.SUCCEEDED, None, datetime.now(UTC)))

        async def finisher_waits_on_a_lock() -> bool:
            conn = Tortoise.get_connection("default")
            rows = await conn.execute_query_dict(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            return rows[0]["n"] > 0

        await wait_until(finisher_waits_on_a_lock)
        release.set()
        await accepting
        assert await finishing is False
        await gql.drain_jobs(dispatch_at=datetime.now(UTC))
        await gql.drain_jobs(dispatch_at=datetime.now(UTC))
    assert len(handler.received) == 2
    assert (await CampaignRun.get(id=run.id)).status is RunStatus.SUCCEEDED
