"""Delivery at each recipient's local time, end to end with the clock driven by the test: the dispatcher creates the
run when the first zone (UTC+14) reaches the wall time, every row is sent at its zone's wall time (not a second
before) across the US and EU daylight-saving switches, the run stays RUNNING until the last zone, and NEXT_DAY
moves recipients whose time had passed at activation to the next day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.audience.entities import Profile
from models.campaigns.actions import activate_campaign
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.ledger.delivery import Delivery, DeliveryStatus
from models.tenancy.sandbox import Sandbox
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import activate, active_in_app_preset, create, ready_input
from tests.graphql.test_profiles import email, upsert
from tests.graphql.test_segments import CREATE as SEGMENT_CREATE
from tests.graphql.test_segments import cond
from tests.jobs.test_dispatcher import pk
from tests.unit.test_local_time import EU_SPRING, US_SPRING

SECOND = timedelta(seconds=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def local_audience(gql: GraphQLClient, sandbox: SandboxKeys, zones: list[str | None]) -> str:
    """One profile per zone (None: a profile without a time zone), in a segment of their own."""
    people = []
    for i, name in enumerate(zones):
        fields = {"timeZone": name} if name else {}
        people.append(
            email(
                f"tz{i}@example.com",
                attributes={"group": "local", "person": {"name": {"firstName": f"P{i}"}}},
                **fields,
            )
        )
    await upsert(gql, sandbox.admin, people)
    created = await gql(
        SEGMENT_CREATE,
        {"input": {"kind": "RULE", "name": "local", "rule": cond("group", "EQ", "local")}},
        key=sandbox.admin,
    )
    return created["segmentCreate"]["segment"]["id"]


async def step(gql: GraphQLClient, now: datetime) -> None:
    """The world at `now`: the dispatcher's sweep, the jobs due by then, the run executor's clock."""
    await gql.drain_jobs(dispatch_at=now, until=now, clock=lambda: now)


async def sent_by_zone(campaign_id: int) -> dict[str | None, datetime]:
    rows = await Delivery.filter(campaign_id=campaign_id, status=DeliveryStatus.SENT).values("profile_id", "sent_at")
    zones = dict(await Profile.filter(id__in=[r["profile_id"] for r in rows]).values_list("id", "time_zone"))
    return {zones[r["profile_id"]]: r["sent_at"].astimezone(UTC) for r in rows}


@pytest.mark.parametrize(
    ("start_at", "campaign_zone", "table", "run_start"),
    [
        # 02:30 on the US switch day in Paris time: 02:30 is in New York's, Los Angeles' and St John's gap.
        ("2027-03-14T02:30:00+01:00", "Europe/Paris", US_SPRING, "2027-03-13T12:30"),
        # 02:30 on the EU switch day in New York time: 02:30 is in Paris' gap; London's gap was an hour before.
        ("2027-03-28T02:30:00-04:00", "America/New_York", EU_SPRING, "2027-03-27T12:30"),
    ],
    ids=["us-spring-forward", "eu-spring-forward"],
)
async def test_every_message_lands_at_the_local_minute(
    gql: GraphQLClient, sandbox: SandboxKeys, start_at: str, campaign_zone: str, table: list, run_start: str
) -> None:
    expected = {zone: utc(at) for zone, at in table}
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await local_audience(gql, sandbox, list(expected))
    schedule = {"startAt": start_at, "timeZone": campaign_zone, "deliverAt": "PROFILE_TIME_ZONE"}
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id, schedule=schedule))
    assert (await activate(gql, sandbox, campaign["id"]))["campaign"]["status"] == "SCHEDULED"
    campaign_id = pk(campaign["id"])

    # The run starts when UTC+14 reaches the wall time (whether or not anyone lives there).
    await step(gql, utc(run_start) - SECOND)
    assert await CampaignRun.filter(campaign_id=campaign_id).count() == 0
    await step(gql, utc(run_start))
    assert await CampaignRun.filter(campaign_id=campaign_id).values_list("status", flat=True) == [RunStatus.RUNNING]

    for due in sorted(set(expected.values())):
        if due > utc(run_start):  # the clock only moves forward
            await step(gql, due - SECOND)
            assert await sent_by_zone(campaign_id) == {z: at for z, at in expected.items() if at < due}
            runs = await CampaignRun.filter(campaign_id=campaign_id).values_list("status", flat=True)
            assert runs == [RunStatus.RUNNING]  # open while a zone is still to come
        await step(gql, due)
        assert await sent_by_zone(campaign_id) == {z: at for z, at in expected.items() if at <= due}

    sent = await sent_by_zone(campaign_id)
    assert sent == expected
    wall = datetime.fromisoformat(start_at).astimezone(ZoneInfo(campaign_zone)).strftime("%H:%M")
    for zone, at in sent.items():
        # The wall time in the zone, or an hour later when that day's clock skipped it.
        local = at.astimezone(ZoneInfo(zone or campaign_zone))
        skipped = local.dst() and not (local - timedelta(hours=1)).dst()
        assert local.strftime("%H:%M") == wall or (skipped and (local - timedelta(hours=1)).strftime("%H:%M") == wall)
    run = await CampaignRun.get(campaign_id=campaign_id)
    assert run.status is RunStatus.SUCCEEDED and run.sent == len(expected)
    assert run.starts_at is not None and run.starts_at.astimezone(UTC) == utc(run_start)
    assert run.scheduled_for.astimezone(UTC) == datetime.fromisoformat(start_at).astimezone(UTC)


async def test_next_day_for_zones_passed_at_activation(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    # Activated "now" at 09:00 in New York (13:00 UTC, 2027-06-01): 09:00 has passed in Paris and Kathmandu.
    zones = {
        "Europe/Paris": utc("2027-06-02T07:00"),  # the next day, 09:00 CEST
        "Asia/Kathmandu": utc("2027-06-02T03:15"),  # the next day, 09:00 +05:45
        "America/New_York": utc("2027-06-01T13:00"),  # now
        "America/Los_Angeles": utc("2027-06-01T16:00"),  # later today
        None: utc("2027-06-01T13:00"),  # the campaign's zone
    }
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await local_audience(gql, sandbox, list(zones))
    schedule = {"timeZone": "America/New_York", "deliverAt": "PROFILE_TIME_ZONE", "onPassedTime": "NEXT_DAY"}
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id, schedule=schedule))
    campaign_id = pk(campaign["id"])
    sandbox_id = (await Sandbox.get(name=sandbox.name)).id
    now = utc("2027-06-01T13:00")
    activation = await activate_campaign(sandbox_id, campaign_id, actor="test", now=now)
    assert activation.run is not None and activation.run.scheduled_for == now

    for due in sorted(set(zones.values())):
        await step(gql, due - SECOND)
        assert await sent_by_zone(campaign_id) == {z: at for z, at in zones.items() if at < due}
        await step(gql, due)
    assert await sent_by_zone(campaign_id) == zones
    assert (await CampaignRun.get(campaign_id=campaign_id)).status is RunStatus.SUCCEEDED
    assert (await Campaign.get(id=campaign_id)).status.value == "LIVE"


CREATE = """mutation($input: CampaignCreateInput!) { campaignCreate(input: $input) { __typename
  ... on CampaignSuccess { campaign { schedule { timeZone deliverAt onPassedTime } } }
  ... on InvalidInputError { fieldErrors { field code } } } }"""


async def test_schedule_options_round_trip_and_next_day_needs_profile_time_zone(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    local = {"timeZone": "Europe/Paris", "deliverAt": "PROFILE_TIME_ZONE", "onPassedTime": "NEXT_DAY"}
    created = await gql(CREATE, {"input": {"name": "x", "schedule": local}}, key=sandbox.admin)
    assert created["campaignCreate"] == {"__typename": "CampaignSuccess", "campaign": {"schedule": local}}
    plain = await gql(CREATE, {"input": {"name": "y", "schedule": {}}}, key=sandbox.admin)
    assert plain["campaignCreate"]["campaign"]["schedule"] == {
        "timeZone": "UTC",
        "deliverAt": "CAMPAIGN_TIME_ZONE",
        "onPassedTime": "SEND_NOW",
    }
    refused = await gql(
        CREATE, {"input": {"name": "z", "schedule": {**local, "deliverAt": "CAMPAIGN_TIME_ZONE"}}}, key=sandbox.admin
    )
    assert refused["campaignCreate"] == {
        "__typename": "InvalidInputError",
        "fieldErrors": [{"field": "input.schedule.onPassedTime", "code": "LOCAL_TIME_INVALID"}],
    }
