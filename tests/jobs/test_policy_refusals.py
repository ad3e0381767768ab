"""A relay refusing recipients for a sender-side reason (550 5.7.1) suppresses nobody (the run that meets it
pauses: tests/jobs/test_run_pause.py)."""

from __future__ import annotations

from jobs.channels.base import FailureCode, SendStatus
from jobs.channels.email import TlsMode
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, create
from tests.graphql.test_profiles import upsert
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_channels_email import adapter_for, outgoing
from tests.jobs.test_runs import email_preset, finished_run, gold, gold_segment, ledger
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER, self_signed_tls_context, smtp_server

RELAY_DENIED = "550 5.7.1 Relaying denied: client host blocked using zen.spamhaus.org"


async def test_adapter_reports_policy_refusals_as_the_senders_and_address_problems_as_bounces():
    handler = SinkHandler(
        rcpt_replies={
            "user0@example.com": RELAY_DENIED,
            "user1@example.com": "550 5.1.1 No such user",
            "user2@example.com": "535 5.7.8 Authentication credentials invalid",
            "user3@example.com": "550 Relay access denied",
        }
    )
    async with smtp_sink(handler) as sink:
        adapter = adapter_for(sink, max_connections=1)
        try:
            results = await adapter.send_batch(outgoing(4))
        finally:
            await adapter.close()
    assert [(r.status, r.reason, r.suppress_address) for r in results] == [
        (SendStatus.HARD_FAIL, FailureCode.SENDER_REJECTED, False),
        (SendStatus.HARD_FAIL, FailureCode.HARD_BOUNCE, True),
        (SendStatus.HARD_FAIL, FailureCode.AUTH_FAILED, False),
        (SendStatus.HARD_FAIL, FailureCode.SENDER_REJECTED, False),
    ]


async def test_a_run_keeps_the_relays_id_from_its_250_reply(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    handler = SinkHandler(
        credentials=(SMTP_USER, SMTP_PASSWORD), data_accept_reply="250 Ok: queued as 883953f4-6105-42a2-a16a"
    )
    async with smtp_sink(handler) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        await upsert(gql, sandbox.admin, [gold("one@example.com", "One", consent={"email": "Y"})])
        campaign = await create(
            gql,
            sandbox,
            {
                "name": "Relayed",
                "action": {"channel": "EMAIL", "presetId": preset_id},
                "content": {"email": {"subject": "Hi", "html": "<p>Hi</p>", "text": "Hi"}},
                "audience": {"segmentId": await gold_segment(gql, sandbox), "namespaceCode": "Email"},
            },
        )
        assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
        run = await finished_run(gql, campaign["id"])
    [row] = (await ledger(run.id)).values()
    assert (row.status.value, row.relay_id) == ("SENT", "883953f4-6105-42a2-a16a")
    assert row.provider_message_id == sink.handler.received[0].message_id


async def _send_one(sink, tls: TlsMode):
    adapter = adapter_for(sink, max_connections=1, tls=tls)
    try:
        [result] = await adapter.send_batch(outgoing(1))
    finally:
        await adapter.close()
    return result


def _configuration_failure(result, said: str) -> None:
    assert (result.status, result.reason, result.suppress_address) == (
        SendStatus.HARD_FAIL, FailureCode.CONFIGURATION, False,
    )  # fmt: skip
    assert said in result.message


async def test_tls_setup_failures_are_configuration_failures_not_retries() -> None:
    # The preset wants STARTTLS and the server offers none.
    async with smtp_sink() as sink:
        _configuration_failure(await _send_one(sink, TlsMode.STARTTLS), "STARTTLS extension not supported")
        assert sink.handler.received == []
    # The server requires STARTTLS and the preset has it off: 530 5.7.0 to MAIL.
    async with smtp_sink(starttls=self_signed_tls_context()) as sink:
        _configuration_failure(await _send_one(sink, TlsMode.NONE), "STARTTLS")
        assert sink.handler.received == []
    # STARTTLS offered with a certificate nobody trusts (a server in its own thread: the failed handshake ends
    # there, not in the test's loop).
    with smtp_server(tls_context=self_signed_tls_context()) as server:
        _configuration_failure(await _send_one(server, TlsMode.STARTTLS), "CERTIFICATE_VERIFY_FAILED")
