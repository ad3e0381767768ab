"""campaignTrigger: API-triggered campaigns, exactly once per recipient per idempotency key (issue 17).

Real parts: the SMTP sink (aiosmtpd), the database of the suite, queued jobs run by `drain_jobs()`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from strawberry import relay

from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.ledger.delivery import Delivery
from models.tenancy.sandbox import Role
from models.triggers.accept import accept_trigger
from models.triggers.trigger import CampaignTrigger
from models.triggers.values import TriggerRecipient, TriggerRequest
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import activate, create
from tests.graphql.test_campaigns import review as review_of
from tests.graphql.test_presets import CREATE as PRESET_CREATE
from tests.graphql.test_presets import email_input, validated
from tests.graphql.test_profiles import email, upsert
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

TRIGGER = """mutation($input: CampaignTriggerInput!) { campaignTrigger(input: $input) { __typename
  ... on CampaignTriggerSuccess { replayed trigger { id status accepted rejected { index reason } runId
        idempotencyKey context } }
  ... on InvalidInputError { message fieldErrors { field code message } }
  ... on NotFoundError { message id }
  ... on IdempotencyConflictError { message idempotencyKey triggerId }
  ... on InvalidStateError { message currentStatus } } }"""
TRIGGERS = """query($id: ID!) { campaignTriggers(campaignId: $id) { edges { node { id status accepted } } } }"""
DELIVERIES = """query($id: ID!) { deliveries(triggerId: $id) { edges { node { status reason address triggerId } } } }"""
SUPPRESS = """mutation($input: SuppressionAddInput!) { suppressionAdd(input: $input) { __typename } }"""
HTML = (
    "<p>Order {{ context.trigger.order.id }} for {{ context.recipient.name }}, {{ profile.first | default: 'you' }}</p>"
)
SAMPLE = {"trigger": {"order": {"id": "A-1"}}, "recipient": {"name": "Ada"}}


def pk(global_id: str) -> int:
    return int(relay.GlobalID.from_id(global_id).node_id)


async def email_preset(gql: GraphQLClient, sandbox: SandboxKeys, port: int, category: str) -> str:
    preset_input = email_input(f"mailer-{category.lower()}", port, category=category)
    created = (await gql(PRESET_CREATE, {"input": preset_input}, key=sandbox.admin))["messagePresetCreate"]
    assert created["__typename"] == "MessagePresetCreateSuccess", created
    preset = await validated(gql, sandbox.admin, created["preset"]["id"])
    assert preset["status"] == "ACTIVE", preset
    return preset["id"]


async def api_campaign(gql: GraphQLClient, sandbox: SandboxKeys, port: int, category: str, **extra: Any) -> str:
    preset_id = await email_preset(gql, sandbox, port, category)
    html = HTML if category == "TRANSACTIONAL" else HTML + '<a href="{{ context.unsubscribeUrl }}">unsubscribe</a>'
    campaign = await create(
        gql,
        sandbox,
        {
            "name": f"Receipt {category}",
            "type": "API_TRIGGERED",
            "category": category,
            "action": {"channel": "EMAIL", "presetId": preset_id},
            "content": {"email": {"subject": "Order {{ context.trigger.order.id }}", "html": html, "text": "Order"}},
            "audience": {"namespaceCode": "Email"},
            "tracking": {"opens": False, "clicks": False},
            "triggerContextSample": SAMPLE,
            **extra,
        },
    )
    activated = await activate(gql, sandbox, campaign["id"])
    assert activated["__typename"] == "CampaignActivateSuccess", activated
    assert activated["run"] is None  # an API campaign's runs come from its triggers
    return campaign["id"]


async def people(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    await upsert(
        gql,
        sandbox.admin,
        [
            email("yes@example.com", consent={"email": "Y"}, attributes={"first": "Yan"}),
            email("no@example.com", consent={"email": "N"}),
            email("bounced@example.com", consent={"email": "Y"}),
            email("complained@example.com", consent={"email": "Y"}),
            email("unsubscribed@example.com", consent={"email": "Y"}),
        ],
    )
    for address, reason in (
        ("bounced@example.com", "HARD_BOUNCE"),
        ("complained@example.com", "SPAM_COMPLAINT"),
        ("unsubscribed@example.com", "UNSUBSCRIBE"),
    ):
        added = await gql(
            SUPPRESS, {"input": {"channel": "EMAIL", "address": address, "reason": reason}}, key=sandbox.admin
        )
        assert added["suppressionAdd"]["__typename"] == "SuppressionAddSuccess", added


def recipient(address: str, **context: Any) -> dict[str, Any]:
    return {"identity": {"namespace": "Email", "value": address}, "context": context}


ALL = ["yes@example.com", "no@example.com", "bounced@example.com", "complained@example.com", "unsubscribed@example.com"]


async def trigger(gql: GraphQLClient, sandbox: SandboxKeys, input: dict[str, Any]) -> dict[str, Any]:
    return (await gql(TRIGGER, {"input": input}, key=sandbox.keys[Role.PUBLISHER]))["campaignTrigger"]


async def outcomes(trigger_id: str) -> dict[str, tuple[str, str | None]]:
    rows = await Delivery.filter(trigger_id=pk(trigger_id))
    return {d.address: (d.status.value, d.reason) for d in rows}


async def test_transactional_reaches_no_consent_but_never_a_bounce_or_complaint(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "TRANSACTIONAL")
        await people(gql, sandbox)
        result = await trigger(
            gql,
            sandbox,
            {
                "campaignId": campaign_id,
                "idempotencyKey": "order-A-1",
                "context": {"order": {"id": "A-1"}},
                "recipients": [recipient(a, name=a.split("@")[0].title()) for a in ALL]
                + [recipient("nobody@example.com", name="X"), recipient("YES@example.com", name="again")],
            },
        )
        assert result["__typename"] == "CampaignTriggerSuccess", result
        got = result["trigger"]
        assert (got["status"], got["accepted"], result["replayed"]) == ("ACCEPTED", 5, False)
        assert got["rejected"] == [
            {"index": 5, "reason": "PROFILE_NOT_FOUND"},
            {"index": 6, "reason": "DUPLICATE_RECIPIENT"},
        ]
        await gql.drain_jobs()

    assert await outcomes(got["id"]) == {
        "yes@example.com": ("SENT", None),
        "no@example.com": ("SENT", None),  # consent n: transactional ignores marketing consent
        "bounced@example.com": ("EXCLUDED", "SUPPRESSED"),
        "complained@example.com": ("EXCLUDED", "SUPPRESSED"),
        "unsubscribed@example.com": ("SENT", None),  # an unsubscribe stops marketing, not a receipt
    }
    by_address = {r.recipients[0]: r for r in handler.received}
    assert set(by_address) == {"yes@example.com", "no@example.com", "unsubscribed@example.com"}
    yes = by_address["yes@example.com"].parsed
    assert yes["Subject"] == "Order A-1"
    assert "Order A-1 for Yes, Yan" in yes.get_body(("html",)).get_content()
    assert "List-Unsubscribe" not in yes  # transactional: no unsubscribe link
    assert len({r.message_id for r in handler.received}) == 3
    # The campaign's long-lived trigger run stays open for the next triggers; the trigger counts its own rows.
    run = await CampaignRun.get(id=pk(got["runId"]))
    assert run.status is RunStatus.RUNNING and run.open_for_triggers
    assert (run.targeted, run.excluded, run.sent) == (3, 2, 3)
    row = await CampaignTrigger.get(id=pk(got["id"]))
    assert (row.sent, row.failed, row.excluded, row.pending) == (3, 0, 2, 0)

    listed = await gql(DELIVERIES, {"id": got["id"]}, key=sandbox.keys[Role.VIEWER])
    nodes = [e["node"] for e in listed["deliveries"]["edges"]]
    assert len(nodes) == 5 and {n["triggerId"] for n in nodes} == {got["id"]}
    triggers = await gql(TRIGGERS, {"id": campaign_id}, key=sandbox.keys[Role.VIEWER])
    assert [e["node"] for e in triggers["campaignTriggers"]["edges"]] == [
        {"id": got["id"], "status": "ACCEPTED", "accepted": 5}
    ]


async def test_marketing_applies_consent_and_every_suppression(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "MARKETING")
        await people(gql, sandbox)
        result = await trigger(
            gql,
            sandbox,
            {
                "campaignId": campaign_id,
                "idempotencyKey": "promo-1",
                "context": {"order": {"id": "P"}},
                "recipients": [recipient(a, name="N") for a in ALL],
            },
        )
        assert result["__typename"] == "CampaignTriggerSuccess", result
        await gql.drain_jobs()
    assert await outcomes(result["trigger"]["id"]) == {
        "yes@example.com": ("SENT", None),
        "no@example.com": ("EXCLUDED", "NO_CONSENT"),
        "bounced@example.com": ("EXCLUDED", "SUPPRESSED"),
        "complained@example.com": ("EXCLUDED", "SUPPRESSED"),
        "unsubscribed@example.com": ("EXCLUDED", "SUPPRESSED"),
    }
    assert [r.recipients for r in handler.received] == [["yes@example.com"]]


async def test_same_key_replays_the_stored_answer_and_sends_nothing_more(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "TRANSACTIONAL")
        await people(gql, sandbox)
        body = {
            "campaignId": campaign_id,
            "idempotencyKey": "k-1",
            "context": {"order": {"id": "A-2"}},
            "recipients": [recipient("yes@example.com", name="Y"), recipient("nobody@example.com", name="Z")],
        }
        first = await trigger(gql, sandbox, body)
        assert first["__typename"] == "CampaignTriggerSuccess", first
        await gql.drain_jobs()
        assert len(handler.received) == 1

        again = await trigger(gql, sandbox, body)
        assert again["replayed"] is True
        assert again["trigger"] == first["trigger"]
        await gql.drain_jobs()
        assert len(handler.received) == 1
        assert await Delivery.filter(campaign_id=pk(campaign_id)).count() == 1
        assert await CampaignTrigger.filter(campaign_id=pk(campaign_id)).count() == 1

        # The same key with another body: refused, nothing written, nothing sent.
        changed = {**body, "context": {"order": {"id": "A-3"}}}
        conflict = await trigger(gql, sandbox, changed)
        assert conflict["__typename"] == "IdempotencyConflictError", conflict
        assert (conflict["idempotencyKey"], conflict["triggerId"]) == ("k-1", first["trigger"]["id"])
        # A new key is a new call.
        other = await trigger(gql, sandbox, {**changed, "idempotencyKey": "k-2"})
        assert other["trigger"]["id"] != first["trigger"]["id"]
        await gql.drain_jobs()
        assert len(handler.received) == 2
        assert len({r.message_id for r in handler.received}) == 2


async def test_concurrent_duplicates_wait_for_the_first_and_get_its_answer(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "TRANSACTIONAL")
        await people(gql, sandbox)
        bodies = [
            {
                "campaignId": campaign_id,
                "idempotencyKey": f"burst-{n % 3}",
                "context": {"order": {"id": f"B{n % 3}"}},
                "recipients": [recipient("yes@example.com", name="Y"), recipient("no@example.com", name="N")],
            }
            for n in range(12)
        ]
        results = await asyncio.gather(*(trigger(gql, sandbox, body) for body in bodies))
        assert {r["__typename"] for r in results} == {"CampaignTriggerSuccess"}, results
        by_key: dict[str, set[str]] = {}
        for body, result in zip(bodies, results, strict=True):
            by_key.setdefault(body["idempotencyKey"], set()).add(result["trigger"]["id"])
        assert all(len(ids) == 1 for ids in by_key.values()), by_key
        assert sum(not r["replayed"] for r in results) == 3
        await gql.drain_jobs()
    assert await CampaignTrigger.filter(campaign_id=pk(campaign_id)).count() == 3
    assert await Delivery.filter(campaign_id=pk(campaign_id)).count() == 6
    assert len(handler.received) == 6
    assert len({r.message_id for r in handler.received}) == 6


async def test_refusals_name_the_field_and_store_nothing(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    async with smtp_sink(SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "TRANSACTIONAL")
    base = {"campaignId": campaign_id, "idempotencyKey": "bad", "recipients": [recipient("yes@example.com")]}

    both = await trigger(
        gql,
        sandbox,
        {**base, "recipients": [recipient("a@example.com"), {**recipient("b@example.com"), "profileId": "1"}]},
    )
    assert both["__typename"] == "InvalidInputError"
    assert [e["field"] for e in both["fieldErrors"]] == ["input.recipients[1]"]

    bad_identity = await trigger(
        gql, sandbox, {**base, "recipients": [recipient("a@example.com"), recipient("not an email")]}
    )
    assert bad_identity["__typename"] == "InvalidInputError"
    assert [e["field"] for e in bad_identity["fieldErrors"]] == ["input.recipients[1].identity"]

    too_many = await trigger(
        gql, sandbox, {**base, "recipients": [recipient(f"p{i}@example.com") for i in range(1001)]}
    )
    assert too_many["__typename"] == "InvalidInputError"
    assert [(e["field"], e["code"]) for e in too_many["fieldErrors"]] == [("input.recipients", "COUNT")]

    not_object = await trigger(gql, sandbox, {**base, "context": [1, 2]})
    assert [e["field"] for e in not_object["fieldErrors"]] == ["input.context"]

    foreign = await gql(TRIGGER, {"input": base}, key=other_sandbox.keys[Role.PUBLISHER])
    assert foreign["campaignTrigger"]["__typename"] == "NotFoundError"
    assert await CampaignTrigger.filter(campaign_id=pk(campaign_id)).count() == 0

    # The same key after a refusal is free: nothing was stored for it.
    ok = await trigger(gql, sandbox, base)
    assert ok["__typename"] == "CampaignTriggerSuccess"
    assert ok["trigger"]["status"] == "REJECTED" and ok["trigger"]["runId"] is None


async def test_only_a_live_api_campaign_accepts_triggers(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    draft = await create(gql, sandbox, {"name": "Draft", "type": "API_TRIGGERED"})
    result = await trigger(
        gql, sandbox, {"campaignId": draft["id"], "idempotencyKey": "x", "recipients": [recipient("a@example.com")]}
    )
    assert result["__typename"] == "InvalidStateError" and result["currentStatus"] == "DRAFT", result


async def test_on_missing_profile_create_upserts_by_identity(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "TRANSACTIONAL")
        result = await trigger(
            gql,
            sandbox,
            {
                "campaignId": campaign_id,
                "idempotencyKey": "new-people",
                "onMissingProfile": "CREATE",
                "context": {"order": {"id": "N-1"}},
                "recipients": [recipient("New.One@Example.com", name="One"), recipient("new.one@example.com")],
            },
        )
        assert result["trigger"]["accepted"] == 1, result
        assert result["trigger"]["rejected"] == [{"index": 1, "reason": "DUPLICATE_RECIPIENT"}]
        await gql.drain_jobs()
    assert [r.recipients for r in handler.received] == [["new.one@example.com"]]


async def test_an_expired_key_is_a_new_call(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    async with smtp_sink(SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "TRANSACTIONAL")
        await people(gql, sandbox)
    campaign = pk(campaign_id)
    row = await Campaign.get(id=campaign)
    request = TriggerRequest(
        campaign_id=campaign,
        idempotency_key="daily",
        recipients=(TriggerRecipient(namespace="Email", value="yes@example.com", context={"name": "Y"}),),
        context={"order": {"id": "D"}},
    )
    now = datetime.now(UTC)
    first = await accept_trigger(row.sandbox_id, request, now=now, idempotency_hours=24)
    within = await accept_trigger(row.sandbox_id, request, now=now + timedelta(hours=23), idempotency_hours=24)
    assert within.replayed and within.trigger_id == first.trigger_id
    later = await accept_trigger(row.sandbox_id, request, now=now + timedelta(hours=25), idempotency_hours=24)
    assert not later.replayed and later.trigger_id != first.trigger_id
    old = await CampaignTrigger.get(id=first.trigger_id)
    assert (old.idempotency_key, old.released_key) == (None, "daily")
    assert await Delivery.filter(campaign_id=campaign).count() == 2


async def test_a_recipient_address_overrides_the_profile_s_and_is_still_suppressed(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "TRANSACTIONAL")
        await people(gql, sandbox)
        base = {"campaignId": campaign_id, "context": {"order": {"id": "O"}}}
        bad = await trigger(
            gql,
            sandbox,
            {**base, "idempotencyKey": "bad", "recipients": [{**recipient("yes@example.com"), "address": "nope"}]},
        )
        assert bad["__typename"] == "InvalidInputError", bad
        assert [e["field"] for e in bad["fieldErrors"]] == ["input.recipients[0].address"]
        result = await trigger(
            gql,
            sandbox,
            {
                **base,
                "idempotencyKey": "moved",
                "recipients": [
                    {**recipient("yes@example.com", name="Y"), "address": "Yan.Work@Example.com"},
                    {**recipient("no@example.com", name="N"), "address": "bounced@example.com"},
                    {**recipient("complained@example.com", name="C"), "address": "fresh@example.com"},
                ],
            },
        )
        assert result["__typename"] == "CampaignTriggerSuccess", result
        await gql.drain_jobs()
    assert await outcomes(result["trigger"]["id"]) == {
        "yan.work@example.com": ("SENT", None),
        "bounced@example.com": ("EXCLUDED", "SUPPRESSED"),  # the given address is hard-bounced
        "fresh@example.com": ("SENT", None),  # the profile's own address complained, this one did not
    }
    assert sorted(r.recipients[0] for r in handler.received) == ["fresh@example.com", "yan.work@example.com"]


async def test_review_refuses_a_template_reading_a_context_key_the_sample_lacks(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    async with smtp_sink(SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port, "TRANSACTIONAL")
    text = "{{ context.trigger.order.id }} {{ context.recipient.coupon }} {{ context.trigger.order.total }}"
    campaign = await create(
        gql,
        sandbox,
        {
            "name": "Receipt with a typo",
            "type": "API_TRIGGERED",
            "category": "TRANSACTIONAL",
            "action": {"channel": "EMAIL", "presetId": preset_id},
            "content": {"email": {"subject": "Order", "html": f"<p>{text}</p>", "text": text}},
            "audience": {"namespaceCode": "Email"},
            "tracking": {"opens": False, "clicks": False},
            "triggerContextSample": SAMPLE,
        },
    )
    reviewed = await review_of(gql, sandbox, campaign["id"])
    missing = [a for a in reviewed["alerts"] if a["code"] == "TRIGGER_CONTEXT_MISSING"]
    assert {a["severity"] for a in missing} == {"ERROR"} and not reviewed["canActivate"], reviewed
    assert {m for a in missing for m in ("recipient.coupon", "trigger.order.total") if m in a["message"]} == {
        "recipient.coupon",
        "trigger.order.total",
    }
    refused = await activate(gql, sandbox, campaign["id"])
    assert refused["__typename"] == "ReviewFailedError", refused
