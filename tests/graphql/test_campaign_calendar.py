"""`campaignCalendar`: recurrences expanded across a daylight-saving switch, overlapping audiences flagged per day
and channel, the version and estimate of each occurrence, and the bounds."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import activate, active_in_app_preset, audience, create, ready_input
from tests.graphql.test_profiles import email, upsert
from tests.graphql.test_segments import CREATE as SEGMENT_CREATE
from tests.graphql.test_segments import cond
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_runs import email_preset
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

CALENDAR = """query($from: DateTime!, $to: DateTime!, $tz: String!, $filter: CampaignCalendarFilter) {
  campaignCalendar(from: $from, to: $to, timeZone: $tz, filter: $filter) { __typename
    ... on CampaignCalendar { overlapCount occurrences {
      campaign { id name } scheduledFor day channel version runId overlaps overlapsWith
      estimatedAudience { qualified contactable } } }
    ... on CalendarLimitError { message limit maxDays maxOccurrences } } }"""


async def segment(gql: GraphQLClient, sandbox: SandboxKeys, name: str, rule: dict[str, Any]) -> str:
    created = await gql(SEGMENT_CREATE, {"input": {"kind": "RULE", "name": name, "rule": rule}}, key=sandbox.admin)
    return created["segmentCreate"]["segment"]["id"]


def daily(time_of_day: str) -> dict[str, Any]:
    return {
        "startAt": "2099-03-27T00:00:00+00:00",
        "endAt": "2099-04-30T00:00:00+00:00",
        "frequency": "DAILY",
        "timeOfDay": time_of_day,
        "timeZone": "Europe/Paris",
    }


async def email_campaign(
    gql: GraphQLClient, sandbox: SandboxKeys, preset_id: str, segment_id: str, name: str, schedule: dict[str, Any]
) -> str:
    campaign = await create(
        gql,
        sandbox,
        ready_input(
            preset_id,
            segment_id,
            name=name,
            schedule=schedule,
            action={"channel": "EMAIL", "presetId": preset_id},
            content={"email": {"subject": name, "html": "<p>{{ context.unsubscribeUrl }}</p>"}},
        ),
    )
    activated = await activate(gql, sandbox, campaign["id"])
    assert activated["campaign"]["status"] == "SCHEDULED", activated
    return campaign["id"]


async def calendar(gql: GraphQLClient, sandbox: SandboxKeys, start: str, end: str, **extra: Any) -> dict[str, Any]:
    variables = {"from": start, "to": end, "tz": "Europe/Paris", **extra}
    return (await gql(CALENDAR, variables, key=sandbox.keys[next(r for r in sandbox.keys if r.value == "VIEWER")]))[
        "campaignCalendar"
    ]


async def test_calendar_expands_across_dst_and_flags_overlapping_audiences(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    async with smtp_sink(SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
    gold = await audience(gql, sandbox)  # p0..p2, first names Ann0..Ann2
    await upsert(gql, sandbox.admin, [email(f"s{i}@example.com", attributes={"tier": "silver"}) for i in range(2)])
    anns = await segment(gql, sandbox, "anns", cond("person.name.firstName", "STARTS_WITH", "Ann"))
    silver = await segment(gql, sandbox, "silver", cond("tier", "EQ", "silver"))

    morning = await email_campaign(gql, sandbox, preset_id, gold, "Morning", daily("09:00"))
    evening = await email_campaign(gql, sandbox, preset_id, anns, "Evening", daily("18:00"))  # the same people
    others = await email_campaign(gql, sandbox, preset_id, silver, "Silver", daily("12:00"))  # nobody in common
    inbox = await create(
        gql,
        sandbox,
        ready_input(await active_in_app_preset(gql, sandbox), gold, schedule={"startAt": "2099-03-28T10:00:00+00:00"}),
    )
    assert (await activate(gql, sandbox, inbox["id"]))["campaign"]["status"] == "SCHEDULED"

    got = await calendar(gql, sandbox, "2099-03-27T00:00:00+01:00", "2099-03-31T00:00:00+02:00")
    assert got["__typename"] == "CampaignCalendar", got
    by_campaign: dict[str, list[dict[str, Any]]] = {}
    for occurrence in got["occurrences"]:
        by_campaign.setdefault(occurrence["campaign"]["id"], []).append(occurrence)

    # 09:00 in Paris is 08:00 UTC before the switch to summer time (2099-03-29), 07:00 UTC after it.
    assert [o["scheduledFor"] for o in by_campaign[morning]] == [
        "2099-03-27T08:00:00+00:00",
        "2099-03-28T08:00:00+00:00",
        "2099-03-29T07:00:00+00:00",
        "2099-03-30T07:00:00+00:00",
    ]
    assert [o["day"] for o in by_campaign[morning]] == ["2099-03-27", "2099-03-28", "2099-03-29", "2099-03-30"]
    assert [o["scheduledFor"][11:16] for o in by_campaign[evening]] == ["17:00", "17:00", "16:00", "16:00"]
    assert [o["scheduledFor"] for o in by_campaign[inbox["id"]]] == ["2099-03-28T10:00:00+00:00"]
    times = [o["scheduledFor"] for o in got["occurrences"]]
    assert times == sorted(times)

    # Morning and Evening reach the same profiles on the same channel every day: flagged, naming each other.
    assert {(o["overlaps"], tuple(o["overlapsWith"])) for o in by_campaign[morning]} == {(True, (evening,))}
    assert {(o["overlaps"], tuple(o["overlapsWith"])) for o in by_campaign[evening]} == {(True, (morning,))}
    # Silver shares no profile; the in-app message shares the segment but not the channel.
    assert not any(o["overlaps"] for o in by_campaign[others] + by_campaign[inbox["id"]])
    assert got["overlapCount"] == 8

    first = by_campaign[morning][0]
    assert (first["channel"], first["version"], first["runId"]) == ("EMAIL", 1, None)
    assert first["estimatedAudience"] == {"qualified": 3, "contactable": 3}
    assert by_campaign[others][0]["estimatedAudience"]["qualified"] == 2

    # The channel filter keeps only the in-app campaign.
    in_app = await calendar(gql, sandbox, "2099-03-27T00:00:00Z", "2099-03-31T00:00:00Z", filter={"channel": "IN_APP"})
    assert [o["campaign"]["id"] for o in in_app["occurrences"]] == [inbox["id"]]


async def test_calendar_refuses_past_its_bounds(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    too_long = await calendar(gql, sandbox, "2099-01-01T00:00:00Z", "2099-04-04T00:00:00Z")  # 93 days
    assert too_long["__typename"] == "CalendarLimitError"
    assert (too_long["limit"], too_long["maxDays"], too_long["maxOccurrences"]) == ("RANGE", 92, 2000)
    backwards = await calendar(gql, sandbox, "2099-01-02T00:00:00Z", "2099-01-01T00:00:00Z")
    assert backwards["limit"] == "RANGE"
    assert (await calendar(gql, sandbox, "2099-01-01T00:00:00Z", "2099-04-03T00:00:00Z"))[
        "__typename"
    ] == "CampaignCalendar"  # 92 days exactly
    zone = await gql(
        CALENDAR,
        {"from": "2099-01-01T00:00:00Z", "to": "2099-01-02T00:00:00Z", "tz": "Mars/Olympus_Mons"},
        key=sandbox.admin,
    )
    assert zone["campaignCalendar"]["limit"] == "TIME_ZONE"
