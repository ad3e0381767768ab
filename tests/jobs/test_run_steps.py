"""A run's steps are recorded (claimed, snapshot done, finished) and a resumed run redoes what is not; its
transitions, and the dispatcher's, are audited and read back through `auditEvents`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from strawberry import relay

from jobs.context import job_ctx
from jobs.dispatcher import dispatch
from jobs.runs import execute_run
from models.campaigns.campaign import CampaignRun, RunStatus
from models.ledger.delivery import Delivery, InboxMessage
from tests.conftest import TEST_DB, GraphQLClient, RunningServer, SandboxKeys, wait_until
from tests.graphql.test_campaigns import activate, active_in_app_preset, audience, create, ready_input
from tests.graphql.test_profiles import upsert
from tests.jobs.test_runs import gold

RUNS = """query($id: ID!) { campaignRuns(campaignId: $id) {
  nodes { status sent targeted outcomeReason } } }"""
AUDIT = """query($type: String) { auditEvents(first: 50, objectType: $type) {
  nodes { actor action objectId before after } } }"""


def pk(global_id: str) -> int:
    return int(relay.GlobalID.from_id(global_id).node_id)


async def scheduled(gql: GraphQLClient, sandbox: SandboxKeys, start: str, segment_id: str | None = None) -> str:
    """A campaign SCHEDULED for `start` (far ahead: the session's dispatcher leaves it alone)."""
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = segment_id or await audience(gql, sandbox)
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id, schedule={"startAt": start}))
    assert (await activate(gql, sandbox, campaign["id"]))["campaign"]["status"] == "SCHEDULED"
    return campaign["id"]


@pytest.mark.skipif(TEST_DB != "postgres", reason="pg_terminate_backend and LOCK TABLE need PostgreSQL")
async def test_a_snapshot_cut_off_before_commit_is_taken_again_on_resume(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, database_url: str
) -> None:
    start = datetime(2097, 4, 5, 6, 7, tzinfo=UTC)
    campaign_id = pk(await scheduled(gql, sandbox, start.isoformat()))
    run = await CampaignRun.create(
        sandbox_id=(await run_sandbox(campaign_id)), campaign_id=campaign_id, scheduled_for=start
    )
    ctx = job_ctx(server.settings)

    # The test holds the ledger: the snapshot's INSERT waits on the lock, after the claim committed RUNNING.
    locker = await asyncpg.connect(database_url)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE delivery IN EXCLUSIVE MODE")
        job = asyncio.create_task(execute_run(ctx, run.id))
        blocked = await wait_until(lambda: snapshot_waiting(locker))
        await locker.fetchval("SELECT pg_terminate_backend($1)", blocked)
        with pytest.raises(Exception):  # noqa: B017 - whichever error the cut connection raises
            await job
        await transaction.rollback()
    finally:
        await locker.close()

    cut = await CampaignRun.get(id=run.id)
    assert cut.status is RunStatus.RUNNING and cut.snapshot_done_at is None
    assert await Delivery.filter(run_id=run.id).count() == 0

    # Its lease runs out (within the dispatcher's grace, so the session's worker does not race this job).
    await CampaignRun.filter(id=run.id).update(lease_until=datetime.now(UTC) - timedelta(seconds=1))
    outcome = await execute_run(ctx, run.id)
    assert outcome["status"] == "SUCCEEDED" and outcome["sent"] == 3, outcome
    done = await CampaignRun.get(id=run.id)
    assert done.snapshot_done_at is not None and done.outcome_reason is None
    assert await InboxMessage.filter(campaign_id=campaign_id).count() == 3
    actions = await run_audit(gql, sandbox, run.id)
    assert actions == [
        ("system:worker", "RUN_CLAIM"),
        ("system:worker", "RUN_RESUME"),
        ("system:worker", "RUN_SUCCEED"),
    ]


async def run_sandbox(campaign_id: int) -> int:
    from models.campaigns.campaign import Campaign

    return (await Campaign.get(id=campaign_id)).sandbox_id


async def snapshot_waiting(conn: asyncpg.Connection) -> int | None:
    """The backend waiting for the test's lock on delivery (statistics are read afresh, not per transaction)."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return await conn.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid() AND query LIKE '%INSERT INTO delivery%'"
    )


async def run_audit(gql: GraphQLClient, sandbox: SandboxKeys, run_id: int) -> list[tuple[str, str]]:
    nodes = (await gql(AUDIT, {"type": "CampaignRun"}, key=sandbox.admin))["auditEvents"]["nodes"]
    return [(n["actor"], n["action"]) for n in reversed(nodes) if n["objectId"] == str(run_id)]


async def test_dispatcher_and_worker_transitions_are_in_audit_events(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    start = datetime(2097, 5, 6, 7, 8, tzinfo=UTC)
    campaign = await scheduled(gql, sandbox, start.isoformat())
    report = await dispatch(start + timedelta(seconds=2))
    assert pk(campaign) in report.started
    run = await CampaignRun.get(campaign_id=pk(campaign))
    assert (await execute_run(job_ctx(server.settings), run.id))["status"] == "SUCCEEDED"

    events = (await gql(AUDIT, {"type": "Campaign"}, key=sandbox.admin))["auditEvents"]["nodes"]
    changes = [e for e in reversed(events) if e["before"] and e["objectId"] == str(pk(campaign))]
    mine = [(e["actor"], e["action"], e["before"]["status"], e["after"]["status"]) for e in changes]
    assert mine[-1] == ("system:dispatcher", "START", "SCHEDULED", "LIVE"), mine
    assert mine[-2][1:] == ("ACTIVATE", "DRAFT", "SCHEDULED") and mine[-2][0].startswith("apikey:")
    assert await run_audit(gql, sandbox, run.id) == [("system:worker", "RUN_CLAIM"), ("system:worker", "RUN_SUCCEED")]
    runs = (await gql(RUNS, {"id": campaign}, key=sandbox.admin))["campaignRuns"]["nodes"]
    assert runs == [{"status": "SUCCEEDED", "sent": 3, "targeted": 3, "outcomeReason": None}]


async def test_an_empty_audience_succeeds_and_says_so(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    from tests.graphql.test_segments import CREATE as SEGMENT_CREATE
    from tests.graphql.test_segments import cond

    await upsert(gql, sandbox.admin, [gold("a@example.com", "Ann")])
    created = await gql(
        SEGMENT_CREATE,
        {"input": {"kind": "RULE", "name": "nobody", "rule": cond("tier", "EQ", "platinum")}},
        key=sandbox.admin,
    )
    start = datetime(2097, 6, 7, 8, 9, tzinfo=UTC)
    campaign = await scheduled(gql, sandbox, start.isoformat(), created["segmentCreate"]["segment"]["id"])
    run = await CampaignRun.create(
        sandbox_id=await run_sandbox(pk(campaign)), campaign_id=pk(campaign), scheduled_for=start
    )
    outcome: dict[str, Any] = await execute_run(job_ctx(server.settings), run.id)
    assert outcome["status"] == "SUCCEEDED" and outcome["sent"] == 0, outcome
    assert (await CampaignRun.get(id=run.id)).snapshot_done_at is not None
    runs = (await gql(RUNS, {"id": campaign}, key=sandbox.admin))["campaignRuns"]["nodes"]
    assert runs == [{"status": "SUCCEEDED", "sent": 0, "targeted": 0, "outcomeReason": "AUDIENCE_EMPTY"}]
