"""The dispatcher with a controlled clock: scheduled starts, recurrence without doubles, completion."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from strawberry import relay

from jobs.dispatcher import dispatch
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import activate, active_in_app_preset, audience, create, ready_input
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_runs import email_preset
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def pk(global_id: str) -> int:
    return int(relay.GlobalID.from_id(global_id).node_id)


async def runs_of(campaign_id: int) -> list[datetime]:
    return [r.scheduled_for for r in await CampaignRun.filter(campaign_id=campaign_id).order_by("scheduled_for")]


async def test_scheduled_start_creates_one_run_and_goes_live(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox)
    campaign = await create(
        gql, sandbox, ready_input(preset_id, segment_id, schedule={"startAt": "2099-03-01T09:00:00+00:00"})
    )
    assert (await activate(gql, sandbox, campaign["id"]))["campaign"]["status"] == "SCHEDULED"
    campaign_id = pk(campaign["id"])

    before = await dispatch(at("2099-03-01T08:59:59"))
    assert campaign_id not in before.started and await runs_of(campaign_id) == []
    assert (await Campaign.get(id=campaign_id)).status.value == "SCHEDULED"

    first, second = await asyncio.gather(dispatch(at("2099-03-01T09:00:02")), dispatch(at("2099-03-01T09:00:02")))
    again = await dispatch(at("2099-03-01T09:00:05"))
    assert [campaign_id] == [c for c in first.started + second.started if c == campaign_id]
    assert await runs_of(campaign_id) == [at("2099-03-01T09:00:00")]
    assert (await Campaign.get(id=campaign_id)).status.value == "LIVE"
    run = await CampaignRun.get(campaign_id=campaign_id)
    assert run.id in again.enqueued  # PENDING and due: (re-)enqueued on every sweep, harmless by job id

    # Once its run finished, a one-off campaign without endAt stays LIVE until it is stopped (DESIGN §4).
    await CampaignRun.filter(id=run.id).update(status=RunStatus.SUCCEEDED)
    done = await dispatch(at("2099-03-01T09:01:00"))
    assert campaign_id not in done.completed
    assert (await Campaign.get(id=campaign_id)).status.value == "LIVE"


async def test_recurrence_makes_exactly_one_run_per_fire_time(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    # In-app messages cannot recur: an email campaign (its preset validated against a sink).
    async with smtp_sink(SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
    segment_id = await audience(gql, sandbox)
    schedule = {
        "startAt": "2099-03-25T00:00:00+00:00",
        "endAt": "2099-03-30T00:00:00+00:00",
        "frequency": "DAILY",
        "timeOfDay": "09:00",
        "timeZone": "Europe/Paris",
    }
    campaign = await create(
        gql,
        sandbox,
        ready_input(
            preset_id,
            segment_id,
            schedule=schedule,
            action={"channel": "EMAIL", "presetId": preset_id},
            content={"email": {"subject": "Daily", "html": "<p>{{ context.unsubscribeUrl }}</p>", "text": "Daily"}},
        ),
    )
    activated = await activate(gql, sandbox, campaign["id"])
    assert activated.get("campaign", {}).get("status") == "SCHEDULED", activated
    campaign_id = pk(campaign["id"])

    # 09:00 in Paris is 08:00 UTC before the DST change (2099-03-29) and 07:00 UTC after it.
    clock = [
        "2099-03-25T00:00:01", "2099-03-25T08:00:01", "2099-03-25T08:00:01", "2099-03-25T08:30:00",
        "2099-03-26T08:00:00", "2099-03-26T08:00:00", "2099-03-27T08:10:00", "2099-03-28T07:59:59",
        "2099-03-28T08:00:03", "2099-03-29T07:00:01", "2099-03-29T07:00:02", "2099-03-29T08:00:00",
    ]  # fmt: skip
    for now in clock:
        await asyncio.gather(dispatch(at(now)), dispatch(at(now)))
    assert await runs_of(campaign_id) == [
        at("2099-03-25T08:00:00"),
        at("2099-03-26T08:00:00"),
        at("2099-03-27T08:00:00"),
        at("2099-03-28T08:00:00"),
        at("2099-03-29T07:00:00"),
    ]
    assert (await Campaign.get(id=campaign_id)).status.value == "LIVE"

    # Not completed before endAt, even with every run finished; completed after it.
    await CampaignRun.filter(campaign_id=campaign_id).update(status=RunStatus.SUCCEEDED)
    assert campaign_id not in (await dispatch(at("2099-03-29T23:00:00"))).completed
    assert campaign_id in (await dispatch(at("2099-03-30T00:00:01"))).completed
    assert await runs_of(campaign_id) == [
        at("2099-03-25T08:00:00"),
        at("2099-03-26T08:00:00"),
        at("2099-03-27T08:00:00"),
        at("2099-03-28T08:00:00"),
        at("2099-03-29T07:00:00"),
    ]
