"""Quiet hours with action DELAY through a real run, the clock driven by the test: the rows of profiles whose
local time is quiet stay QUEUED (reason QUIET_HOURS) with their due time at the window's opening in their zone,
the run stays RUNNING, and each is sent when the clock reaches its opening, not a second before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from models.campaigns.actions import activate_campaign
from models.campaigns.campaign import CampaignRun, RunStatus
from models.ledger.delivery import Delivery, DeliveryStatus
from models.tenancy.sandbox import Sandbox
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_business_rules import create_rule_set
from tests.graphql.test_campaigns import active_in_app_preset, create, ready_input
from tests.jobs.test_dispatcher import pk
from tests.jobs.test_local_time import local_audience, sent_by_zone, step

EVERY_DAY = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
NIGHTS = {"channel": "IN_APP", "weekdays": EVERY_DAY, "from": "21:00", "until": "08:00", "action": "DELAY"}
SECOND = timedelta(seconds=1)
# 20:00 UTC: 22:00 in Paris and 05:00 in Tokyo (the rule set's zone, for the profile without one) are quiet;
# 16:00 in New York is not.
T0 = datetime(2027, 6, 1, 20, 0, tzinfo=UTC)
PARIS_OPENS, TOKYO_OPENS = datetime(2027, 6, 2, 6, 0, tzinfo=UTC), datetime(2027, 6, 1, 23, 0, tzinfo=UTC)


async def test_a_delayed_row_waits_queued_for_the_window_to_open(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    await create_rule_set(gql, sandbox, caps=[], quietHours=[NIGHTS], isDefault=True, defaultTimeZone="Asia/Tokyo")
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await local_audience(gql, sandbox, ["Europe/Paris", "America/New_York", None])
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id))
    sandbox_id = (await Sandbox.get(name=sandbox.name)).id
    activation = await activate_campaign(sandbox_id, pk(campaign["id"]), actor="test", now=T0)
    assert activation.run is not None
    run_id, campaign_id = activation.run.id, pk(campaign["id"])

    await step(gql, T0)
    assert await sent_by_zone(campaign_id) == {"America/New_York": T0}
    queued = await Delivery.filter(run_id=run_id, status=DeliveryStatus.QUEUED).values(
        "reason", "next_attempt_at", "profile__time_zone"
    )
    due = {r["profile__time_zone"]: (r["reason"], r["next_attempt_at"].astimezone(UTC)) for r in queued}
    assert due == {"Europe/Paris": ("QUIET_HOURS", PARIS_OPENS), None: ("QUIET_HOURS", TOKYO_OPENS)}
    run = await CampaignRun.get(id=run_id)
    assert run.status is RunStatus.RUNNING
    report = await gql(
        "query($id: ID!) { campaignReport(id: $id) { ... on CampaignReport { sent delayed pending excluded } } }",
        {"id": campaign["id"]},
        key=sandbox.admin,
    )
    assert report["campaignReport"] == {"sent": 1, "delayed": 2, "pending": 2, "excluded": 0}

    await step(gql, TOKYO_OPENS - SECOND)
    assert len(await sent_by_zone(campaign_id)) == 1
    await step(gql, TOKYO_OPENS)
    assert await sent_by_zone(campaign_id) == {"America/New_York": T0, None: TOKYO_OPENS}
    await step(gql, PARIS_OPENS - SECOND)
    assert len(await sent_by_zone(campaign_id)) == 2
    assert (await CampaignRun.get(id=run_id)).status is RunStatus.RUNNING
    await step(gql, PARIS_OPENS)
    sent = await sent_by_zone(campaign_id)
    assert sent == {"America/New_York": T0, None: TOKYO_OPENS, "Europe/Paris": PARIS_OPENS}
    # None inside quiet hours: each at 08:00 local or outside 21:00-08:00.
    for zone, at in sent.items():
        local = at.astimezone(ZoneInfo(zone or "Asia/Tokyo")).strftime("%H:%M")
        assert "08:00" <= local < "21:00", (zone, local)
    run = await CampaignRun.get(id=run_id)
    assert run.status is RunStatus.SUCCEEDED and run.sent == 3
    assert await Delivery.filter(run_id=run_id).exclude(status=DeliveryStatus.SENT).count() == 0
