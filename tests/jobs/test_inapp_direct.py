"""In-app runs delivered batch by batch in one transaction each (jobs/inapp_direct.py), several senders at once:
each row written to the inbox once and SENT once, and the run finished by one of them. (A worker broken inside a
batch's transaction: tests/crash/test_inapp_crash.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from strawberry import relay

import jobs.runs
from jobs.context import job_ctx
from jobs.runs import execute_run, send_run_part
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.ledger.delivery import Delivery, InboxMessage
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.e2e.polling import wait_until
from tests.graphql.test_campaigns import activate, active_in_app_preset, create
from tests.graphql.test_profiles import upsert
from tests.jobs.test_runs import gold, gold_segment

PROFILES = 40


async def test_senders_at_once_deliver_each_row_once_and_one_finishes(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs.runs, "IN_APP_BATCH_SIZE", 4)  # many batches, so the senders interleave
    row, run = await live_in_app_run(gql, sandbox, PROFILES, "d", "Hi {{ profile.person.name.firstName }}")

    async def part(number: int) -> dict[str, Any]:
        # Each part a worker process of its own (its own context), once the snapshot is recorded.
        await wait_until(lambda: CampaignRun.filter(id=run.id, snapshot_done_at__not_isnull=True).exists())
        return await send_run_part(job_ctx(server.settings), run.id, number)

    results = await asyncio.gather(execute_run(job_ctx(server.settings), run.id), part(1), part(2))
    finished = [r for r in results if r.get("status") == RunStatus.SUCCEEDED.value and "sent" in r]
    assert len(finished) == 1, results  # one finish; the others found the run final or rows held elsewhere
    done = await CampaignRun.get(id=run.id)
    assert (done.status, done.targeted, done.sent, done.failed, done.resent) == (
        RunStatus.SUCCEEDED, PROFILES, PROFILES, 0, 0
    )  # fmt: skip
    deliveries = await Delivery.filter(run_id=run.id)
    assert {(d.status.value, d.attempts, d.provider_message_id == d.idempotency_key) for d in deliveries} == {
        ("SENT", 1, True)
    }
    inbox = await InboxMessage.filter(campaign_id=row.id).values_list("idempotency_key", "title")
    assert sorted(inbox) == sorted((d.idempotency_key, f"Hi D{d.address[1:].split('@')[0]}") for d in deliveries)


async def live_in_app_run(
    gql: GraphQLClient, sandbox: SandboxKeys, profiles: int, prefix: str, title: str
) -> tuple[Campaign, CampaignRun]:
    """A LIVE in-app campaign of `profiles` gold profiles and its run, which nothing enqueues: the test runs the
    jobs itself."""
    preset_id = await active_in_app_preset(gql, sandbox)
    await upsert(
        gql, sandbox.admin, [gold(f"{prefix}{i}@example.com", f"{prefix.upper()}{i}") for i in range(profiles)]
    )
    campaign = await create(
        gql,
        sandbox,
        {
            "name": f"In-app {prefix}",
            "action": {"channel": "IN_APP", "presetId": preset_id},
            "content": {"inApp": {"title": title, "body": "News"}},
            "audience": {"segmentId": await gold_segment(gql, sandbox), "namespaceCode": "Email"},
            # Starts later, so nothing enqueues it.
            "schedule": {"startAt": "2099-01-01T09:00:00+00:00"},
        },
    )
    assert (await activate(gql, sandbox, campaign["id"]))["campaign"]["status"] == "SCHEDULED"
    row = await Campaign.get(id=int(relay.GlobalID.from_id(campaign["id"]).node_id))
    await Campaign.filter(id=row.id).update(status="LIVE")
    run = await CampaignRun.create(sandbox_id=row.sandbox_id, campaign_id=row.id, scheduled_for=datetime.now(UTC))
    return row, run
