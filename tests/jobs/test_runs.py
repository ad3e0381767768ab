"""The run executor end to end: activated through GraphQL, run by the session server's in-process worker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobs.context import job_ctx
from jobs.runs import execute_run
from models.audience.entities import SuppressionEntry
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.ledger import snapshot
from models.ledger.delivery import Delivery, InboxMessage
from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, active_in_app_preset, create
from tests.graphql.test_presets import CREATE as PRESET_CREATE
from tests.graphql.test_presets import email_input, validated
from tests.graphql.test_profiles import email, upsert
from tests.graphql.test_segments import CREATE as SEGMENT_CREATE
from tests.graphql.test_segments import cond
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

EMAIL_PREVIEW = """query($id: ID!, $profile: ID!) { campaignPreview(id: $id, profileId: $profile) {
  ... on CampaignPreview { subject preheader html } } }"""
SUPPRESS = """mutation($input: SuppressionAddInput!) { suppressionAdd(input: $input) { __typename } }"""


async def gold_segment(gql: GraphQLClient, sandbox: SandboxKeys) -> str:
    result = (
        await gql(
            SEGMENT_CREATE,
            {"input": {"kind": "RULE", "name": "gold", "rule": cond("tier", "EQ", "gold")}},
            key=sandbox.admin,
        )
    )["segmentCreate"]
    return result["segment"]["id"]


def gold(address: str, name: str, **fields: Any) -> dict[str, Any]:
    return email(address, attributes={"person": {"name": {"firstName": name}}, "tier": "gold"}, **fields)


async def finished_run(gql: GraphQLClient, campaign_id: str) -> CampaignRun:
    """Runs the queued jobs (the campaign's run and its parts), then reads its latest run, which must be over."""
    from strawberry import relay

    db_id = int(relay.GlobalID.from_id(campaign_id).node_id)
    await gql.drain_jobs()
    run = await CampaignRun.filter(campaign_id=db_id).order_by("-id").first()
    assert run is not None and run.status not in (RunStatus.PENDING, RunStatus.RUNNING), run and run.status
    return run


async def ledger(run_id: int) -> dict[int, Delivery]:
    return {d.profile_id: d for d in await Delivery.filter(run_id=run_id)}


async def test_in_app_campaign_runs_to_the_inbox(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    people = [gold(f"p{i}@example.com", f"Ann{i}") for i in range(4)]
    # In the segment but without an Email identity: excluded, NO_IDENTITY.
    people.append({"identities": [{"namespace": "CRMID", "value": "crm-1"}], "attributes": {"tier": "gold"}})
    await upsert(gql, sandbox.admin, people)
    segment_id = await gold_segment(gql, sandbox)
    campaign = await create(
        gql,
        sandbox,
        {
            "name": "Welcome",
            "action": {"channel": "IN_APP", "presetId": preset_id},
            "content": {"inApp": {"title": "Hi {{ profile.person.name.firstName }}", "body": "Welcome aboard."}},
            "audience": {"segmentId": segment_id, "namespaceCode": "Email"},
        },
    )
    activated = await activate(gql, sandbox, campaign["id"])
    assert activated["__typename"] == "CampaignActivateSuccess", activated

    run = await finished_run(gql, campaign["id"])
    assert run.status is RunStatus.SUCCEEDED, run.failure_reason
    assert (run.targeted, run.excluded, run.sent, run.failed) == (4, 1, 4, 0)
    rows = list((await ledger(run.id)).values())
    assert sorted((d.status.value, d.reason) for d in rows) == [("EXCLUDED", "NO_IDENTITY")] + [("SENT", None)] * 4
    inbox = await InboxMessage.filter(campaign_id=run.campaign_id).order_by("identity")
    assert [(m.identity, m.title) for m in inbox] == [(f"p{i}@example.com", f"Hi Ann{i}") for i in range(4)]
    assert {m.idempotency_key for m in inbox} == {d.idempotency_key for d in rows if d.status.value == "SENT"}

    # Read back through GraphQL by identity.
    query = "query($ns: String!, $id: String!) { inAppMessages(namespace: $ns, identity: $id) { title body } }"
    got = await gql(query, {"ns": "Email", "id": "P2@Example.com"}, key=sandbox.keys[Role.VIEWER])
    assert got["inAppMessages"] == [{"title": "Hi Ann2", "body": "Welcome aboard."}]

    # Running the job again (a duplicate delivery of the job) changes nothing.
    assert (await execute_run(job_ctx(server.settings), run.id))["claimed"] is False
    assert await InboxMessage.filter(campaign_id=run.campaign_id).count() == 4


async def email_preset(gql: GraphQLClient, sandbox: SandboxKeys, port: int) -> str:
    created = (await gql(PRESET_CREATE, {"input": email_input("mailer", port)}, key=sandbox.admin))[
        "messagePresetCreate"
    ]
    assert created["__typename"] == "MessagePresetCreateSuccess", created
    preset = await validated(gql, sandbox.admin, created["preset"]["id"])
    assert preset["status"] == "ACTIVE", preset
    return preset["id"]


async def test_email_campaign_sends_bounces_and_suppresses(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    handler = SinkHandler(
        credentials=(SMTP_USER, SMTP_PASSWORD), rcpt_replies={"gone@example.com": "550 5.1.1 No such user"}
    )
    async with smtp_sink(handler) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        people = [gold(f"ok{i}@example.com", f"Bo{i}", consent={"email": "Y"}) for i in range(5)]
        people.append(gold("gone@example.com", "Gone"))
        people.append(gold("no@example.com", "No", consent={"email": "N"}))
        people.append(gold("blocked@example.com", "Blocked"))
        await upsert(gql, sandbox.admin, people)
        await gql(SUPPRESS, {"input": {"channel": "EMAIL", "address": "blocked@example.com"}}, key=sandbox.admin)
        segment_id = await gold_segment(gql, sandbox)
        campaign = await create(
            gql,
            sandbox,
            {
                "name": "News",
                "action": {"channel": "EMAIL", "presetId": preset_id},
                "content": {
                    "email": {
                        "subject": "Hello {{ profile.person.name.firstName }}",
                        "preheader": "{{ profile.person.name.firstName }}, this week only",
                        "html": '<p>News</p><a href="{{ context.unsubscribeUrl }}">unsubscribe</a>',
                        "text": "News",
                    }
                },
                "audience": {"segmentId": segment_id, "namespaceCode": "Email"},
            },
        )
        profile_id = (await upsert(gql, sandbox.admin, [gold("ok0@example.com", "Bo0")]))["results"][0]["profile"]["id"]
        preview = (await gql(EMAIL_PREVIEW, {"id": campaign["id"], "profile": profile_id}, key=sandbox.admin))[
            "campaignPreview"
        ]
        assert preview["preheader"] == "Bo0, this week only"
        assert preview["html"].startswith('<span class="preheader" style="display:none')
        assert ">Bo0, this week only</span><p>News</p>" in preview["html"]
        activated = await activate(gql, sandbox, campaign["id"])
        assert activated["__typename"] == "CampaignActivateSuccess", activated
        run = await finished_run(gql, campaign["id"])

    assert run.status is RunStatus.SUCCEEDED, run.failure_reason
    rows = {d.address: d for d in (await ledger(run.id)).values()}
    assert {a: (d.status.value, d.reason) for a, d in rows.items()} == {
        **{f"ok{i}@example.com": ("SENT", None) for i in range(5)},
        "gone@example.com": ("FAILED", "HARD_BOUNCE"),
        "no@example.com": ("EXCLUDED", "NO_CONSENT"),
        "blocked@example.com": ("EXCLUDED", "SUPPRESSED"),
    }
    assert (run.targeted, run.excluded, run.sent, run.failed) == (6, 2, 5, 1)
    assert await SuppressionEntry.filter(
        sandbox_id=run.sandbox_id, address="gone@example.com", channel="EMAIL", reason="HARD_BOUNCE"
    ).exists()
    received = {r.recipients[0]: r for r in sink.handler.received}
    assert set(received) == {f"ok{i}@example.com" for i in range(5)}
    for address, message in received.items():
        key = rows[address].idempotency_key
        assert message.message_id.startswith(f"<{key}@"), (message.message_id, key)
        assert message.parsed["Subject"].startswith("Hello Bo")
        html = message.parsed.get_body(("html",)).get_content()
        name = message.parsed["Subject"].removeprefix("Hello ")
        assert html.startswith('<span class="preheader" style="display:none!important;'), html
        assert f">{name}, this week only</span><p>News</p>" in html
    assert len(sink.handler.message_ids) == len(set(sink.handler.message_ids))


async def test_the_same_run_executed_twice_concurrently_sends_once(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    async with smtp_sink(SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        await upsert(gql, sandbox.admin, [gold(f"c{i}@example.com", f"C{i}") for i in range(30)])
        segment_id = await gold_segment(gql, sandbox)
        campaign = await create(
            gql,
            sandbox,
            {
                "name": "Twice",
                "action": {"channel": "EMAIL", "presetId": preset_id},
                "content": {"email": {"subject": "Hi", "html": "<p>x {{ context.unsubscribeUrl }}</p>", "text": "x"}},
                "audience": {"segmentId": segment_id, "namespaceCode": "Email"},
                # Starts later, so nothing enqueues it: this test runs the job itself.
                "schedule": {"startAt": "2099-01-01T09:00:00+00:00"},
            },
        )
        assert (await activate(gql, sandbox, campaign["id"]))["campaign"]["status"] == "SCHEDULED"
        row = await Campaign.get(id=int(__import__("strawberry").relay.GlobalID.from_id(campaign["id"]).node_id))
        await Campaign.filter(id=row.id).update(status="LIVE")
        from datetime import UTC, datetime

        run = await CampaignRun.create(sandbox_id=row.sandbox_id, campaign_id=row.id, scheduled_for=datetime.now(UTC))
        ctx: dict[str, Any] = job_ctx(server.settings)
        results = await asyncio.gather(*(execute_run(ctx, run.id) for _ in range(3)))
        assert sum(1 for r in results if r.get("claimed") is False) >= 2
        await execute_run(ctx, run.id)
        if "smtp_pools" in ctx:
            await ctx["smtp_pools"].close()
        run = await CampaignRun.get(id=run.id)
        assert run.status is RunStatus.SUCCEEDED and run.sent == 30
        assert len(sink.handler.received) == 30
        assert len(set(sink.handler.message_ids)) == 30


async def test_a_run_that_cannot_finish_in_12_hours_at_its_throttle_is_cut(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 12 h window shrunk to 1 s: at 3 messages/s, 3 of the 7 profiles fit; the rest are cut, in profile order.
    monkeypatch.setattr(snapshot, "THROTTLE_WINDOW_SECONDS", 1)
    preset_id = await active_in_app_preset(gql, sandbox)
    await upsert(gql, sandbox.admin, [gold(f"t{i}@example.com", f"T{i}") for i in range(7)])
    segment_id = await gold_segment(gql, sandbox)
    campaign = await create(
        gql,
        sandbox,
        {
            "name": "Throttled",
            "action": {"channel": "IN_APP", "presetId": preset_id},
            "content": {"inApp": {"title": "Hi", "body": "There"}},
            "audience": {"segmentId": segment_id, "namespaceCode": "Email"},
            "throttle": 3,
        },
    )
    assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
    run = await finished_run(gql, campaign["id"])
    assert run.status is RunStatus.SUCCEEDED, run.failure_reason
    rows = sorted((await ledger(run.id)).items())
    assert [(d.status.value, d.reason) for _, d in rows] == [("SENT", None)] * 3 + [("EXCLUDED", "THROTTLE_CUTOFF")] * 4
    assert (run.targeted, run.excluded, run.sent) == (3, 4, 3)
