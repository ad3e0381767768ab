"""Runs of a campaign carrying a content experiment: each ledger row's treatment from the sticky assignment
(recomputed here from its definition, SHA-256 of "key:purpose:profile"), the holdout EXCLUDED with HOLDOUT and
counted, each recipient sent its treatment's content, every run of a recurring campaign alike, proofs of a
chosen treatment."""

from __future__ import annotations

import csv
import email
import hashlib
import io
from email import policy
from typing import Any

import httpx
from strawberry import relay

from models.campaigns.campaign import Campaign, CampaignRun
from models.ledger.counts import ledger_counts
from models.ledger.delivery import Delivery, InboxMessage
from models.ledger.figures import delivery_figures
from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaign_proofs import proof
from tests.graphql.test_campaigns import activate, active_in_app_preset, audience, create, ready_input
from tests.graphql.test_experiments import in_app
from tests.graphql.test_profiles import upsert
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_dispatcher import at, pk
from tests.jobs.test_runs import email_preset, finished_run, gold
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

DELIVERIES = """query($run: ID!, $t: [String!]) { deliveries(runId: $run, treatment: $t, first: 100) {
  edges { node { address treatment } } } }"""


def draw(salt: str, purpose: str, profile_id: int) -> float:
    return int.from_bytes(hashlib.sha256(f"{salt}:{purpose}:{profile_id}".encode()).digest()[:8], "big") / 2**64


def expected_arm(salt: str, profile_id: int, weights: dict[str, int], holdout: float) -> str:
    """The documented assignment (docs/guide.md), written again here: "HOLDOUT" or the treatment's key."""
    if draw(salt, "arm", profile_id) < holdout:
        return "HOLDOUT"
    u, total, running = draw(salt, "treatment", profile_id), sum(weights.values()), 0
    for key, weight in weights.items():
        running += weight
        if u * total < running:
            return key
    raise AssertionError("unreachable")


def treatments(*keys: str, channel: str = "inApp") -> list[dict[str, Any]]:
    if channel == "inApp":
        return [{"key": k, "weight": 1 + i, "content": in_app(f"Title {k}")} for i, k in enumerate(keys)]
    return [
        {
            "key": k,
            "content": {
                "email": {
                    "subject": f"Subject {k}",
                    "html": '<p>Hi</p><a href="{{ context.unsubscribeUrl }}">unsubscribe</a>',
                    "text": "Hi",
                }
            },
        }
        for k in keys
    ]


# Treatment A has weight 1 of 6: with 60 profiles about 1.6 in 10,000 experiment keys gave it nobody (the test needs
# every treatment met); with 90, about 2.5 in 1,000,000. More would let B and C outgrow the one page of 100 read below.
SPLIT_AUDIENCE = 90


async def test_split_assigns_sticky_treatments_and_holds_out(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=SPLIT_AUDIENCE)
    campaign = await create(
        gql,
        sandbox,
        ready_input(preset_id, segment_id, experiment={"treatments": treatments("A", "B", "C"), "holdoutShare": 0.2}),
    )
    assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
    run = await finished_run(gql, campaign["id"])
    salt = (await Campaign.get(id=pk(campaign["id"]))).experiment["key"]

    rows = await Delivery.filter(run_id=run.id)
    assert len(rows) == SPLIT_AUDIENCE
    weights = {"A": 1, "B": 2, "C": 3}
    for row in rows:
        arm = expected_arm(salt, row.profile_id, weights, 0.2)
        if arm == "HOLDOUT":
            assert (row.status.value, row.reason, row.treatment) == ("EXCLUDED", "HOLDOUT", None)
        else:
            assert (row.status.value, row.treatment) == ("SENT", arm)
    held = sum(1 for r in rows if r.reason == "HOLDOUT")
    assert 0 < held < SPLIT_AUDIENCE and {r.treatment for r in rows} == {None, "A", "B", "C"}
    # Counted as an exclusion like any other: run counters and the ledger figures.
    assert (run.excluded, run.sent) == (held, SPLIT_AUDIENCE - held)
    groups = [{"status": r.status.value, "reason": r.reason, "bounce_type": None, "n": 1} for r in rows]
    assert delivery_figures(groups).excluded_by_reason == {"HOLDOUT": held}
    assert (await ledger_counts(run.id)).total == SPLIT_AUDIENCE
    # Each recipient got its treatment's content, the holdout nothing.
    inbox = {m.idempotency_key: m.title for m in await InboxMessage.filter(campaign_id=run.campaign_id)}
    assert inbox == {r.idempotency_key: f"Title {r.treatment}" for r in rows if r.treatment}

    # The treatment in `deliveries` (field and filter) and in the CSV export.
    run_gid = str(relay.GlobalID("CampaignRun", str(run.id)))
    page = await gql(DELIVERIES, {"run": run_gid, "t": ["B", "C"]}, key=sandbox.keys[Role.VIEWER])
    nodes = [e["node"] for e in page["deliveries"]["edges"]]
    assert sorted((n["address"], n["treatment"]) for n in nodes) == sorted(
        (r.address, r.treatment) for r in rows if r.treatment in ("B", "C")
    )
    url = f"{server.base_url}/exports/runs/{run_gid}/deliveries.csv"
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(url, headers={"Authorization": f"Bearer {sandbox.keys[Role.VIEWER]}"})
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert {(r["address"], r["treatment"]) for r in table} == {(r.address, r.treatment or "") for r in rows}


