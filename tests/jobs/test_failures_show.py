"""Failures that show (issue 16, point 5): with an SMTP server that answers 4xx to everything, a run shows its
deliveries waiting for a retry and the latest error reason with its count (the run, its progress), and each
batch whose sends all failed logs one WARNING naming the reason."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from strawberry import relay

from jobs.context import job_ctx
from jobs.runs import execute_run
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, create
from tests.graphql.test_profiles import upsert
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_counters import first_progress
from tests.jobs.test_runs import email_preset, gold, gold_segment
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

RUNS = """query($id: ID!) { campaignRuns(campaignId: $id) { edges { node {
  status sent failed pending retrying lastError { reason count } } } } }"""


async def test_a_run_whose_sends_all_fail_for_now_shows_why(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    handler = SinkHandler(
        credentials=(SMTP_USER, SMTP_PASSWORD), fail_data_reply="451 4.3.0 Try again later", fail_data_count=10**6
    )
    async with smtp_sink(handler) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        await upsert(gql, sandbox.admin, [gold(f"p{i}@example.com", f"P{i}") for i in range(3)])
        campaign = await create(
            gql,
            sandbox,
            {
                "name": "Refused",
                "action": {"channel": "EMAIL", "presetId": preset_id},
                "content": {"email": {"subject": "Hi", "html": "<p>x {{ context.unsubscribeUrl }}</p>", "text": "x"}},
                "audience": {"segmentId": await gold_segment(gql, sandbox), "namespaceCode": "Email"},
                # Starts later, so nothing enqueues it: this test runs the execution itself.
                "schedule": {"startAt": "2099-01-01T09:00:00+00:00"},
            },
        )
        assert (await activate(gql, sandbox, campaign["id"]))["campaign"]["status"] == "SCHEDULED"
        row = await Campaign.get(id=int(relay.GlobalID.from_id(campaign["id"]).node_id))
        await Campaign.filter(id=row.id).update(status="LIVE")  # as the dispatcher would at the start time
        run = await CampaignRun.create(
            sandbox_id=row.sandbox_id, campaign_id=row.id, scheduled_for=datetime(2099, 1, 1, 10, tzinfo=UTC)
        )
        ctx = job_ctx(server.settings)
        with caplog.at_level(logging.WARNING, logger="jobs.runs"):
            await execute_run(ctx, run.id)
        if "smtp_pools" in ctx:
            await ctx["smtp_pools"].close()

    # Still running: every message waits for its retry, and says why.
    stored = await CampaignRun.get(id=run.id)
    assert stored.status is RunStatus.RUNNING
    key = sandbox.keys[Role.VIEWER]
    (node,) = [e["node"] for e in (await gql(RUNS, {"id": campaign["id"]}, key=key))["campaignRuns"]["edges"]]
    assert node == {
        "status": "RUNNING", "sent": 0, "failed": 0, "pending": 3, "retrying": 3,
        "lastError": {"reason": "TEMPORARY", "count": 3},
    }  # fmt: skip
    progress = await first_progress(server, key, campaign["id"])
    assert (progress["pending"], progress["retrying"]) == (3, 3)

    # One WARNING for the one batch, not one per message, with the reason and the server's answer.
    warnings = [r for r in caplog.records if r.name == "jobs.runs" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "all 3 sends of a batch failed" in warnings[0].getMessage()
    assert "TEMPORARY" in warnings[0].getMessage() and "451" in warnings[0].getMessage()
