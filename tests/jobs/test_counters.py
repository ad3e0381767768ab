"""One meaning per counter name (issue 14, point 7): CampaignRun, CampaignRunProgress, campaign.summary and
campaignReport give the same figure for every name they share, after the provider's feedback changed the ledger;
and the review plan names the exclusions with the reasons the ledger writes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets

from models.ledger.figures import COUNTER_DESCRIPTIONS
from models.tenancy.sandbox import Role
from resolvers.schema import schema
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_reports import gid
from tests.jobs.test_runs import gold
from tests.jobs.test_tracking import send_marketing_email

COUNTERS = "audience targeted excluded sent delivered failed"
RUNS = f"query($id: ID!) {{ campaignRuns(campaignId: $id) {{ edges {{ node {{ {COUNTERS} pending retrying }} }} }} }}"
SUMMARY = f"query($id: ID!) {{ campaign(id: $id) {{ summary {{ {COUNTERS} }} }} }}"
REPORT = f"""query($id: ID!, $run: ID!) {{ campaignReport(id: $id, window: {{runId: $run}}) {{
  ... on CampaignReport {{ {COUNTERS} pending retrying }} }} }}"""
PROGRESS = f"subscription($id: ID!) {{ campaignRunProgress(campaignId: $id) {{ {COUNTERS} pending retrying }} }}"
PLAN = """query($id: ID!) { campaignReview(id: $id) {
  ... on CampaignReview { plan { excludedByReason { reason count } } } } }"""


async def first_progress(server: RunningServer, key: str, campaign_id: str) -> dict[str, Any]:
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": PROGRESS, "variables": {"id": campaign_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        async with asyncio.timeout(30):
            message = json.loads(await ws.recv())
    assert message["type"] == "next", message
    return message["payload"]["data"]["campaignRunProgress"]


async def test_the_four_types_agree_on_every_counter_after_a_bounce_and_a_receipt(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    # Ann, Bob and Cy accepted; Dan refused at RCPT (a hard bounce during the send); Nox excluded (no consent).
    sent = await send_marketing_email(
        gql,
        sandbox,
        ["Ann", "Bob", "Cy", "Dan"],
        rcpt_replies={"dan@example.com": "550 5.1.1 No such user"},
        extra_profiles=[gold("nox@example.com", "Nox", consent={"email": "N"})],
    )
    ids = {address: d.provider_message_id for address, d in sent.deliveries.items()}
    events = [
        {"messageId": ids["bob@example.com"], "type": "bounce", "bounceType": "hard", "reason": "5.1.1 gone"},
        {"messageId": ids["ann@example.com"], "type": "delivered"},
    ]
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{server.base_url}/webhooks/email",
            json={"events": events},
            headers={"Authorization": f"Bearer {sandbox.keys[Role.MANAGER]}"},
        )
    assert [r["outcome"] for r in response.json()["results"]] == ["APPLIED"] * 2

    key = sandbox.keys[Role.VIEWER]
    campaign_id, run_id = gid("Campaign", sent.run.campaign_id), gid("CampaignRun", sent.run.id)
    (run,) = [e["node"] for e in (await gql(RUNS, {"id": campaign_id}, key=key))["campaignRuns"]["edges"]]
    summary = (await gql(SUMMARY, {"id": campaign_id}, key=key))["campaign"]["summary"]
    report = (await gql(REPORT, {"id": campaign_id, "run": run_id}, key=key))["campaignReport"]
    progress = await first_progress(server, key, campaign_id)

    # Ann delivered, Cy sent: delivered; Bob bounced later, Dan refused: failed, and both were sent.
    expected = {"audience": 5, "targeted": 4, "excluded": 1, "sent": 4, "delivered": 2, "failed": 2}
    assert summary == expected
    for figures in (run, report, progress):
        assert figures == {**expected, "pending": 0, "retrying": 0}


def test_every_shared_counter_has_one_description_on_all_four_types() -> None:
    types = ("CampaignRun", "CampaignRunProgress", "CampaignSummary", "CampaignReport")
    for name, description in COUNTER_DESCRIPTIONS.items():
        holders = [t for t in types if name in schema._schema.type_map[t].fields]  # type: ignore[attr-defined]
        assert holders, name
        for type_name in holders:
            field = schema._schema.type_map[type_name].fields[name]  # type: ignore[attr-defined]
            assert field.description == description, (type_name, name)


async def test_the_plan_names_exclusions_as_the_ledger_writes_them(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    sent = await send_marketing_email(
        gql,
        sandbox,
        ["Ann"],
        extra_profiles=[gold("nox@example.com", "Nox", consent={"email": "N"})],
    )
    plan = await gql(PLAN, {"id": gid("Campaign", sent.run.campaign_id)}, key=sandbox.keys[Role.MANAGER])
    ledger: dict[str, int] = {}
    for delivery in sent.deliveries.values():
        if delivery.status.value == "EXCLUDED":
            ledger[delivery.reason] = ledger.get(delivery.reason, 0) + 1
    assert ledger == {"NO_CONSENT": 1}  # the plan said NOT_CONTACTABLE
    got = {row["reason"]: row["count"] for row in plan["campaignReview"]["plan"]["excludedByReason"]}
    assert got == ledger
