"""`campaignReport`, `deliveries` filters: figures checked against a ledger and events written set-based.

Given a campaign with two runs whose deliveries and tracking events are inserted with known statuses and
times (as the run executor, the tracking endpoints and the provider webhook would leave them), when the
report is read for each kind of window, then every figure, rate, hour, link and domain is what the rows say.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from strawberry import relay

from models.audience.entities import Profile
from models.campaigns.campaign import CampaignRun, RunStatus
from models.ledger.delivery import Delivery
from models.ledger.reports import DeliveryFigures, EventFigures, delivery_figures, rates
from models.reporting.tracking import TrackedLink, TrackingEvent
from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import create
from tests.graphql.test_profiles import email, upsert
from tests.sql_counter import count_sql

REPORT = """
query($id: ID!, $window: ReportWindowInput) {
  campaignReport(id: $id, window: $window) {
    __typename
    ... on NotFoundError { id }
    ... on InvalidInputError { fieldErrors { field code } }
    ... on CampaignReport {
      window { kind runId from to }
      audience targeted excluded excludedByReason { reason count }
      sent delivered bounces hardBounces softBounces bouncesByReason { reason count }
      errors errorsByReason { reason count } pending cancelled
      opens uniqueOpens clicks uniqueClicks unsubscribes complaints
      deliveryRate bounceRate errorRate openRate clickThroughRate clickToOpenRate
      hourly { hour sent delivered bounces opens clicks }
      topLinks { url clicks uniqueClicks }
      domains { domain sent delivered bounces opens clicks }
    }
  }
}
"""
DELIVERIES = """
query($run: ID, $campaign: ID, $status: [DeliveryStatus!], $reason: [DeliveryReason!], $first: Int, $after: String) {
  deliveries(runId: $run, campaignId: $campaign, status: $status, reason: $reason, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } nodes { address status reason bounceType runId }
  }
}
"""
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def gid(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


@dataclass
class Seeded:
    campaign: str
    run_a: str
    run_b: str
    other_campaign: str


# Run A, all targeted at T0: (address, status, reason, bounce_type, sent_at, delivered_at, updated_at)
RUN_A = [
    ("a0@alpha.com", "SENT", None, None, at(5), None, at(5)),
    ("a1@alpha.com", "DELIVERED", None, None, at(5), at(70), at(70)),
    ("b2@beta.com", "DELIVERED", None, None, at(5), at(10), at(10)),
    ("b3@beta.com", "BOUNCED", "HARD_BOUNCE", "HARD", at(5), at(130), at(130)),
    ("b4@beta.com", "BOUNCED", "MAILBOX_FULL", None, None, None, at(6)),
    ("c5@gamma.com", "FAILED", "HARD_BOUNCE", None, None, None, at(6)),
    ("c6@gamma.com", "FAILED", "RETRY_EXPIRED", None, None, None, at(65)),
    ("c7@gamma.com", "FAILED", "TEMPLATE_ERROR", None, None, None, at(6)),
    ("x8@alpha.com", "EXCLUDED", "NO_CONSENT", None, None, None, at(0)),
    ("x9@alpha.com", "EXCLUDED", "NO_CONSENT", None, None, None, at(0)),
    ("x10@beta.com", "EXCLUDED", "SUPPRESSED", None, None, None, at(0)),
    ("q11@delta.com", "QUEUED", None, None, None, None, at(0)),
    ("q12@delta.com", "CANCELLED", None, None, None, None, at(30)),
]


async def seed(gql: GraphQLClient, sandbox: SandboxKeys) -> Seeded:
    addresses = [row[0] for row in RUN_A]
    await upsert(gql, sandbox.admin, [email(a) for a in addresses])
    campaign = await create(gql, sandbox, {"name": "Report"})
    other = await create(gql, sandbox, {"name": "Other"})
    campaign_pk = int(relay.GlobalID.from_id(campaign["id"]).node_id)
    other_pk = int(relay.GlobalID.from_id(other["id"]).node_id)
    profiles = await Profile.filter(sandbox__name=sandbox.name, identities__value__in=addresses).values(
        "id", "sandbox_id", "identities__value"
    )
    profile_of = {p["identities__value"]: p["id"] for p in profiles}
    sandbox_id = profiles[0]["sandbox_id"]
    now = datetime.now(UTC)
    run_a = await CampaignRun.create(
        sandbox_id=sandbox_id, campaign_id=campaign_pk, scheduled_for=T0, status=RunStatus.SUCCEEDED
    )
    run_b = await CampaignRun.create(
        sandbox_id=sandbox_id,
        campaign_id=campaign_pk,
        scheduled_for=now - timedelta(hours=1),
        status=RunStatus.SUCCEEDED,
    )
    other_run = await CampaignRun.create(
        sandbox_id=sandbox_id, campaign_id=other_pk, scheduled_for=T0, status=RunStatus.SUCCEEDED
    )

    def delivery(run: CampaignRun, campaign_id: int, address: str, status: str, reason: Any, bounce: Any,
                 sent: Any, delivered: Any, updated: datetime, created: datetime) -> Delivery:  # fmt: skip
        return Delivery(
            sandbox_id=sandbox_id, run_id=run.id, campaign_id=campaign_id, profile_id=profile_of[address],
            status=status, reason=reason, address=address, idempotency_key=f"{run.id}-{profile_of[address]}",
            attempts=1 if sent or status in ("FAILED", "BOUNCED") else 0, sent_at=sent, delivered_at=delivered,
            bounce_type=bounce, created_at=created, updated_at=updated,
        )  # fmt: skip

    rows = [delivery(run_a, campaign_pk, *row, created=T0) for row in RUN_A]
    rows += [
        delivery(run_b, campaign_pk, "a0@alpha.com", "SENT", None, None, now - timedelta(minutes=55), None,
                 now - timedelta(minutes=55), created=now - timedelta(hours=1)),
        delivery(run_b, campaign_pk, "a1@alpha.com", "EXCLUDED", "NO_IDENTITY", None, None, None,
                 now - timedelta(hours=1), created=now - timedelta(hours=1)),
        # The other campaign: must never show in this one's figures.
        delivery(other_run, other_pk, "a0@alpha.com", "SENT", None, None, at(5), None, at(5), created=T0),
    ]  # fmt: skip
    await Delivery.bulk_create(rows)
    ids = {(d.run_id, d.address): d.id for d in await Delivery.filter(run_id__in=[run_a.id, run_b.id, other_run.id])}
    links = {}
    for url in ("https://shop.example.com/sale", "https://shop.example.com/new"):
        links[url] = await TrackedLink.create(
            sandbox_id=sandbox_id, run_id=run_a.id, campaign_id=campaign_pk,
            url_hash=hashlib.sha256(url.encode()).hexdigest(), url=url,
        )  # fmt: skip
    sale, new = links["https://shop.example.com/sale"].id, links["https://shop.example.com/new"].id

    def event(run: CampaignRun, campaign_id: int, address: str, kind: str, when: datetime, link: Any = None,
              dedupe: Any = None) -> TrackingEvent:  # fmt: skip
        return TrackingEvent(
            sandbox_id=sandbox_id, campaign_id=campaign_id, run_id=run.id, delivery_id=ids[(run.id, address)],
            profile_id=profile_of[address], kind=kind, link_id=link, created_at=when, dedupe_key=dedupe,
        )  # fmt: skip

    await TrackingEvent.bulk_create(
        [
            event(run_a, campaign_pk, "a0@alpha.com", "OPEN", at(15)),
            event(run_a, campaign_pk, "a0@alpha.com", "OPEN", at(75)),
            event(run_a, campaign_pk, "a1@alpha.com", "OPEN", at(15)),
            event(run_a, campaign_pk, "b2@beta.com", "OPEN", at(80)),
            event(run_a, campaign_pk, "a0@alpha.com", "CLICK", at(16), sale),
            event(run_a, campaign_pk, "a0@alpha.com", "CLICK", at(76), sale),
            event(run_a, campaign_pk, "a1@alpha.com", "CLICK", at(16), sale),
            event(run_a, campaign_pk, "a1@alpha.com", "CLICK", at(17), new),
            event(run_a, campaign_pk, "a1@alpha.com", "UNSUBSCRIBE", at(20), dedupe=f"U:{run_a.id}:a1"),
            event(run_a, campaign_pk, "b2@beta.com", "COMPLAINT", at(180), dedupe=f"C:{run_a.id}:b2"),
            # A late open of run A, and run B's open: both within the last 24 hours.
            event(run_a, campaign_pk, "b2@beta.com", "OPEN", now - timedelta(hours=2)),
            event(run_b, campaign_pk, "a0@alpha.com", "OPEN", now - timedelta(minutes=30)),
            event(other_run, other_pk, "a0@alpha.com", "OPEN", at(15)),
        ]
    )
    return Seeded(campaign["id"], gid("CampaignRun", run_a.id), gid("CampaignRun", run_b.id), other["id"])


async def report(gql: GraphQLClient, key: str, campaign: str, window: dict[str, Any] | None = None) -> dict[str, Any]:
    return (await gql(REPORT, {"id": campaign, "window": window}, key=key))["campaignReport"]


def hour(minutes: int) -> str:
    return at(minutes).isoformat()


async def test_run_report_figures_rates_series_links_and_domains(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    seeded = await seed(gql, sandbox)
    got = await report(gql, sandbox.keys[Role.VIEWER], seeded.campaign, {"runId": seeded.run_a})
    assert got["__typename"] == "CampaignReport", got
    assert got["window"] == {"kind": "RUN", "runId": seeded.run_a, "from": None, "to": None}
    assert {k: got[k] for k in ("audience", "excluded", "sent", "delivered", "bounces", "hardBounces")} == {
        "audience": 13, "excluded": 3, "sent": 6, "delivered": 3, "bounces": 3, "hardBounces": 2,
    }  # fmt: skip
    assert (got["softBounces"], got["errors"], got["pending"], got["cancelled"]) == (1, 2, 1, 1)
    assert got["excludedByReason"] == [{"reason": "NO_CONSENT", "count": 2}, {"reason": "SUPPRESSED", "count": 1}]
    assert got["bouncesByReason"] == [{"reason": "HARD_BOUNCE", "count": 2}, {"reason": "MAILBOX_FULL", "count": 1}]
    assert got["errorsByReason"] == [{"reason": "RETRY_EXPIRED", "count": 1}, {"reason": "TEMPLATE_ERROR", "count": 1}]
    # Events of run A, whenever they happened (the late open included).
    assert (got["opens"], got["uniqueOpens"], got["clicks"], got["uniqueClicks"]) == (5, 3, 4, 2)
    assert (got["unsubscribes"], got["complaints"]) == (1, 1)
    assert got["deliveryRate"] == pytest.approx(3 / 6) and got["bounceRate"] == pytest.approx(3 / 6)
    assert got["errorRate"] == pytest.approx(2 / 6) and got["openRate"] == pytest.approx(3 / 3)
    assert got["clickThroughRate"] == pytest.approx(2 / 3) and got["clickToOpenRate"] == pytest.approx(2 / 3)
    hours = {h["hour"]: h for h in got["hourly"]}
    assert hours[hour(0)] == {"hour": hour(0), "sent": 6, "delivered": 2, "bounces": 2, "opens": 2, "clicks": 3}
    assert hours[hour(60)] == {"hour": hour(60), "sent": 0, "delivered": 1, "bounces": 0, "opens": 2, "clicks": 1}
    assert hours[hour(120)] == {"hour": hour(120), "sent": 0, "delivered": 0, "bounces": 1, "opens": 0, "clicks": 0}
    assert len(hours) == 4  # plus the hour of the late open
    assert sum(h["sent"] for h in got["hourly"]) == got["sent"]
    assert sum(h["opens"] for h in got["hourly"]) == got["opens"]
    assert got["topLinks"] == [
        {"url": "https://shop.example.com/sale", "clicks": 3, "uniqueClicks": 2},
        {"url": "https://shop.example.com/new", "clicks": 1, "uniqueClicks": 1},
    ]
    assert got["domains"] == [
        {"domain": "beta.com", "sent": 3, "delivered": 1, "bounces": 2, "opens": 2, "clicks": 0},
        {"domain": "alpha.com", "sent": 2, "delivered": 2, "bounces": 0, "opens": 3, "clicks": 4},
        {"domain": "gamma.com", "sent": 1, "delivered": 0, "bounces": 1, "opens": 0, "clicks": 0},
        {"domain": "delta.com", "sent": 0, "delivered": 0, "bounces": 0, "opens": 0, "clicks": 0},
    ]


async def test_time_windows_select_deliveries_by_creation_and_events_by_time(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    seeded = await seed(gql, sandbox)
    key = sandbox.keys[Role.VIEWER]
    everything = await report(gql, key, seeded.campaign)
    assert everything["window"]["kind"] == "ALL_TIME"
    assert (everything["audience"], everything["excluded"], everything["sent"], everything["delivered"]) == (
        15, 4, 7, 4,
    )  # fmt: skip
    assert (everything["opens"], everything["uniqueOpens"]) == (6, 4)

    recent = await report(gql, key, seeded.campaign, {"period": "LAST_24_HOURS"})
    assert recent["window"]["kind"] == "LAST_24_HOURS" and recent["window"]["from"] < recent["window"]["to"]
    assert (recent["audience"], recent["excluded"], recent["sent"], recent["delivered"]) == (2, 1, 1, 1)
    assert (recent["opens"], recent["uniqueOpens"], recent["clicks"], recent["complaints"]) == (2, 2, 0, 0)
    assert recent["excludedByReason"] == [{"reason": "NO_IDENTITY", "count": 1}]

    first_hour = await report(gql, key, seeded.campaign, {"range": {"from": hour(0), "to": hour(60)}})
    assert first_hour["window"] == {"kind": "RANGE", "runId": None, "from": hour(0), "to": hour(60)}
    assert (first_hour["audience"], first_hour["sent"]) == (13, 6)
    assert (first_hour["opens"], first_hour["uniqueOpens"], first_hour["clicks"], first_hour["uniqueClicks"]) == (
        2, 2, 3, 2,
    )  # fmt: skip
    assert (first_hour["unsubscribes"], first_hour["complaints"]) == (1, 0)

    empty = await report(gql, key, seeded.campaign, {"range": {"from": hour(-120), "to": hour(-60)}})
    assert (empty["audience"], empty["sent"], empty["hourly"], empty["topLinks"], empty["domains"]) == (
        0, 0, [], [], [],
    )  # fmt: skip
    assert all(empty[r] is None for r in ("deliveryRate", "bounceRate", "errorRate", "openRate", "clickToOpenRate"))


async def test_bad_windows_and_foreign_ids(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    seeded = await seed(gql, sandbox)
    key = sandbox.keys[Role.VIEWER]
    backwards = await report(gql, key, seeded.campaign, {"range": {"from": hour(60), "to": hour(0)}})
    assert backwards == {
        "__typename": "InvalidInputError",
        "fieldErrors": [{"field": "window.range.to", "code": "BEFORE_START"}],
    }
    # A run of another campaign of the same sandbox is not a run of this one.
    other_runs = await gql(
        "query($id: ID!) { campaignRuns(campaignId: $id) { nodes { id } } }", {"id": seeded.other_campaign}, key=key
    )
    foreign_run = other_runs["campaignRuns"]["nodes"][0]["id"]
    assert (await report(gql, key, seeded.campaign, {"runId": foreign_run}))["__typename"] == "NotFoundError"
    # Another sandbox sees nothing, with any window.
    for window in (None, {"runId": seeded.run_a}, {"period": "LAST_24_HOURS"}):
        got = await report(gql, other_sandbox.admin, seeded.campaign, window)
        assert got == {"__typename": "NotFoundError", "id": seeded.campaign}
    # Two members of a oneOf window are refused by validation.
    response = await gql.raw(
        REPORT, {"id": seeded.campaign, "window": {"period": "ALL_TIME", "runId": seeded.run_a}}, key
    )
    assert response.json().get("errors")


async def test_a_report_costs_a_fixed_number_of_statements(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    seeded = await seed(gql, sandbox)
    with count_sql() as statements:
        await report(gql, sandbox.keys[Role.VIEWER], seeded.campaign, {"runId": seeded.run_a})
    # Only the report's own statements: the in-process worker may be finishing another test's run meanwhile.
    report_sql = ("SELECT status, reason, bounce_type", "SELECT kind,", "SELECT hour,", "SELECT l.url", "WITH ev AS")
    on_ledger = [s for s in statements if "FROM delivery" in s or "FROM tracking_event" in s]
    # Totals (2), hourly series, top links, domains: one statement each.
    kinds = sorted(prefix for s in on_ledger for prefix in report_sql if s.startswith(prefix))
    assert kinds == sorted(report_sql), on_ledger


async def test_deliveries_answer_who_did_not_get_it_and_why(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    seeded = await seed(gql, sandbox)
    key = sandbox.keys[Role.VIEWER]
    failed = (
        await gql(DELIVERIES, {"campaign": seeded.campaign, "status": ["FAILED", "BOUNCED", "EXCLUDED"]}, key=key)
    )["deliveries"]
    assert failed["totalCount"] == 9  # run A: 2 bounced, 3 failed, 3 excluded. run B: 1 excluded
    no_consent = (await gql(DELIVERIES, {"run": seeded.run_a, "reason": ["NO_CONSENT"]}, key=key))["deliveries"]
    assert sorted(n["address"] for n in no_consent["nodes"]) == ["x8@alpha.com", "x9@alpha.com"]
    assert {n["runId"] for n in no_consent["nodes"]} == {seeded.run_a}
    bounced = (await gql(DELIVERIES, {"run": seeded.run_a, "status": ["BOUNCED"]}, key=key))["deliveries"]
    assert {(n["address"], n["bounceType"]) for n in bounced["nodes"]} == {
        ("b3@beta.com", "HARD"),
        ("b4@beta.com", None),
    }
    # Keyset pages of 5 over the 13 rows of run A: every row once.
    seen, after = [], None
    while True:
        page = (await gql(DELIVERIES, {"run": seeded.run_a, "first": 5, "after": after}, key=key))["deliveries"]
        seen += [n["address"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(row[0] for row in RUN_A)
    response = await gql.raw("{ deliveries { totalCount } }", key=key)
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    too_big = await gql.raw(DELIVERIES, {"run": seeded.run_a, "first": 101}, key=key)
    assert too_big.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_figures_fold_statuses_as_documented() -> None:
    figures = delivery_figures(
        [
            {"status": "SENT", "reason": None, "bounce_type": None, "n": 5},
            {"status": "DELIVERED", "reason": None, "bounce_type": None, "n": 3},
            {"status": "BOUNCED", "reason": "HARD_BOUNCE", "bounce_type": "HARD", "n": 2},
            {"status": "BOUNCED", "reason": None, "bounce_type": "SOFT", "n": 1},
            {"status": "FAILED", "reason": "HARD_BOUNCE", "bounce_type": None, "n": 1},
            {"status": "FAILED", "reason": "TEMPORARY", "bounce_type": None, "n": 4},
            {"status": "EXCLUDED", "reason": "SUPPRESSED", "bounce_type": None, "n": 7},
        ]
    )
    assert (figures.audience, figures.delivered, figures.hard_bounces, figures.soft_bounces) == (23, 8, 3, 1)
    assert (figures.sent, figures.errors, figures.excluded) == (12, 4, 7)
    assert figures.bounces_by_reason == {"HARD_BOUNCE": 3, "UNKNOWN": 1}
    empty = rates(DeliveryFigures(), EventFigures())
    assert (empty.delivery, empty.open, empty.click_to_open) == (None, None, None)
    many_errors = rates(DeliveryFigures(sent=2, delivered=2, errors=6), EventFigures(unique_opens=1, unique_clicks=1))
    assert (many_errors.error, many_errors.open, many_errors.click_to_open) == (3.0, 0.5, 1.0)