async def test_a_recurring_campaign_keeps_each_profiles_treatment(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        await upsert(gql, sandbox.admin, [gold(f"r{i}@example.com", f"R{i}") for i in range(30)])
        from tests.jobs.test_runs import gold_segment

        segment_id = await gold_segment(gql, sandbox)
        schedule = {
            "startAt": "2099-05-01T00:00:00+00:00",
            "endAt": "2099-05-05T00:00:00+00:00",
            "frequency": "DAILY",
            "timeOfDay": "09:00",
            "timeZone": "UTC",
        }
        experiment = {"treatments": treatments("A", "B", channel="email"), "holdoutShare": 0.3}
        campaign = await create(
            gql,
            sandbox,
            ready_input(
                preset_id,
                segment_id,
                schedule=schedule,
                action={"channel": "EMAIL", "presetId": preset_id},
                content=None,
                experiment=experiment,
            ),
        )
        activated = await activate(gql, sandbox, campaign["id"])
        assert activated.get("campaign", {}).get("status") == "SCHEDULED", activated
        campaign_id = pk(campaign["id"])
        for day in ("2099-05-01T09:00:01", "2099-05-02T09:00:01"):
            await gql.drain_jobs(dispatch_at=at(day))
        runs = await CampaignRun.filter(campaign_id=campaign_id).order_by("scheduled_for")
        assert len(runs) == 2 and all(r.status.value == "SUCCEEDED" for r in runs), [r.status for r in runs]
        first, second = [
            {d.profile_id: (d.reason, d.treatment) for d in await Delivery.filter(run_id=r.id)} for r in runs
        ]
        assert first == second and len(first) == 30
        assert {t for _, t in first.values()} == {None, "A", "B"}
        # The sink got, per run, one message per profile outside the holdout, with its treatment's subject.
        subjects = sorted(email.message_from_bytes(r.data, policy=policy.default)["Subject"] for r in handler.received)
        assert subjects == sorted([f"Subject {t}" for _, t in first.values() if t] * 2)


async def test_proofs_send_the_chosen_treatment(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, worker: None
) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox)
    campaign = await create(
        gql, sandbox, ready_input(preset_id, segment_id, experiment={"treatments": treatments("A", "B")})
    )
    for given, title in ((None, "Title A"), ("B", "Title B")):
        sent = await proof(gql, sandbox, id=campaign["id"], addresses=["who@example.com"], treatment=given)
        assert sent["__typename"] == "CampaignSendProofSuccess", sent
        latest = await InboxMessage.filter(identity="who@example.com").order_by("-id").first()
        assert latest is not None and latest.title == title
    refused = await proof(gql, sandbox, id=campaign["id"], addresses=["who@example.com"], treatment="Z")
    assert refused["__typename"] == "InvalidInputError"
    assert [(e["field"], e["code"]) for e in refused["fieldErrors"]] == [("input.treatment", "NOT_FOUND")]
    assert sandbox.keys[Role.MANAGER]


async def test_the_winner_run_judges_the_rest_again(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    """Profiles awaiting the winner who since refused consent, were suppressed (hard bounce, complaint) or were
    deleted get no winner: EXCLUDED with the snapshot's reasons (no row for the deleted); the others get it."""
    from models.audience.entities import Profile
    from tests.graphql.test_experiments import SELECT
    from tests.jobs.test_runs import SUPPRESS, gold_segment

    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        await upsert(gql, sandbox.admin, [gold(f"w{i}@example.com", f"W{i}") for i in range(30)])
        experiment = {
            "treatments": treatments("A", "B", channel="email"),
            "holdoutShare": 0.1,
            "mode": "TEST_THEN_WINNER",
            "testShare": 0.3,
            "testDurationSeconds": 3600,
        }
        action = {"channel": "EMAIL", "presetId": preset_id}
        segment_id = await gold_segment(gql, sandbox)
        campaign = await create(
            gql, sandbox, ready_input(preset_id, segment_id, action=action, content=None, experiment=experiment)
        )
        assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
        test_run = await finished_run(gql, campaign["id"])
        waiting = await Delivery.filter(run_id=test_run.id, reason="AWAITING_WINNER").order_by("profile_id")
        assert len(waiting) >= 5, len(waiting)
        refused, bounced, complained, deleted = waiting[:4]
        await upsert(gql, sandbox.admin, [gold(refused.address, "R", consent={"email": "N"})])
        for row, reason in ((bounced, "HARD_BOUNCE"), (complained, "SPAM_COMPLAINT")):
            added = await gql(
                SUPPRESS, {"input": {"channel": "EMAIL", "address": row.address, "reason": reason}}, key=sandbox.admin
            )
            assert added["suppressionAdd"]["__typename"] == "SuppressionAddSuccess", added
        await Profile.filter(id=deleted.profile_id).delete()
        received_in_test = len(handler.received)

        chosen = await gql(SELECT, {"input": {"id": campaign["id"], "treatment": "B"}}, key=sandbox.admin)
        assert chosen["campaignExperimentSelectWinner"]["run"] is not None, chosen
        rest_run = await finished_run(gql, campaign["id"])
        assert rest_run.id != test_run.id and rest_run.status.value == "SUCCEEDED"
        rest = {
            d.profile_id: (d.status.value, d.reason, d.treatment) for d in await Delivery.filter(run_id=rest_run.id)
        }
        expected = {r.profile_id: ("SENT", None, "B") for r in waiting[4:]}
        expected[refused.profile_id] = ("EXCLUDED", "NO_CONSENT", None)
        expected[bounced.profile_id] = ("EXCLUDED", "SUPPRESSED", None)
        expected[complained.profile_id] = ("EXCLUDED", "SUPPRESSED", None)
        assert rest == expected
        # The sink got the winner for the still eligible only.
        later = handler.received[received_in_test:]
        assert sorted(r.recipients[0] for r in later) == sorted(r.address for r in waiting[4:])
        assert {r.parsed["Subject"] for r in later} == {"Subject B"}
