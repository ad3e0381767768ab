"""Business rules through real runs (issue 18): four email campaigns of different priorities under a cap of 2 per
week, activated lowest priority first and run by the worker's jobs against a real SMTP sink: every profile gets
exactly two messages, from the two highest priorities; the ledger's reasons add up; the dispatcher starts runs due
together in priority order."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from strawberry import relay

from jobs.dispatcher import dispatch
from models.campaigns.campaign import CampaignRun, RunStatus
from models.ledger.counts import ledger_counts
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_business_rules import create_rule_set
from tests.graphql.test_campaigns import activate, active_in_app_preset, audience, create, ready_input
from tests.graphql.test_profiles import upsert
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_runs import email_preset, gold, gold_segment
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

ZONES = ["Asia/Kathmandu", "Pacific/Tongatapu", "America/St_Johns", "Europe/Paris", "America/Los_Angeles", None]
WEEKLY_TWO = {"channel": "EMAIL", "category": "MARKETING", "limit": 2, "period": "WEEK"}


def pk(global_id: str) -> int:
    return int(relay.GlobalID.from_id(global_id).node_id)


async def test_the_two_highest_priorities_get_the_weekly_slots(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    await create_rule_set(gql, sandbox, caps=[WEEKLY_TWO], quietHours=[], isDefault=True)
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        people = [
            {**gold(f"p{i}@example.com", f"P{i}", consent={"email": "Y"}), **({"timeZone": zone} if zone else {})}
            for i, zone in enumerate(ZONES)
        ]
        await upsert(gql, sandbox.admin, people)
        segment_id = await gold_segment(gql, sandbox)
        campaigns = {}
        for priority in (10, 40, 70, 100):  # the lowest first: its run is queued first
            campaign = await create(
                gql,
                sandbox,
                {
                    "name": f"Sale {priority}",
                    "priority": priority,
                    "action": {"channel": "EMAIL", "presetId": preset_id},
                    "content": {"email": {"subject": f"Sale {priority}", "html": "<p>Sale</p>", "text": "Sale"}},
                    "audience": {"segmentId": segment_id, "namespaceCode": "Email"},
                },
            )
            assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
            campaigns[priority] = pk(campaign["id"])
        runs: list[CampaignRun] = []
        for _ in range(20):  # the outranked runs come back (deferred) until the higher ones took their snapshots
            await gql.drain_jobs(until=datetime.now(UTC) + timedelta(seconds=5))
            runs = await CampaignRun.filter(campaign_id__in=list(campaigns.values()))
            if all(r.status not in (RunStatus.PENDING, RunStatus.RUNNING) for r in runs):
                break
        received = Counter((r.recipients[0], r.parsed["Subject"]) for r in sink.handler.received)

    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}
    per_profile = Counter(address for address, _ in received)
    assert per_profile == {f"p{i}@example.com": 2 for i in range(len(ZONES))}
    assert {subject for _, subject in received} == {"Sale 100", "Sale 70"}
    assert set(received.values()) == {1}
    for priority, campaign_id in campaigns.items():
        run = await CampaignRun.get(campaign_id=campaign_id)
        figures = (await ledger_counts(run.id)).figures
        capped = figures.excluded_by_reason.get("FREQUENCY_CAPPED", 0)
        assert figures.audience == figures.sent + figures.excluded + figures.failed + figures.pending
        assert (figures.sent, capped) == ((len(ZONES), 0) if priority >= 70 else (0, len(ZONES))), priority


async def test_runs_due_together_are_started_highest_priority_first(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox)
    start = {"startAt": "2099-05-01T09:00:00+00:00"}
    ids = []
    for priority in (20, 90, 55):
        input = ready_input(preset_id, segment_id, name=f"p{priority}", priority=priority, schedule=start)
        campaign = await create(gql, sandbox, input)
        assert (await activate(gql, sandbox, campaign["id"]))["campaign"]["status"] == "SCHEDULED"
        ids.append(pk(campaign["id"]))
    await dispatch(datetime(2099, 5, 1, 9, 0, 1, tzinfo=UTC))
    report = await dispatch(datetime(2099, 5, 1, 9, 0, 2, tzinfo=UTC))
    run_of = {r.id: r.campaign_id for r in await CampaignRun.filter(campaign_id__in=ids)}
    order = [run_of[r] for r in report.enqueued if r in run_of]
    assert order == [ids[1], ids[2], ids[0]]


REVIEW = """query($id: ID!) { campaignReview(id: $id) { ... on CampaignReview {
  alerts { severity code } plan { contactable delayedShare excludedByBusinessRules { reason count } } } } }"""


async def test_the_review_estimates_caps_and_quiet_hours(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    # Quiet hours around the current UTC time (DELAY) for the profiles in UTC; Kathmandu's clock is 5:45 ahead.
    now = datetime.now(UTC)
    window = {
        "channel": "EMAIL",
        "weekdays": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"],
        "from": (now - timedelta(hours=1)).strftime("%H:%M"),
        "until": (now + timedelta(hours=2)).strftime("%H:%M"),
        "action": "DELAY",
    }
    await create_rule_set(gql, sandbox, caps=[{**WEEKLY_TWO, "limit": 1}], quietHours=[window], isDefault=True)
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        zones = ["UTC", "Asia/Kathmandu", "Asia/Kathmandu", "Asia/Kathmandu"]
        people = [
            {**gold(f"q{i}@example.com", f"Q{i}", consent={"email": "Y"}), "timeZone": zone}
            for i, zone in enumerate(zones)
        ]
        await upsert(gql, sandbox.admin, people)
        segment_id = await gold_segment(gql, sandbox)
        fields = {
            "action": {"channel": "EMAIL", "presetId": preset_id},
            "content": {"email": {"subject": "Hi", "html": "<p>Hi</p>", "text": "Hi"}},
            "audience": {"segmentId": segment_id, "namespaceCode": "Email"},
        }
        first = await create(gql, sandbox, {"name": "First", **fields})
        plan = (await gql(REVIEW, {"id": first["id"]}, key=sandbox.admin))["campaignReview"]
        assert plan["plan"] == {"contactable": 4, "delayedShare": 0.25, "excludedByBusinessRules": []}
        assert (await activate(gql, sandbox, first["id"]))["__typename"] == "CampaignActivateSuccess"
        await gql.drain_jobs()
        # The three in Kathmandu got the first campaign: a second one would be capped for them.
        second = await create(gql, sandbox, {"name": "Second", **fields})
        review = (await gql(REVIEW, {"id": second["id"]}, key=sandbox.admin))["campaignReview"]
    assert review["plan"]["excludedByBusinessRules"] == [{"reason": "FREQUENCY_CAPPED", "count": 3}]
    assert {"severity": "WARNING", "code": "BUSINESS_RULES_EXCLUDE_MOST"} in review["alerts"]
    assert len(sink.handler.received) == 3
