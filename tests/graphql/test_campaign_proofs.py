"""campaignSendProof: rendered per test profile, sent now through the preset's adapter, outside any run."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from models.campaigns.campaign import CampaignRun
from models.ledger.delivery import Delivery, InboxMessage
from models.tenancy.audit import AuditEvent
from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, active_in_app_preset, create, ready_input
from tests.graphql.test_profiles import email, upsert
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_runs import email_preset, gold, gold_segment
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

PROOF = """mutation($input: CampaignSendProofInput!) { campaignSendProof(input: $input) {
  __typename
  ... on CampaignSendProofSuccess { campaign { id status } outcomes { recipient status message profileId } }
  ... on InvalidInputError { fieldErrors { field code } }
  ... on InvalidStateError { currentStatus }
  ... on NotFoundError { id }
} }"""


def db_id(global_id: str) -> int:
    from strawberry import relay

    return int(relay.GlobalID.from_id(global_id).node_id)


async def proof(gql: GraphQLClient, sandbox: SandboxKeys, **input: Any) -> dict[str, Any]:
    return (await gql(PROOF, {"input": input}, key=sandbox.keys[Role.MANAGER]))["campaignSendProof"]


async def test_email_proofs_to_test_profiles_and_addresses(
    gql: GraphQLClient,
    sandbox: SandboxKeys,
    server: RunningServer,
    worker: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="jobs.proofs")
    async with smtp_sink(SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        people = [
            gold("tess@example.com", "Tess", testProfile=True),
            gold("toby@example.com", "Toby", testProfile=True),
            gold("real@example.com", "Real"),
        ]
        ids = [r["profile"]["id"] for r in (await upsert(gql, sandbox.admin, people))["results"]]
        campaign = await create(
            gql,
            sandbox,
            {
                "name": "Proofed",
                "action": {"channel": "EMAIL", "presetId": preset_id},
                "content": {
                    "email": {
                        "subject": "Hello {{ profile.person.name.firstName }}",
                        "preheader": "For {{ profile.person.name.firstName }}",
                        "html": '<p>News</p><a href="{{ context.unsubscribeUrl }}">unsubscribe</a>',
                        "text": "News",
                    }
                },
                "audience": {"segmentId": await gold_segment(gql, sandbox), "namespaceCode": "Email"},
            },
        )

        sent = await proof(gql, sandbox, id=campaign["id"], testProfileIds=ids[:2])
        assert sent["__typename"] == "CampaignSendProofSuccess", sent
        assert [(o["recipient"], o["status"], o["profileId"]) for o in sent["outcomes"]] == [
            ("tess@example.com", "SENT", ids[0]),
            ("toby@example.com", "SENT", ids[1]),
        ]
        assert sent["campaign"]["status"] == "DRAFT"
        by_address = {r.recipients[0]: r.parsed for r in sink.handler.received}
        assert by_address["tess@example.com"]["Subject"] == "[Proof] Hello Tess"
        assert by_address["toby@example.com"]["Subject"] == "[Proof] Hello Toby"
        assert ">For Toby</span>" in by_address["toby@example.com"].get_body(("html",)).get_content()

        # A raw address is rendered with the sandbox's first test profile.
        raw = await proof(gql, sandbox, id=campaign["id"], addresses=["  Someone@Example.com"])
        assert [(o["recipient"], o["status"]) for o in raw["outcomes"]] == [("someone@example.com", "SENT")]
        assert sink.handler.received[-1].parsed["Subject"] == "[Proof] Hello Tess"
        assert len(sink.handler.received) == 3

        # Outcomes are logged with their counts, at the level they deserve.
        sink.handler.rcpt_replies["gone@example.com"] = "550 5.1.1 No such user"
        mixed = await proof(gql, sandbox, id=campaign["id"], addresses=["gone@example.com", "ok@example.com"])
        assert [o["status"] for o in mixed["outcomes"]] == ["FAILED", "SENT"]
        failed = await proof(gql, sandbox, id=campaign["id"], addresses=["gone@example.com"])
        assert [o["status"] for o in failed["outcomes"]] == ["FAILED"]
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "jobs.proofs"]
    campaign_pk = db_id(campaign["id"])
    assert [level for level, _ in logged] == ["INFO", "INFO", "WARNING", "ERROR"], logged
    assert logged[0][1] == f"proof of campaign {campaign_pk}: 2 SENT"
    assert logged[2][1].startswith(f"proof of campaign {campaign_pk}: 1 FAILED, 1 SENT (") and "550" in logged[2][1]

    assert not await CampaignRun.filter(campaign_id=campaign_pk).exists()  # outside any run and its counters
    assert not await Delivery.filter(campaign_id=campaign_pk).exists()
    audits = await AuditEvent.filter(object_type="Campaign", object_id=str(campaign_pk), action="SEND_PROOF").order_by(
        "id"
    )
    assert [len(a.after["recipients"]) for a in audits] == [2, 1, 2, 1]


async def test_refusals_name_the_field_and_send_nothing(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, worker: None
) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await gold_segment(gql, sandbox)
    ids = [
        r["profile"]["id"]
        for r in (
            await upsert(gql, sandbox.admin, [gold("t@example.com", "T", testProfile=True), email("n@example.com")])
        )["results"]
    ]
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id))
    cases = [
        ({"addresses": [f"a{i}@example.com" for i in range(11)]}, [("input.addresses", "TOO_MANY")]),
        ({"addresses": ["a@example.com"], "testProfileIds": ids[:1]}, [("input.testProfileIds", "ONE_OF")]),
        ({}, [("input.testProfileIds", "ONE_OF")]),
        (
            {"testProfileIds": [ids[1], "UHJvZmlsZTo5OTk5OTk5"]},
            [
                ("input.testProfileIds.0", "NOT_TEST_PROFILE"),
                ("input.testProfileIds.1", "NOT_FOUND"),
            ],
        ),
    ]
    for given, expected in cases:
        refused = await proof(gql, sandbox, id=campaign["id"], **given)
        assert refused["__typename"] == "InvalidInputError", (given, refused)
        assert [(e["field"], e["code"]) for e in refused["fieldErrors"]] == expected

    # In-app proofs go to the test profile's identity inbox.
    sent = await proof(gql, sandbox, id=campaign["id"], testProfileIds=ids[:1])
    assert [(o["recipient"], o["status"]) for o in sent["outcomes"]] == [("t@example.com", "SENT")]
    assert await InboxMessage.filter(identity="t@example.com", title="Hi T").exists()

    assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
    live = await proof(gql, sandbox, id=campaign["id"], testProfileIds=ids[:1])
    assert live == {"__typename": "InvalidStateError", "currentStatus": "LIVE"}
    viewer = await gql.raw(
        PROOF, {"input": {"id": campaign["id"], "addresses": ["x@example.com"]}}, key=sandbox.keys[Role.VIEWER]
    )
    assert viewer.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
