"""Versions of a LIVE recurring campaign, end to end: an edit makes a draft that runs do not send until it is
published; the run after publication sends it; a rollback restores the old message; a run in flight when a
version is published keeps the version it started with. Real SMTP sink, the dispatcher at a controlled clock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs.context import job_ctx
from jobs.dispatcher import dispatch
from jobs.runs import _snapshot
from models.campaigns.campaign import Campaign, CampaignRun, CampaignVersion, RunStatus
from models.campaigns.transitions import claim_run
from models.ledger.counts import Counts
from models.outbox.model import OutboxEvent
from models.outbox.payloads import CAMPAIGN_VERSION_TOPIC
from models.tenancy.audit import AuditEvent
from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import UPDATE, activate, active_in_app_preset, audience, create, ready_input
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_dispatcher import at, pk
from tests.jobs.test_runs import email_preset
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

VERSION_FIELDS = "number state content { email { subject html } } basedOn restores publishedBy"
VERSIONS = (
    "query($id: ID!) { campaign(id: $id) { version content { email { subject } } "
    "versions(first: 10) { totalCount nodes { " + VERSION_FIELDS + " } } } }"
)
PUBLICATION = """
  ... on CampaignVersionSuccess { campaign { version content { email { subject } } } version { number state restores } }
  ... on ReviewFailedError { message alerts { code } }
  ... on InvalidStateError { message currentStatus }
  ... on NotFoundError { message }
  ... on ConflictError { message }
"""
PUBLISH = (
    "mutation($input: CampaignVersionInput!) { campaignVersionPublish(input: $input) { __typename "
    + PUBLICATION
    + " } }"
)
ROLLBACK = (
    "mutation($input: CampaignVersionInput!) { campaignVersionRollback(input: $input) { __typename "
    + PUBLICATION
    + " } }"
)
DIFF = """query($id: ID!, $from: Int!, $to: Int!) { campaignVersionDiff(campaignId: $id, from: $from, to: $to) {
  __typename ... on CampaignVersionDiff { fromVersion { number } toVersion { number } changes { field before after } }
  ... on NotFoundError { message } } }"""
REVIEW_VERSION = """query($id: ID!, $v: Int) { campaignReview(id: $id, version: $v) { __typename
  ... on CampaignReview { canActivate alerts { code } } } }"""
RUN_DELIVERIES = (
    """query($run: ID!) { campaignRuns: deliveries(runId: $run, first: 10) { nodes { campaignVersion } } }"""
)

SCHEDULE = {
    "startAt": "2099-05-01T00:00:00+00:00",
    "endAt": "2099-05-31T00:00:00+00:00",
    "frequency": "DAILY",
    "timeOfDay": "09:00",
    "timeZone": "UTC",
}


@dataclass
class Live:
    campaign_id: str
    sink: SinkHandler


@contextlib.asynccontextmanager
async def live_daily_campaign(gql: GraphQLClient, sandbox: SandboxKeys) -> AsyncIterator[Live]:
    """A daily email campaign to three profiles, activated (SCHEDULED, then LIVE at its first run)."""
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        segment_id = await audience(gql, sandbox)
        campaign = await create(
            gql,
            sandbox,
            ready_input(
                preset_id,
                segment_id,
                name="Daily news",
                schedule=SCHEDULE,
                action={"channel": "EMAIL", "presetId": preset_id},
                content={"email": {"subject": "Issue v1", "html": "<p>v1 {{ context.unsubscribeUrl }}</p>"}},
            ),
        )
        activated = await activate(gql, sandbox, campaign["id"])
        assert activated["__typename"] == "CampaignActivateSuccess", activated
        yield Live(campaign["id"], handler)


async def edit_subject(gql: GraphQLClient, sandbox: SandboxKeys, campaign_id: str, subject: str) -> dict[str, Any]:
    version = (await gql("query($id: ID!) { campaign(id: $id) { version } }", {"id": campaign_id}, key=sandbox.admin))[
        "campaign"
    ]["version"]
    content = {"email": {"subject": subject, "html": f"<p>{subject} {{{{ context.unsubscribeUrl }}}}</p>"}}
    result = await gql(
        UPDATE, {"input": {"id": campaign_id, "version": version, "content": content}}, key=sandbox.keys[Role.MANAGER]
    )
    return result["campaignUpdate"]


async def run_day(gql: GraphQLClient, live: Live, day: int) -> tuple[CampaignRun, list[str]]:
    """The dispatcher at 09:00:01 UTC of 2099-05-`day`: the day's run, run to the end; the subjects it sent."""
    before = len(live.sink.received)
    await gql.drain_jobs(dispatch_at=at(f"2099-05-{day:02d}T09:00:01"))
    run = await CampaignRun.get(campaign_id=pk(live.campaign_id), scheduled_for=at(f"2099-05-{day:02d}T09:00:00"))
    assert run.status is RunStatus.SUCCEEDED, (run.status, run.failure_reason)
    return run, sorted(str(m.parsed["Subject"]) for m in live.sink.received[before:])


