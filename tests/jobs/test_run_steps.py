"""A run's steps are recorded (claimed, snapshot done, finished); its transitions, and the dispatcher's, are
audited and read back through `auditEvents`. (A snapshot cut off and taken again: tests/crash/test_snapshot_cut.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from strawberry import relay

from jobs.context import job_ctx
from jobs.dispatcher import dispatch
from jobs.runs import execute_run
from models.campaigns.campaign import Campaign, CampaignRun
from tests.conftest import GraphQLClient, SandboxKeys
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


async def run_sandbox(campaign_id: int) -> int:
    return (await Campaign.get(id=campaign_id)).sandbox_id


async def run_audit(gql: GraphQLClient, sandbox: SandboxKeys, run_id: int) -> list[tuple[str, str]]:
    nodes = (await gql(AUDIT, {"type": "CampaignRun"}, key=sandbox.admin))["auditEvents"]["nodes"]
    return [(n["actor"], n["action"]) for n in reversed(nodes) if n["objectId"] == str(run_id)]


async def test_dispatcher_and_worker_transitions_are_in_audit_events(
    gql: GraphQLClient, sandbox: SandboxKeys, app: Starlette
) -> None:
    start = datetime(2097, 5, 6, 7, 8, tzinfo=UTC)
    campaign = await scheduled(gql, sandbox, start.isoformat())
    report = await dispatch(start + timedelta(seconds=2))
    assert pk(campaign) in report.started
    run = await CampaignRun.get(campaign_id=pk(campaign))
    assert (await execute_run(job_ctx(app.state.settings), run.id))["status"] == "SUCCEEDED"

    events = (await gql(AUDIT, {"type": "Campaign"}, key=sandbox.admin))["auditEvents"]["nodes"]
    changes = [e for e in reversed(events) if e["before"] and e["objectId"] == str(pk(campaign))]
    mine = [(e["actor"], e["action"], e["before"]["status"], e["after"]["status"]) for e in changes]
    assert mine[-1] == ("system:dispatcher", "START", "SCHEDULED", "LIVE"), mine
    assert mine[-2][1:] == ("ACTIVATE", "DRAFT", "SCHEDULED") and mine[-2][0].startswith("apikey:")
    assert await run_audit(gql, sandbox, run.id) == [("system:worker", "RUN_CLAIM"), ("system:worker", "RUN_SUCCEED")]
    runs = (await gql(RUNS, {"id": campaign}, key=sandbox.admin))["campaignRuns"]["nodes"]
    assert runs == [{"status": "SUCCEEDED", "sent": 3, "targeted": 3, "outcomeReason": None}]


async def test_an_empty_audience_succeeds_and_says_so(gql: GraphQLClient, sandbox: SandboxKeys, app: Starlette) -> None:
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
    outcome: dict[str, Any] = await execute_run(job_ctx(app.state.settings), run.id)
    assert outcome["status"] == "SUCCEEDED" and outcome["sent"] == 0, outcome
    assert (await CampaignRun.get(id=run.id)).snapshot_done_at is not None
    runs = (await gql(RUNS, {"id": campaign}, key=sandbox.admin))["campaignRuns"]["nodes"]
    assert runs == [{"status": "SUCCEEDED", "sent": 0, "targeted": 0, "outcomeReason": "AUDIENCE_EMPTY"}]
