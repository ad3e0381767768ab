"""Credential and configuration failures pause a run instead of failing its audience (issue 24): the refused
sends go back to QUEUED without an attempt, nobody is suppressed, the preset shows the refusal and must be
validated again, and `campaignRunResume` finishes the run with nothing lost and nothing sent twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from strawberry import relay

from jobs.dispatcher import dispatch
from models.audience.entities import SuppressionEntry
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.campaigns.rules import CampaignStatus
from models.ledger.delivery import DeliveryStatus
from models.presets.preset import MessagePreset
from models.presets.rules import PresetStatus
from models.tenancy.audit import AuditEvent
from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, create
from tests.graphql.test_presets import UPDATE, email_input, validated
from tests.graphql.test_profiles import upsert
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_runs import email_preset, gold, gold_segment, ledger
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

RELAY_DENIED = "550 5.7.1 Relaying denied: client host blocked using zen.spamhaus.org"
NEW_PASSWORD = "r0tated-smtp-Pa55"

RESUME = """
mutation($input: CampaignRunResumeInput!) { campaignRunResume(input: $input) { __typename
  ... on CampaignRunResumeSuccess { run { status pauseReason } }
  ... on PresetNotReadyError { message presetId presetStatus }
  ... on InvalidStateError { message currentStatus }
  ... on NotFoundError { message id }
} }
"""
RUN = """
query($id: ID!) { node(id: $id) { ... on CampaignRun {
  status pauseReason pauseDetail pausedAt sent pending failed lastError { reason count }
} } }
"""


@dataclass
class RotatingHandler(SinkHandler):
    """Accepts `rotate_after` messages with the first credentials, then only the new ones: every session logged
    in before the change answers its next MAIL with 421 and hangs up (as a server restarting after a password
    change), and new logins need the new password. The change comes at a MAIL, not at the end of a DATA: the
    pool's sessions send concurrently, and all their MAILs could be accepted before any DATA ends."""

    rotate_after: int = 0
    new_credentials: tuple[str, str] | None = None
    rotated: bool = False
    mails: int = 0
    # Sessions that logged in after the change (with the new password): they may go on.
    fresh: set[int] = field(default_factory=set)

    async def handle_MAIL(self, server, session, envelope, address, options):
        if self.new_credentials is not None and self.mails >= self.rotate_after:
            self.credentials, self.new_credentials, self.rotated = self.new_credentials, None, True
        if self.rotated and id(server) not in self.fresh:
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.4.2 Password changed, closing connection"
        self.mails += 1
        return await super().handle_MAIL(server, session, envelope, address, options)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        result = super().authenticate(server, session, envelope, mechanism, auth_data)
        if self.rotated and result.success:
            self.fresh.add(id(server))
        return result


def run_gid(run: CampaignRun) -> str:
    return str(relay.GlobalID("CampaignRun", str(run.id)))


async def email_campaign(gql: GraphQLClient, sandbox: SandboxKeys, port: int, addresses: list[str]) -> dict[str, Any]:
    preset_id = await email_preset(gql, sandbox, port)
    await upsert(gql, sandbox.admin, [gold(a, "R", consent={"email": "Y"}) for a in addresses])
    campaign = await create(
        gql,
        sandbox,
        {
            "name": "Paused",
            "action": {"channel": "EMAIL", "presetId": preset_id},
            "content": {"email": {"subject": "Hi", "html": "<p>Hi</p>", "text": "Hi"}},
            "audience": {"segmentId": await gold_segment(gql, sandbox), "namespaceCode": "Email"},
        },
    )
    activated = await activate(gql, sandbox, campaign["id"])
    assert activated["__typename"] == "CampaignActivateSuccess", activated
    return {**campaign, "presetId": preset_id}


async def run_of(campaign_id: str) -> CampaignRun:
    db_id = int(relay.GlobalID.from_id(campaign_id).node_id)
    run = await CampaignRun.filter(campaign_id=db_id).order_by("-id").first()
    assert run is not None
    return run


async def resume(gql: GraphQLClient, sandbox: SandboxKeys, run: CampaignRun) -> dict[str, Any]:
    return (await gql(RESUME, {"input": {"runId": run_gid(run)}}, key=sandbox.keys[Role.PUBLISHER]))[
        "campaignRunResume"
    ]