async def publish(gql: GraphQLClient, sandbox: SandboxKeys, campaign_id: str, number: int) -> dict[str, Any]:
    variables = {"input": {"campaignId": campaign_id, "number": number}}
    return (await gql(PUBLISH, variables, key=sandbox.keys[Role.PUBLISHER]))["campaignVersionPublish"]


async def test_edit_of_a_live_campaign_is_sent_only_once_published_and_rolls_back(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    async with live_daily_campaign(gql, sandbox) as live:
        cid = live.campaign_id
        first_run, subjects = await run_day(gql, live, 1)
        assert subjects == ["Issue v1"] * 3 and first_run.campaign_version == 1

        # Edited while LIVE: a draft version 2; the campaign still carries (and sends) version 1.
        edited = await edit_subject(gql, sandbox, cid, "Issue v2")
        assert edited["__typename"] == "CampaignSuccess", edited
        assert edited["campaign"]["content"]["email"]["subject"] == "Issue v1"
        read = (await gql(VERSIONS, {"id": cid}, key=sandbox.keys[Role.VIEWER]))["campaign"]
        assert [(v["number"], v["state"], v["basedOn"]) for v in read["versions"]["nodes"]] == [
            (2, "DRAFT", 1),
            (1, "PUBLISHED", None),
        ]
        assert read["versions"]["nodes"][0]["content"]["email"]["subject"] == "Issue v2"
        # A second edit changes the same draft; fields a version does not hold stay refused while LIVE.
        assert (await edit_subject(gql, sandbox, cid, "Issue v2!"))["__typename"] == "CampaignSuccess"
        refused = await gql(
            UPDATE,
            {"input": {"id": cid, "version": read["version"] + 1, "name": "Renamed"}},
            key=sandbox.keys[Role.MANAGER],
        )
        assert refused["campaignUpdate"]["fieldErrors"] == [
            {
                "field": "input.name",
                "code": "NOT_VERSIONED",
                "message": refused["campaignUpdate"]["fieldErrors"][0]["message"],
            }
        ]

        _, subjects = await run_day(gql, live, 2)
        assert subjects == ["Issue v1"] * 3  # the draft is not sent

        published = await publish(gql, sandbox, cid, 2)
        assert published["__typename"] == "CampaignVersionSuccess", published
        assert published["version"] == {"number": 2, "state": "PUBLISHED", "restores": None}
        assert published["campaign"]["content"]["email"]["subject"] == "Issue v2!"
        assert (await publish(gql, sandbox, cid, 2))["__typename"] == "InvalidStateError"  # nothing left to publish

        third_run, subjects = await run_day(gql, live, 3)
        assert subjects == ["Issue v2!"] * 3 and third_run.campaign_version == 2
        deliveries = await gql(RUN_DELIVERIES, {"run": _run_gid(third_run.id)}, key=sandbox.keys[Role.VIEWER])
        assert [d["campaignVersion"] for d in deliveries["campaignRuns"]["nodes"]] == [2, 2, 2]

        diff = (await gql(DIFF, {"id": cid, "from": 1, "to": 2}, key=sandbox.keys[Role.VIEWER]))["campaignVersionDiff"]
        assert diff["changes"] == [
            {
                "field": "content.email.html",
                "before": "<p>v1 {{ context.unsubscribeUrl }}</p>",
                "after": "<p>Issue v2! {{ context.unsubscribeUrl }}</p>",
            },
            {"field": "content.email.subject", "before": "Issue v1", "after": "Issue v2!"},
        ]

        rolled = (await gql(ROLLBACK, {"input": {"campaignId": cid, "number": 1}}, key=sandbox.keys[Role.PUBLISHER]))[
            "campaignVersionRollback"
        ]
        assert rolled["__typename"] == "CampaignVersionSuccess", rolled
        assert rolled["version"] == {"number": 3, "state": "PUBLISHED", "restores": 1}
        assert rolled["campaign"]["content"]["email"]["subject"] == "Issue v1"
        fourth_run, subjects = await run_day(gql, live, 4)
        assert subjects == ["Issue v1"] * 3 and fourth_run.campaign_version == 3
        empty = (await gql(DIFF, {"id": cid, "from": 1, "to": 3}, key=sandbox.keys[Role.VIEWER]))["campaignVersionDiff"]
        assert empty["changes"] == []

    states = await CampaignVersion.filter(campaign_id=pk(cid)).order_by("number").values_list("number", "state")
    assert [(n, s.value) for n, s in states] == [(1, "SUPERSEDED"), (2, "SUPERSEDED"), (3, "PUBLISHED")]
    events = await OutboxEvent.filter(
        topic=CAMPAIGN_VERSION_TOPIC, sandbox_id=_sandbox_of(await Campaign.get(id=pk(cid)))
    ).order_by("id")
    mine = [e.payload for e in events if e.payload["campaignId"] == pk(cid)]
    assert [(e["number"], e["previousNumber"], e["restores"]) for e in mine] == [(2, 1, None), (3, 2, 1)]
    actions = (
        await AuditEvent.filter(object_type="Campaign", object_id=str(pk(cid)))
        .order_by("id")
        .values_list("action", flat=True)
    )
    first_draft = (
        await AuditEvent.filter(object_type="Campaign", object_id=str(pk(cid)), action="VERSION_DRAFT")
        .order_by("id")
        .first()
    )
    assert first_draft is not None and first_draft.actor.startswith("apikey:")  # the MANAGER key that edited
    assert first_draft.after == {"versionNumber": 2, "changed": ["content.email.html", "content.email.subject"]}
    assert [a for a in actions if a.startswith("VERSION_")] == [
        "VERSION_DRAFT",
        "VERSION_DRAFT",
        "VERSION_PUBLISH",
        "VERSION_ROLLBACK",
    ]


async def test_a_run_in_flight_keeps_its_version_when_another_is_published(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    async with live_daily_campaign(gql, sandbox) as live:
        cid = live.campaign_id
        await run_day(gql, live, 1)
        assert (await edit_subject(gql, sandbox, cid, "Issue v2"))["__typename"] == "CampaignSuccess"

        # Day 2's run starts: its first step (claim, audience snapshot) fixes version 1; then its worker is gone.
        await dispatch(at("2099-05-02T09:00:01"))  # creates the PENDING run (no Redis: not enqueued)
        run = await CampaignRun.get(campaign_id=pk(cid), scheduled_for=at("2099-05-02T09:00:00"))
        now = datetime.now(UTC)
        claimed = await claim_run(run.id, now, now + timedelta(seconds=60))
        assert claimed is not None
        campaign = await Campaign.get(id=pk(cid))
        assert isinstance(await _snapshot(job_ctx(server.settings), claimed[0], campaign, now), Counts)
        assert (await CampaignRun.get(id=run.id)).campaign_version == 1

        # Version 2 is published while the run is in flight.
        assert (await publish(gql, sandbox, cid, 2))["__typename"] == "CampaignVersionSuccess"

        # The run resumes (its lease ran out; the dispatcher hands it to a worker) and sends version 1.
        await CampaignRun.filter(id=run.id).update(lease_until=datetime(2000, 1, 1, tzinfo=UTC))
        before = len(live.sink.received)
        await gql.drain_jobs(dispatch_at=at("2099-05-02T09:05:00"))
        resumed = await CampaignRun.get(id=run.id)
        assert resumed.status is RunStatus.SUCCEEDED and resumed.campaign_version == 1
        assert sorted(str(m.parsed["Subject"]) for m in live.sink.received[before:]) == ["Issue v1"] * 3

        # The next run sends the published version.
        next_run, subjects = await run_day(gql, live, 3)
        assert subjects == ["Issue v2"] * 3 and next_run.campaign_version == 2


async def test_publication_is_reviewed_and_one_shot_campaigns_have_no_versions(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    async with live_daily_campaign(gql, sandbox) as live:
        cid = live.campaign_id
        assert (await edit_subject(gql, sandbox, cid, ""))["__typename"] == "CampaignSuccess"
        # The draft can be reviewed before publishing: the same alerts the publication refuses on.
        draft_review = (await gql(REVIEW_VERSION, {"id": cid, "v": 2}, key=sandbox.keys[Role.MANAGER]))[
            "campaignReview"
        ]
        assert draft_review["canActivate"] is False
        assert "EMAIL_SUBJECT_MISSING" in [a["code"] for a in draft_review["alerts"]]
        published_review = (await gql(REVIEW_VERSION, {"id": cid, "v": 1}, key=sandbox.keys[Role.MANAGER]))[
            "campaignReview"
        ]
        assert published_review["canActivate"] is True
        missing = (await gql(REVIEW_VERSION, {"id": cid, "v": 9}, key=sandbox.keys[Role.MANAGER]))["campaignReview"]
        assert missing == {"__typename": "NotFoundError"}
        refused = await publish(gql, sandbox, cid, 2)
        assert refused["__typename"] == "ReviewFailedError"
        assert "EMAIL_SUBJECT_MISSING" in [a["code"] for a in refused["alerts"]]
        # Nothing changed: still version 1 published, 2 a draft.
        states = await CampaignVersion.filter(campaign_id=pk(cid)).order_by("number").values_list("state", flat=True)
        assert [s.value for s in states] == ["PUBLISHED", "DRAFT"]
        # A MANAGER may edit the draft, not publish it.
        denied = await gql.raw(PUBLISH, {"input": {"campaignId": cid, "number": 2}}, key=sandbox.keys[Role.MANAGER])
        assert denied.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # A one-shot campaign sent its message once: an edit stays refused, no draft is made.
    segment = (await gql("query($id: ID!) { campaign(id: $id) { segment { id } } }", {"id": cid}, key=sandbox.admin))[
        "campaign"
    ]["segment"]["id"]
    once = await create(gql, sandbox, ready_input(await active_in_app_preset(gql, sandbox), segment))
    activated = await activate(gql, sandbox, once["id"])
    content = {"inApp": {"title": "Changed", "body": "Changed"}}
    edit = {"id": once["id"], "version": activated["campaign"]["version"], "content": content}
    refused_edit = (await gql(UPDATE, {"input": edit}, key=sandbox.keys[Role.MANAGER]))["campaignUpdate"]
    assert refused_edit["__typename"] == "InvalidStateError", refused_edit
    states = await CampaignVersion.filter(campaign_id=pk(once["id"])).values_list("number", "state")
    assert [(n, s.value) for n, s in states] == [(1, "PUBLISHED")]


def _run_gid(run_id: int) -> str:
    from strawberry import relay

    return str(relay.GlobalID("CampaignRun", str(run_id)))


def _sandbox_of(campaign: Campaign) -> int:
    return campaign.sandbox_id
