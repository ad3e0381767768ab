"""`campaignRunResendFailed` end to end: a real SMTP sink refuses some recipients for a while, their retry
period runs out (RETRY_EXPIRED), the sink recovers, the resend sends exactly those messages once more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from strawberry import relay

from jobs.context import job_ctx
from jobs.runs import execute_run
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.ledger.delivery import Delivery
from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, create
from tests.graphql.test_profiles import upsert
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_runs import email_preset, gold, gold_segment
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

RESEND = """
mutation($input: CampaignRunResendFailedInput!) {
  campaignRunResendFailed(input: $input) {
    __typename
    ... on CampaignRunResendFailedSuccess { requeued run { id status } }
    ... on InvalidStateError { currentStatus }
    ... on NotFoundError { id }
    ... on NothingToResendError { runId }
  }
}
"""
REPORT = """
query($id: ID!, $run: ID!) {
  campaignReport(id: $id, window: {runId: $run}) {
    ... on CampaignReport { targeted sent delivered hardBounces errors errorsByReason { reason count } }
  }
}
"""
LATER = "451 4.2.1 Mailbox busy, try later"


async def resend(gql: GraphQLClient, key: str, run_id: str) -> dict[str, Any]:
    return (await gql(RESEND, {"input": {"runId": run_id}}, key=key))["campaignRunResendFailed"]


async def statuses(run_id: int) -> dict[str, tuple[str, str | None, int]]:
    return {d.address: (d.status.value, d.reason, d.attempts) for d in await Delivery.filter(run_id=run_id)}


async def test_resend_sends_only_the_retryable_failures_once(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    handler = SinkHandler(
        credentials=(SMTP_USER, SMTP_PASSWORD),
        rcpt_replies={
            "slow1@example.com": LATER,
            "slow2@example.com": LATER,
            "gone@example.com": "550 5.1.1 No such user",
        },
    )
    async with smtp_sink(handler) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        people = [gold(f"ok{i}@example.com", f"Ok{i}") for i in range(4)]
        people += [gold(a, "x") for a in ("slow1@example.com", "slow2@example.com", "gone@example.com")]
        people.append(gold("no@example.com", "No", consent={"email": "N"}))
        await upsert(gql, sandbox.admin, people)
        campaign = await create(
            gql,
            sandbox,
            {
                "name": "Resend",
                "action": {"channel": "EMAIL", "presetId": preset_id},
                "content": {"email": {"subject": "Hi", "html": "<p>x {{ context.unsubscribeUrl }}</p>", "text": "x"}},
                "audience": {"segmentId": await gold_segment(gql, sandbox), "namespaceCode": "Email"},
                # Starts later, so nothing enqueues it: this test runs the first execution itself.
                "schedule": {"startAt": "2099-01-01T09:00:00+00:00"},
            },
        )
        assert (await activate(gql, sandbox, campaign["id"]))["campaign"]["status"] == "SCHEDULED"
        row = await Campaign.get(id=int(relay.GlobalID.from_id(campaign["id"]).node_id))
        await Campaign.filter(id=row.id).update(status="LIVE")
        # Started long ago: the preset's retry period is over, so a temporary refusal fails as RETRY_EXPIRED.
        run = await CampaignRun.create(
            sandbox_id=row.sandbox_id,
            campaign_id=row.id,
            scheduled_for=datetime(2099, 1, 1, 10, tzinfo=UTC),
            started_at=datetime.now(UTC) - timedelta(days=30),
        )
        ctx: dict[str, Any] = job_ctx(server.settings)
        await execute_run(ctx, run.id)
        if "smtp_pools" in ctx:
            await ctx["smtp_pools"].close()
        run = await CampaignRun.get(id=run.id)
        assert run.status is RunStatus.SUCCEEDED and (run.sent, run.failed) == (4, 3)
        before = await statuses(run.id)
        assert {a: s[:2] for a, s in before.items()} == {
            **{f"ok{i}@example.com": ("SENT", None) for i in range(4)},
            "slow1@example.com": ("FAILED", "RETRY_EXPIRED"),
            "slow2@example.com": ("FAILED", "RETRY_EXPIRED"),
            "gone@example.com": ("FAILED", "HARD_BOUNCE"),
            "no@example.com": ("EXCLUDED", "NO_CONSENT"),
        }
        assert sorted(r.recipients[0] for r in sink.handler.received) == [f"ok{i}@example.com" for i in range(4)]
        run_id = str(relay.GlobalID("CampaignRun", str(run.id)))
        report = await gql(REPORT, {"id": campaign["id"], "run": run_id}, key=sandbox.keys[Role.VIEWER])
        assert report["campaignReport"]["errorsByReason"] == [{"reason": "RETRY_EXPIRED", "count": 2}]

        # The mailbox is free again; the unknown user is still unknown.
        handler.rcpt_replies = {"gone@example.com": "550 5.1.1 No such user"}
        done = await resend(gql, sandbox.keys[Role.PUBLISHER], run_id)
        assert done == {"__typename": "CampaignRunResendFailedSuccess", "requeued": 2,
                        "run": {"id": run_id, "status": "RUNNING"}}  # fmt: skip

        await gql.drain_jobs()
        run = await CampaignRun.get(id=run.id)
        assert run.status is not RunStatus.RUNNING
        # The worker's job and a dispatcher resume may both have run: the ledger decides, nothing is sent twice.
        await execute_run(job_ctx(server.settings), run.id)

    assert run.status is RunStatus.SUCCEEDED and run.finished_at is not None
    assert (run.targeted, run.excluded, run.sent, run.failed) == (7, 1, 6, 1)
    after = await statuses(run.id)
    assert after["slow1@example.com"] == ("SENT", None, 1) and after["slow2@example.com"] == ("SENT", None, 1)
    assert after["gone@example.com"] == before["gone@example.com"]
    assert {a: s for a, s in after.items() if a.startswith("ok")} == {
        a: s for a, s in before.items() if a.startswith("ok")
    }
    received = sorted(r.recipients[0] for r in sink.handler.received)
    assert received == sorted([f"ok{i}@example.com" for i in range(4)] + ["slow1@example.com", "slow2@example.com"])
    assert len(set(sink.handler.message_ids)) == len(sink.handler.message_ids)
    figures = (await gql(REPORT, {"id": campaign["id"], "run": run_id}, key=sandbox.keys[Role.VIEWER]))[
        "campaignReport"
    ]
    assert figures == {"targeted": 8, "sent": 7, "delivered": 6, "hardBounces": 1, "errors": 0, "errorsByReason": []}
    summary = await gql(
        "query($id: ID!) { campaign(id: $id) { summary "
        "{ profilesTargeted actionsDelivered actionsFailed excluded } } }",
        {"id": campaign["id"]},
        key=sandbox.keys[Role.VIEWER],
    )
    # From the run counters the executor stored: the same audience as the report, before exclusions.
    assert summary["campaign"]["summary"] == {
        "profilesTargeted": 8, "actionsDelivered": 6, "actionsFailed": 1, "excluded": 1,
    }  # fmt: skip

    # Only a hard bounce is left: nothing worth another attempt, and the run is left as it was.
    again = await resend(gql, sandbox.keys[Role.PUBLISHER], run_id)
    assert again == {"__typename": "NothingToResendError", "runId": run_id}
    assert (await CampaignRun.get(id=run.id)).status is RunStatus.SUCCEEDED


async def test_resend_is_refused_for_stopped_campaigns_and_unfinished_runs(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    campaign = await create(gql, sandbox, {"name": "Refused"})
    row = await Campaign.get(id=int(relay.GlobalID.from_id(campaign["id"]).node_id))
    await Campaign.filter(id=row.id).update(status="LIVE")
    run = await CampaignRun.create(
        sandbox_id=row.sandbox_id, campaign_id=row.id, scheduled_for=datetime(2099, 1, 1, tzinfo=UTC),
        status=RunStatus.RUNNING,
    )  # fmt: skip
    run_id = str(relay.GlobalID("CampaignRun", str(run.id)))
    key = sandbox.keys[Role.PUBLISHER]
    assert await resend(gql, key, run_id) == {"__typename": "InvalidStateError", "currentStatus": "RUNNING"}
    await CampaignRun.filter(id=run.id).update(status=RunStatus.SUCCEEDED)
    assert await resend(gql, key, run_id) == {"__typename": "NothingToResendError", "runId": run_id}
    await Campaign.filter(id=row.id).update(status="STOPPED")
    assert await resend(gql, key, run_id) == {"__typename": "InvalidStateError", "currentStatus": "STOPPED"}
    assert (await CampaignRun.get(id=run.id)).status is RunStatus.SUCCEEDED
    unknown = str(relay.GlobalID("CampaignRun", "999999999"))
    assert await resend(gql, key, unknown) == {"__typename": "NotFoundError", "id": unknown}