async def test_a_relay_refusing_every_recipient_with_5_7_1_pauses_the_run_and_suppresses_nobody(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    addresses = [f"r{i}@example.com" for i in range(6)]
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD), rcpt_replies=dict.fromkeys(addresses, RELAY_DENIED))
    async with smtp_sink(handler) as sink:
        campaign = await email_campaign(gql, sandbox, sink.port, addresses)
        await gql.drain_jobs()
        run = await run_of(campaign["id"])

        assert sink.handler.received == []
        assert run.status is RunStatus.PAUSED
        rows = (await ledger(run.id)).values()
        # Back in the queue as if never tried: no attempt, no reason, the relay's answer kept.
        assert sorted((d.address, d.status, d.attempts, d.reason) for d in rows) == [
            (a, DeliveryStatus.QUEUED, 0, None) for a in addresses
        ]
        assert all("5.7.1" in (d.last_error or "") for d in rows)
        assert not await SuppressionEntry.filter(sandbox_id=run.sandbox_id).exists()

        shown = (await gql(RUN, {"id": run_gid(run)}, key=sandbox.keys[Role.VIEWER]))["node"]
        assert (shown["status"], shown["pauseReason"], shown["pending"], shown["failed"]) == (
            "PAUSED", "SENDER_REFUSED", 6, 0,
        )  # fmt: skip
        assert "5.7.1" in shown["pauseDetail"] and shown["pausedAt"]

        # The alert on the preset: FAILED with the refusal as its failed check, to be validated again.
        preset = await MessagePreset.get(id=int(relay.GlobalID.from_id(campaign["presetId"]).node_id))
        assert preset.status is PresetStatus.FAILED
        assert [(c["check"], c["code"]) for c in preset.checks] == [("sending", "SENDER_REFUSED")]

        # Nothing picks the run up: the dispatcher neither resumes nor re-enqueues it, the campaign stays LIVE.
        report = await dispatch(run.paused_at)
        assert run.id not in report.resumed + report.enqueued
        await gql.drain_jobs()
        assert (await CampaignRun.get(id=run.id)).status is RunStatus.PAUSED
        assert (await Campaign.get(id=run.campaign_id)).status is CampaignStatus.LIVE

        refused = await resume(gql, sandbox, run)
        assert (refused["__typename"], refused["presetStatus"]) == ("PresetNotReadyError", "FAILED"), refused
        actions = await AuditEvent.filter(object_type="CampaignRun", object_id=str(run.id)).order_by("id")
        assert [a.action for a in actions][-1] == "RUN_PAUSE"
        assert actions[-1].after["reason"] == "SENDER_REFUSED"


async def test_a_password_rotated_mid_run_pauses_and_the_fixed_preset_resumes_it_without_loss_or_repeat(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    addresses = [f"p{i}@example.com" for i in range(12)]
    handler = RotatingHandler(
        credentials=(SMTP_USER, SMTP_PASSWORD), rotate_after=4, new_credentials=(SMTP_USER, NEW_PASSWORD)
    )
    async with smtp_sink(handler) as sink:
        campaign = await email_campaign(gql, sandbox, sink.port, addresses)
        await gql.drain_jobs()
        run = await run_of(campaign["id"])
        assert (run.status, run.pause_reason and run.pause_reason.value) == (RunStatus.PAUSED, "CREDENTIALS_REFUSED")
        before = len(sink.handler.received)
        assert before >= 4
        rows = (await ledger(run.id)).values()
        assert Counter(d.status for d in rows) == {DeliveryStatus.SENT: before, DeliveryStatus.QUEUED: 12 - before}
        assert {d.attempts for d in rows if d.status is DeliveryStatus.QUEUED} == {0}

        # Resuming before the preset is fixed is refused.
        assert (await resume(gql, sandbox, run))["__typename"] == "PresetNotReadyError"
        fixed = email_input("mailer", sink.port, email={"smtpPassword": NEW_PASSWORD})
        update = {"id": campaign["presetId"], "settings": fixed["settings"]}
        updated = (await gql(UPDATE, {"input": update}, key=sandbox.admin))["messagePresetUpdate"]
        assert updated["__typename"] == "MessagePresetUpdateSuccess", updated
        assert (await resume(gql, sandbox, run))["__typename"] == "PresetNotReadyError"  # DRAFT, not validated
        assert (await validated(gql, sandbox.admin, campaign["presetId"]))["status"] == "ACTIVE"

        resumed = await resume(gql, sandbox, run)
        assert resumed == {"__typename": "CampaignRunResumeSuccess", "run": {"status": "RUNNING", "pauseReason": None}}
        await gql.drain_jobs()

    run = await CampaignRun.get(id=run.id)
    assert run.status is RunStatus.SUCCEEDED and run.sent == 12
    # Every recipient exactly once at the sink, each message once.
    message_ids = sink.handler.message_ids
    assert len(message_ids) == 12 and len(set(message_ids)) == 12
    assert sorted(r for m in sink.handler.received for r in m.recipients) == sorted(addresses)
    rows = (await ledger(run.id)).values()
    assert {(d.status, d.attempts) for d in rows} == {(DeliveryStatus.SENT, 1)}
    assert not await SuppressionEntry.filter(sandbox_id=run.sandbox_id).exists()
    actions = [a.action for a in await AuditEvent.filter(object_type="CampaignRun", object_id=str(run.id))]
    assert actions.count("RUN_PAUSE") == 1 and actions.count("RUN_RESUME_PAUSED") == 1


async def test_resume_is_refused_for_a_run_that_is_not_paused_and_for_another_sandbox(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys, server: RunningServer
) -> None:
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        campaign = await email_campaign(gql, sandbox, sink.port, ["ok@example.com"])
        await gql.drain_jobs()
    run = await run_of(campaign["id"])
    assert run.status is RunStatus.SUCCEEDED
    refused = await resume(gql, sandbox, run)
    assert (refused["__typename"], refused["currentStatus"]) == ("InvalidStateError", "SUCCEEDED")
    assert (await resume(gql, other_sandbox, run))["__typename"] == "NotFoundError"
