"""Per-recipient webhook events come from the outbox, written with the change they report: a batch's sends and
bounces, receipts, opens, clicks, unsubscribes and complaints. Each is written only while an enabled endpoint of
the sandbox takes it, and becomes one signed delivery per such endpoint."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from jobs.webhooks import seal_secret
from models.ledger.delivery import Delivery, DeliveryStatus
from models.ledger.outcomes import Outcome, write_outcomes
from models.outbox.model import OutboxEvent
from models.outbox.payloads import DELIVERY_OUTCOMES_TOPIC, RECIPIENT_EVENT_TOPIC, parse
from models.reporting.feedback import Feedback, FeedbackKind, apply_feedback, delivery_ref
from models.reporting.tracking import BounceType
from models.tenancy.sandbox import Sandbox
from models.webhooks.model import WebhookDelivery, WebhookEndpoint
from models.webhooks.rules import EVENT_TYPES, new_secret
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.jobs.fan_out_drain import drain_fan_out
from tests.jobs.test_tracking import hrefs, parts, send_marketing_email
from tests.jobs.test_webhooks import BOX, LOOPBACK, _send, receiver
from tests.sql_counter import count_sql

PER_RECIPIENT = tuple(t for t in EVENT_TYPES if t.split(".")[0] in ("delivery", "tracking", "profile"))


async def _endpoint(sandbox: SandboxKeys, url: str, secret: str, events: tuple[str, ...]) -> WebhookEndpoint:
    sandbox_id = (await Sandbox.get(name=sandbox.name)).id
    return await WebhookEndpoint.create(
        sandbox_id=sandbox_id,
        url=url,
        events=list(events),
        secret_sealed=seal_secret(BOX, secret, sandbox_id=sandbox_id),
    )


async def _fanned_out(endpoint: WebhookEndpoint) -> list[dict[str, Any]]:
    await drain_fan_out(datetime.now(UTC))
    rows = await WebhookDelivery.filter(endpoint_id=endpoint.id).order_by("id")
    return [row.payload for row in rows]


async def test_every_per_recipient_event_reaches_a_subscribed_endpoint_once(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    secret = new_secret()
    endpoint = await _endpoint(sandbox, "http://127.0.0.1:9/hook", secret, PER_RECIPIENT)
    sent = await send_marketing_email(
        gql, sandbox, ["Ann", "Bob", "Cy", "Dan"], rcpt_replies={"cy@example.com": "550 5.1.1 No such user"}
    )
    ann, bob, cy, dan = (sent.deliveries[f"{n}@example.com"] for n in ("ann", "bob", "cy", "dan"))
    # A hard bounce at send time is a FAILED send (reason HARD_BOUNCE); a bounce reported later is BOUNCED.
    assert (cy.status.value, cy.reason) == ("FAILED", "HARD_BOUNCE")
    html, _ = parts(sent.messages["ann@example.com"])
    links = hrefs(html)
    pixel = re.findall(r'<img src="([^"]+)"', html)[0]
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(pixel)).status_code == 200
        assert (await http.get(links[0])).status_code == 302
        unsubscribe = await http.post(
            links[4],
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert unsubscribe.status_code == 200
    now = datetime.now(UTC)
    reports = (
        (bob, Feedback(FeedbackKind.DELIVERED)),
        (bob, Feedback(FeedbackKind.COMPLAINT)),
        (dan, Feedback(FeedbackKind.BOUNCE, BounceType.HARD, "550 5.1.1")),
    )
    for delivery, feedback in reports:
        ref = await delivery_ref(delivery.id)
        assert ref is not None
        await apply_feedback(ref, feedback, now, actor="test")

    events = await _fanned_out(endpoint)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event["data"])
    assert sorted(by_type) == sorted(
        ["delivery.sent", "delivery.failed", "delivery.bounced", "delivery.delivered", "tracking.open",
         "tracking.click", "profile.unsubscribed", "profile.complained"]
    )  # fmt: skip
    # One batch: one event per outcome, listing its deliveries.
    [sent_event] = by_type["delivery.sent"]
    assert sorted(d["deliveryId"] for d in sent_event["deliveries"]) == sorted([ann.id, bob.id, dan.id])
    assert sent_event["runId"] == sent.run.id and sent_event["campaignId"] == sent.run.campaign_id
    [failed] = by_type["delivery.failed"]
    assert failed["deliveries"] == [{"deliveryId": cy.id, "profileId": cy.profile_id, "reason": "HARD_BOUNCE"}]
    [bounced] = by_type["delivery.bounced"]
    assert bounced["deliveries"] == [{"deliveryId": dan.id, "profileId": dan.profile_id, "reason": "HARD_BOUNCE"}]
    [delivered] = by_type["delivery.delivered"]
    assert [d["deliveryId"] for d in delivered["deliveries"]] == [bob.id]
    [opened] = by_type["tracking.open"]
    assert (opened["kind"], opened["deliveryId"], opened["profileId"]) == ("OPEN", ann.id, ann.profile_id)
    [clicked] = by_type["tracking.click"]
    assert clicked["deliveryId"] == ann.id and isinstance(clicked["linkId"], int)
    [unsubscribed] = by_type["profile.unsubscribed"]
    assert unsubscribed["deliveryId"] == ann.id
    [complained] = by_type["profile.complained"]
    assert complained["deliveryId"] == bob.id
    # Every stored payload is its topic's typed payload.
    for row in await OutboxEvent.filter(
        sandbox_id=endpoint.sandbox_id, topic__in=[DELIVERY_OUTCOMES_TOPIC, RECIPIENT_EVENT_TOPIC]
    ):
        parse(row.topic, row.payload)

    # The same complaint again changes nothing and writes no event.
    ref = await delivery_ref(bob.id)
    assert ref is not None
    await apply_feedback(ref, Feedback(FeedbackKind.COMPLAINT), now, actor="test")
    assert await _fanned_out(endpoint) == events


async def test_nothing_is_written_for_events_no_endpoint_takes(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    # An endpoint for opens only, and a disabled one for everything: sends and clicks write no outbox rows.
    opens = await _endpoint(sandbox, "http://127.0.0.1:9/hook", new_secret(), ("tracking.open",))
    disabled = await _endpoint(sandbox, "http://127.0.0.1:9/off", new_secret(), PER_RECIPIENT)
    await WebhookEndpoint.filter(id=disabled.id).update(enabled=False)
    sent = await send_marketing_email(gql, sandbox, ["Dee"])
    html, _ = parts(sent.messages["dee@example.com"])
    async with httpx.AsyncClient(timeout=10) as http:
        await http.get(re.findall(r'<img src="([^"]+)"', html)[0])
        await http.get(hrefs(html)[0])
    rows = await OutboxEvent.filter(
        sandbox_id=opens.sandbox_id, topic__in=[DELIVERY_OUTCOMES_TOPIC, RECIPIENT_EVENT_TOPIC]
    )
    assert [(r.topic, r.payload["kind"]) for r in rows] == [(RECIPIENT_EVENT_TOPIC, "OPEN")]
    assert [e["type"] for e in await _fanned_out(opens)] == ["tracking.open"]
    assert await _fanned_out(disabled) == []


async def test_a_batch_event_is_signed_and_delivered_to_the_partner(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    secret = new_secret()
    async with receiver(secret, []) as partner:
        endpoint = await _endpoint(sandbox, partner.url, secret, ("delivery.sent",))
        sent = await send_marketing_email(gql, sandbox, ["Eve", "Fay"])
        await _fanned_out(endpoint)
        assert await _send(LOOPBACK, datetime.now(UTC) + timedelta(seconds=1), endpoint) == 1
    [payload] = partner.processed.values()  # verified with the Standard Webhooks library
    assert payload["type"] == "delivery.sent"
    assert sorted(d["deliveryId"] for d in payload["data"]["deliveries"]) == sorted(
        d.id for d in sent.deliveries.values()
    )


async def test_an_outcome_write_nobody_listens_to_is_one_statement_and_a_listener_still_gets_its_events(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    # The UPDATE checks for endpoints taking delivery events itself (no SELECT before it); when one does, nothing
    # is changed by it and the write goes through the transaction that writes the events with the rows.
    opens = await _endpoint(sandbox, "http://127.0.0.1:9/hook", new_secret(), ("tracking.open",))
    sent = await send_marketing_email(gql, sandbox, ["Eve", "Fay"])
    ids = [d.id for d in sent.deliveries.values()]
    sandbox_id = opens.sandbox_id

    async def write_again() -> list[str]:
        await Delivery.filter(id__in=ids).update(status=DeliveryStatus.SENDING)
        with count_sql() as statements:
            await write_outcomes(
                [Outcome(i, DeliveryStatus.SENT, provider_id=f"<{i}@x>", sent=True) for i in ids],
                datetime.now(UTC),
                sandbox_id,
            )
        assert await Delivery.filter(id__in=ids, status=DeliveryStatus.SENT).count() == 2
        return statements

    def delivery_events() -> Any:
        return OutboxEvent.filter(sandbox_id=sandbox_id, topic=DELIVERY_OUTCOMES_TOPIC).count()

    assert len(await write_again()) == 1
    assert await delivery_events() == 0
    await _endpoint(sandbox, "http://127.0.0.1:9/sent", new_secret(), ("delivery.sent",))
    assert len(await write_again()) > 1
    assert await delivery_events() == 1
