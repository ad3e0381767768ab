"""Provider feedback webhooks over HTTP against the live server: the JSON email form (API key, sandbox-scoped)
and Twilio-style SMS status callbacks (X-Twilio-Signature with the preset's auth token)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx

from api.webhooks import WEBHOOK_MAX_BODY_BYTES, twilio_signature
from models.audience.entities import Profile, SuppressionEntry
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.campaigns.rules import CampaignStatus
from models.ledger.delivery import Delivery, DeliveryStatus
from models.presets.preset import MessagePreset
from models.presets.secret_box import SecretBox
from models.reporting.tracking import TrackingEvent
from models.tenancy.sandbox import Role, Sandbox
from tests.conftest import TEST_SECRET, GraphQLClient, RunningServer, SandboxKeys
from tests.jobs.test_tracking import send_marketing_email


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post_events(server: RunningServer, key: str | None, events: list[dict]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        return await http.post("/webhooks/email", json={"events": events}, headers=bearer(key) if key else {})


async def test_email_feedback_moves_deliveries_and_suppresses(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys, server: RunningServer
) -> None:
    sent = await send_marketing_email(gql, sandbox, ["Eve", "Fay", "Gus", "Hal"])
    ids = {address: d.provider_message_id for address, d in sent.deliveries.items()}
    assert all(m and m.startswith("<") for m in ids.values())
    events = [
        {"messageId": ids["eve@example.com"], "type": "delivered"},
        {"messageId": ids["fay@example.com"].strip("<>"), "type": "bounce", "bounceType": "hard", "reason": "5.1.1"},
        {"messageId": ids["gus@example.com"], "type": "complaint"},
        {"messageId": ids["hal@example.com"], "type": "bounce", "bounceType": "soft", "reason": "mailbox full"},
        {"messageId": "<nobody@example.com>", "type": "delivered"},
        {"messageId": ids["eve@example.com"], "type": "opened"},
    ]

    # Who may report: no key → 401, a VIEWER → 403, another sandbox's MANAGER finds nothing.
    assert (await post_events(server, None, events)).status_code == 401
    assert (await post_events(server, sandbox.keys[Role.VIEWER], events)).status_code == 403
    foreign = await post_events(server, other_sandbox.keys[Role.ADMIN], events)
    assert foreign.status_code == 200
    assert [r["outcome"] for r in foreign.json()["results"]] == ["UNKNOWN"] * 5 + ["INVALID"]
    assert {d.status for d in await Delivery.filter(run_id=sent.run.id)} == {DeliveryStatus.SENT}
    assert await TrackingEvent.filter(run_id=sent.run.id).count() == 0

    response = await post_events(server, sandbox.keys[Role.MANAGER], events)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == ["APPLIED"] * 4 + ["UNKNOWN", "INVALID"]
    assert results[5]["error"].startswith("type must be")

    rows = {d.address: d for d in await Delivery.filter(run_id=sent.run.id)}
    eve, fay, gus, hal = (rows[f"{n}@example.com"] for n in ("eve", "fay", "gus", "hal"))
    assert eve.status is DeliveryStatus.DELIVERED and eve.delivered_at is not None
    assert (fay.status, fay.bounce_type, fay.reason, fay.last_error) == (
        DeliveryStatus.BOUNCED, "HARD", "HARD_BOUNCE", "5.1.1",
    )  # fmt: skip
    assert (hal.status, hal.bounce_type) == (DeliveryStatus.BOUNCED, "SOFT")
    assert gus.status is DeliveryStatus.SENT  # a complaint is an event, not a delivery status
    assert [e.kind.value for e in await TrackingEvent.filter(delivery_id=gus.id)] == ["COMPLAINT"]
    suppressed = {
        (e.address, e.reason.value)
        for e in await SuppressionEntry.filter(sandbox_id=sent.run.sandbox_id, channel="EMAIL")
    }
    assert suppressed == {("fay@example.com", "HARD_BOUNCE"), ("gus@example.com", "SPAM_COMPLAINT")}
    run = await CampaignRun.get(id=sent.run.id)
    # models.ledger.figures: sent keeps the bounced; delivered is SENT or DELIVERED; failed is bounces + errors.
    assert (run.sent, run.delivered, run.failed) == (4, 2, 2)

    # Repeating the reports changes nothing: receipts after a bounce and second complaints are ignored.
    again = (await post_events(server, sandbox.keys[Role.MANAGER], events[:4])).json()["results"]
    assert [r["outcome"] for r in again] == ["IGNORED"] * 4
    assert await TrackingEvent.filter(delivery_id=gus.id).count() == 1
    late_receipt = await post_events(
        server, sandbox.keys[Role.MANAGER], [{"messageId": ids["fay@example.com"], "type": "delivered"}]
    )
    assert late_receipt.json()["results"][0]["outcome"] == "IGNORED"
    assert (await Delivery.get(id=fay.id)).status is DeliveryStatus.BOUNCED


async def test_email_feedback_refuses_malformed_bodies(sandbox: SandboxKeys, server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        headers = bearer(sandbox.keys[Role.MANAGER])
        assert (await http.post("/webhooks/email", content=b"{nope", headers=headers)).status_code == 400
        assert (await http.post("/webhooks/email", json=[1, 2], headers=headers)).status_code == 400
        assert (await http.post("/webhooks/email", json={"events": [{}] * 1001}, headers=headers)).status_code == 413
        assert (await http.get("/webhooks/email", headers=headers)).status_code == 405
        # Bodies past the limit are refused before they are read whole, declared or streamed.
        oversized = b"x" * (WEBHOOK_MAX_BODY_BYTES + 1)
        assert (await http.post("/webhooks/email", content=oversized, headers=headers)).status_code == 413

        async def streamed() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"x" * (WEBHOOK_MAX_BODY_BYTES // 2)

        signed = {"X-Twilio-Signature": "checked after the body is read"}
        assert (await http.post("/webhooks/sms/twilio", content=streamed(), headers=signed)).status_code == 413


SMS_TOKEN = "sms-auth-token-for-callbacks"


async def sms_delivery(sandbox_name: str, sid: str, token: str = SMS_TOKEN) -> Delivery:
    """An SMS campaign whose run sent one message that the provider knows as `sid`."""
    sandbox = await Sandbox.get(name=sandbox_name)
    preset = await MessagePreset.create(
        sandbox=sandbox,
        name=f"Sms-{sid}",
        channel="SMS",
        category="TRANSACTIONAL",
        status="ACTIVE",
        settings={"sender": "+14155550100", "account_sid": "AC1", "provider_base_url": "http://127.0.0.1:9"},
        secrets=SecretBox(TEST_SECRET).seal({"auth_token": token}, sandbox_id=sandbox.id),
        secret_names=["auth_token"],
    )
    campaign = await Campaign.create(
        sandbox=sandbox, name="Texts", channel="SMS", category="TRANSACTIONAL", preset=preset,
        status=CampaignStatus.LIVE,
    )  # fmt: skip
    now = datetime.now(UTC)
    run = await CampaignRun.create(
        sandbox=sandbox, campaign=campaign, scheduled_for=now, status=RunStatus.SUCCEEDED, targeted=1, sent=1
    )
    profile = await Profile.create(sandbox=sandbox, attributes={})
    return await Delivery.create(
        sandbox=sandbox, run=run, campaign_id=campaign.id, profile=profile, status=DeliveryStatus.SENT,
        address="+15550100777", idempotency_key=f"{run.id}-{profile.id}", attempts=1, provider_message_id=sid,
        sent_at=now, created_at=now, updated_at=now,
    )  # fmt: skip


async def callback(server: RunningServer, form: dict[str, str], token: str | None) -> httpx.Response:
    url = server.settings.public_url + "/webhooks/sms/twilio"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token is not None:
        headers["X-Twilio-Signature"] = twilio_signature(token, url, list(form.items()))
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, content=urlencode(form).encode(), headers=headers)


async def test_sms_status_callbacks_need_the_presets_signature(
    sandbox: SandboxKeys, other_sandbox: SandboxKeys, server: RunningServer
) -> None:
    delivered = await sms_delivery(sandbox.name, "SM0001")
    failed = await sms_delivery(sandbox.name, "SM0002")
    form = {"MessageSid": "SM0001", "MessageStatus": "delivered", "AccountSid": "AC1", "To": "+15550100777"}

    # No signature, a wrong token, or a parameter changed after signing: 403 and nothing changes.
    assert (await callback(server, form, None)).status_code == 403
    assert (await callback(server, form, "not-the-token")).status_code == 403
    url = server.settings.public_url + "/webhooks/sms/twilio"
    tampered = {**form, "MessageStatus": "undelivered", "ErrorCode": "30005"}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            url,
            content=urlencode(tampered).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(SMS_TOKEN, url, list(form.items())),
            },
        )
    assert response.status_code == 403
    assert (await Delivery.get(id=delivered.id)).status is DeliveryStatus.SENT

    # Valid: delivered, and a hard failure that suppresses the number.
    assert (await callback(server, {**form, "MessageStatus": "sent"}, SMS_TOKEN)).json() == {"outcome": "IGNORED"}
    assert (await callback(server, form, SMS_TOKEN)).json() == {"outcome": "APPLIED"}
    hard = {"MessageSid": "SM0002", "MessageStatus": "undelivered", "ErrorCode": "30005"}
    assert (await callback(server, hard, SMS_TOKEN)).json() == {"outcome": "APPLIED"}
    row = await Delivery.get(id=delivered.id)
    assert row.status is DeliveryStatus.DELIVERED and row.delivered_at is not None
    row = await Delivery.get(id=failed.id)
    assert (row.status, row.bounce_type) == (DeliveryStatus.BOUNCED, "HARD")
    assert await SuppressionEntry.filter(
        sandbox_id=row.sandbox_id, channel="SMS", address="+15550100777", reason="HARD_BOUNCE"
    ).exists()
    run = await CampaignRun.get(id=delivered.run_id)
    assert (run.sent, run.delivered) == (1, 1)


async def test_isolation_sms_callback_signed_by_another_sandbox_touches_only_its_own(
    sandbox: SandboxKeys, other_sandbox: SandboxKeys, server: RunningServer
) -> None:
    # Provider endpoints are configurable, so another sandbox's fake provider could hand out the same SID.
    mine = await sms_delivery(sandbox.name, "SM0DUP")
    theirs = await sms_delivery(other_sandbox.name, "SM0DUP", token="their-own-token")
    form = {"MessageSid": "SM0DUP", "MessageStatus": "undelivered", "ErrorCode": "30006"}
    assert (await callback(server, form, "their-own-token")).status_code == 200
    assert (await Delivery.get(id=mine.id)).status is DeliveryStatus.SENT
    assert (await Delivery.get(id=theirs.id)).status is DeliveryStatus.BOUNCED
    assert not await SuppressionEntry.filter(sandbox_id=mine.sandbox_id, channel="SMS").exists()
