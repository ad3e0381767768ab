"""Issue 7, done when: a campaign sent to a local SMTP sink; its tracking URLs, found in the received messages,
opened and clicked over HTTP; one recipient unsubscribed by one-click POST; one hard bounce, receipts and a
complaint fed through the webhook — then every figure of the report and the summary checked against that."""

from __future__ import annotations

import re

import httpx
import pytest

from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_reports import REPORT, gid
from tests.jobs.test_runs import gold
from tests.jobs.test_tracking import SALE, hrefs, parts, send_marketing_email

SUMMARY = """
query($id: ID!) { campaign(id: $id) { summary { profilesTargeted actionsDelivered actionsFailed excluded } } }
"""


async def test_report_figures_follow_what_recipients_and_providers_did(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    no_consent = gold("nox@example.com", "Nox", consent={"email": "N"})
    sent = await send_marketing_email(gql, sandbox, ["Ann", "Bob", "Cy", "Dan"], extra_profiles=[no_consent])
    urls: dict[str, dict[str, str]] = {}
    for address, message in sent.messages.items():
        html, text = parts(message)
        links = hrefs(html)
        urls[address] = {
            "pixel": re.findall(r'<img src="([^"]+)"', html)[0],
            "sale": links[0],
            "personal": links[1],
            "text_sale": re.search(r"Sale: (\S+)\.", text).group(1),
            "unsubscribe": links[4],
        }
    ann, bob, cy = urls["ann@example.com"], urls["bob@example.com"], urls["cy@example.com"]
    async with httpx.AsyncClient(timeout=10) as http:
        for url in (ann["pixel"], ann["pixel"], bob["pixel"], cy["pixel"]):
            assert (await http.get(url)).status_code == 200
        for url in (ann["sale"], ann["sale"], ann["personal"], bob["text_sale"]):
            assert (await http.get(url)).status_code == 302
        for _ in range(2):  # one-click, twice: one unsubscribe
            response = await http.post(
                cy["unsubscribe"],
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert response.status_code == 200
        ids = {address: d.provider_message_id for address, d in sent.deliveries.items()}
        events = [
            {"messageId": ids["dan@example.com"], "type": "bounce", "bounceType": "hard", "reason": "5.1.1 gone"},
            {"messageId": ids["ann@example.com"], "type": "delivered"},
            {"messageId": ids["bob@example.com"], "type": "delivered"},
            {"messageId": ids["bob@example.com"], "type": "complaint"},
        ]
        response = await http.post(
            f"{server.base_url}/webhooks/email",
            json={"events": events},
            headers={"Authorization": f"Bearer {sandbox.keys[Role.MANAGER]}"},
        )
        assert [r["outcome"] for r in response.json()["results"]] == ["APPLIED"] * 4

    campaign_id = gid("Campaign", sent.run.campaign_id)
    got = (await gql(REPORT, {"id": campaign_id, "window": None}, key=sandbox.keys[Role.VIEWER]))["campaignReport"]
    assert got["__typename"] == "CampaignReport", got
    # Ledger: 5 targeted (Nox excluded, no consent); Ann and Bob delivered, Cy sent, Dan hard-bounced.
    assert {k: got[k] for k in ("audience", "excluded", "sent", "delivered", "bounces", "hardBounces")} == {
        "audience": 5, "excluded": 1, "sent": 4, "delivered": 3, "bounces": 1, "hardBounces": 1,
    }  # fmt: skip
    assert (got["softBounces"], got["errors"], got["pending"], got["cancelled"]) == (0, 0, 0, 0)
    assert got["excludedByReason"] == [{"reason": "NO_CONSENT", "count": 1}]
    assert got["bouncesByReason"] == [{"reason": "HARD_BOUNCE", "count": 1}]
    # Events: opens Ann 2, Bob 1, Cy 1; clicks Ann 3, Bob 1; Cy unsubscribed; Bob complained.
    assert (got["opens"], got["uniqueOpens"], got["clicks"], got["uniqueClicks"]) == (4, 3, 4, 2)
    assert (got["unsubscribes"], got["complaints"]) == (1, 1)
    assert got["deliveryRate"] == pytest.approx(3 / 4) and got["bounceRate"] == pytest.approx(1 / 4)
    assert got["errorRate"] == 0 and got["openRate"] == pytest.approx(3 / 3)
    assert got["clickThroughRate"] == pytest.approx(2 / 3) and got["clickToOpenRate"] == pytest.approx(2 / 3)
    assert got["topLinks"] == [
        {"url": SALE, "clicks": 3, "uniqueClicks": 2},
        {"url": "https://shop.example/for/Ann", "clicks": 1, "uniqueClicks": 1},
    ]
    assert got["domains"] == [
        {"domain": "example.com", "sent": 4, "delivered": 3, "bounces": 1, "opens": 4, "clicks": 4}
    ]
    assert sum(h["sent"] for h in got["hourly"]) == 4 and sum(h["opens"] for h in got["hourly"]) == 4
    assert sum(h["clicks"] for h in got["hourly"]) == 4 and sum(h["bounces"] for h in got["hourly"]) == 1

    summary = (await gql(SUMMARY, {"id": campaign_id}, key=sandbox.keys[Role.VIEWER]))["campaign"]["summary"]
    assert summary == {"profilesTargeted": 5, "actionsDelivered": 3, "actionsFailed": 1, "excluded": 1}
