"""Email feedback from real providers, with their documented payloads and authenticity mechanisms, over HTTP
against the live server: SendGrid, Mailgun, Postmark (Amazon SES in test_feedback_ses.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook

from models.audience.entities import Profile, SuppressionEntry
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.campaigns.rules import CampaignStatus
from models.ledger.delivery import Delivery, DeliveryStatus
from models.presets.preset import MessagePreset
from models.presets.secret_box import SecretBox
from models.reporting.tracking import TrackingEvent
from models.tenancy.sandbox import Sandbox
from tests.conftest import TEST_SECRET, RunningServer, SandboxKeys

EMAIL_SETTINGS = {
    "sender_name": "Shop",
    "sender_address": "news@shop.example",
    "smtp_host": "127.0.0.1",
    "smtp_port": 25,
    "tls_mode": "NONE",
}


@dataclass
class Sent:
    preset: MessagePreset
    run: CampaignRun
    sandbox: Sandbox

    async def delivery(self, address: str, message_id: str, relay_id: str | None = None) -> Delivery:
        now = datetime.now(UTC)
        profile = await Profile.create(sandbox=self.sandbox, attributes={})
        return await Delivery.create(
            sandbox=self.sandbox, run=self.run, campaign_id=self.run.campaign_id, profile=profile,
            status=DeliveryStatus.SENT, address=address, idempotency_key=f"{self.run.id}-{profile.id}", attempts=1,
            provider_message_id=message_id, relay_id=relay_id, sent_at=now, created_at=now, updated_at=now,
        )  # fmt: skip


async def sent_email(sandbox_name: str, settings: dict[str, Any], secrets: dict[str, str]) -> Sent:
    """An email campaign whose run sent through a preset with these feedback settings; deliveries added after."""
    sandbox = await Sandbox.get(name=sandbox_name)
    preset = await MessagePreset.create(
        sandbox=sandbox, name=f"Mail-{time.monotonic_ns()}", channel="EMAIL", category="MARKETING",
        status="ACTIVE", settings={**EMAIL_SETTINGS, **settings},
        secrets=SecretBox(TEST_SECRET).seal(secrets, sandbox_id=sandbox.id), secret_names=sorted(secrets),
    )  # fmt: skip
    campaign = await Campaign.create(
        sandbox=sandbox, name="News", channel="EMAIL", category="MARKETING", preset=preset,
        status=CampaignStatus.LIVE,
    )  # fmt: skip
    run = await CampaignRun.create(
        sandbox=sandbox, campaign=campaign, scheduled_for=datetime.now(UTC), status=RunStatus.SUCCEEDED
    )
    return Sent(preset, run, sandbox)


async def post(server: RunningServer, path: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        return await http.post(path, content=body, headers={"Content-Type": "application/json", **(headers or {})})


async def suppressed(sandbox_id: int) -> set[tuple[str, str]]:
    return {(e.address, e.reason.value) for e in await SuppressionEntry.filter(sandbox_id=sandbox_id, channel="EMAIL")}


async def status(delivery: Delivery) -> tuple[str, str | None]:
    row = await Delivery.get(id=delivery.id)
    return row.status.value, row.bounce_type


# ---- SendGrid ---------------------------------------------------------------------------------------------------


def sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()  # as SendGrid's settings page shows it


def sendgrid_headers(private: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> dict[str, str]:
    signature = base64.b64encode(private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    return {
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


async def test_sendgrid_events_with_the_event_webhook_signature(sandbox: SandboxKeys, server: RunningServer) -> None:
    private, public = sendgrid_keys()
    sent = await sent_email(sandbox.name, {}, {"sendgrid_webhook_public_key": public})
    gone = await sent.delivery("gone@example.com", "<3-1@shop.example>", "14c5d75ce93dfd64b469")
    fine = await sent.delivery("fine@example.com", "<3-2@shop.example>", "GPzkIjzAR-6uOlGAlG8nYA")
    angry = await sent.delivery("angry@example.com", "<3-3@shop.example>")
    blocked = await sent.delivery("blocked@example.com", "<3-4@shop.example>", "Blk0000000000000000000")
    events = [
        {"email": "gone@example.com", "timestamp": 1513299569, "smtp-id": "<unknown@sendgrid>", "event": "bounce",
         "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
         "sg_message_id": "14c5d75ce93dfd64b469.filter0001.16648.5515E0B88.0",
         "reason": "500 unknown recipient", "status": "5.1.1", "type": "bounce"},
        {"email": "fine@example.com", "timestamp": 1513299569, "event": "delivered", "response": "250 OK",
         "sg_message_id": "GPzkIjzAR-6uOlGAlG8nYA.filterdrecv-5645d9c87f-78xgx-1-5FA1A8A1-7.0"},
        {"email": "angry@example.com", "timestamp": 1513299569, "smtp-id": "<3-3@shop.example>", "event": "spamreport",
         "sg_event_id": "JDdIeEZ6T5i_uNQWnxMsDw", "sg_message_id": "nothing.filter0001"},
        {"email": "blocked@example.com", "timestamp": 1513299569, "event": "bounce", "type": "blocked",
         "reason": "550 5.7.1 IP listed", "status": "5.7.1", "sg_message_id": "Blk0000000000000000000.filter1"},
        {"email": "fine@example.com", "timestamp": 1513299569, "event": "open",
         "sg_message_id": "GPzkIjzAR-6uOlGAlG8nYA"},
    ]  # fmt: skip
    body = orjson.dumps(events)
    timestamp = str(int(time.time()))
    headers = sendgrid_headers(private, body, timestamp)
    # SendGrid's own verifier accepts the signature: the test signs as SendGrid does.
    assert EventWebhook(public).verify_signature(body.decode(), headers[next(iter(headers))], timestamp)
    path = f"/webhooks/email/{sent.preset.id}/sendgrid"

    # Unsigned, signed by another key, a body changed after signing, or an old timestamp: 403.
    other, _ = sendgrid_keys()
    old = str(int(time.time()) - 3600)
    for bad_body, bad_headers in (
        (body, {}),
        (body, sendgrid_headers(other, body, timestamp)),
        (body.replace(b"spamreport", b"delivered"), headers),
        (body, sendgrid_headers(private, body, old)),
    ):
        assert (await post(server, path, bad_body, bad_headers)).status_code == 403
    assert await status(gone) == ("SENT", None)

    response = await post(server, path, body, headers)
    assert response.status_code == 200, response.text
    assert [r["outcome"] for r in response.json()["results"]] == ["APPLIED"] * 4 + ["IGNORED"]
    assert await status(gone) == ("BOUNCED", "HARD")
    assert await status(fine) == ("DELIVERED", None)
    assert await status(blocked) == ("BOUNCED", "SOFT")
    assert [e.kind.value for e in await TrackingEvent.filter(delivery_id=angry.id)] == ["COMPLAINT"]
    assert await suppressed(sent.sandbox.id) == {
        ("gone@example.com", "HARD_BOUNCE"),
        ("angry@example.com", "SPAM_COMPLAINT"),
    }


# ---- Mailgun ----------------------------------------------------------------------------------------------------

MAILGUN_KEY = "key-mailgun-signing-0123456789"


def mailgun_body(event_data: dict[str, Any], key: str = MAILGUN_KEY, timestamp: int | None = None) -> bytes:
    stamp, token = str(timestamp or int(time.time())), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return orjson.dumps(
        {"signature": {"timestamp": stamp, "token": token, "signature": signature}, "event-data": event_data}
    )


def mailgun_event(event: str, message_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": 1521233123.501324,
        "recipient": "alice@example.com",
        "message": {"headers": {"to": "Alice <alice@example.com>", "message-id": message_id, "subject": "Hi"}},
        **extra,
    }


async def test_mailgun_events_with_the_hmac_signature(sandbox: SandboxKeys, server: RunningServer) -> None:
    sent = await sent_email(sandbox.name, {}, {"mailgun_webhook_signing_key": MAILGUN_KEY})
    gone = await sent.delivery("gone@example.com", "<4-1@shop.example>")
    later = await sent.delivery("later@example.com", "<4-2@shop.example>")
    angry = await sent.delivery("angry@example.com", "<4-3@shop.example>")
    fine = await sent.delivery("fine@example.com", "<4-4@shop.example>")
    path = f"/webhooks/email/{sent.preset.id}/mailgun"
    permanent = mailgun_event(
        "failed", "4-1@shop.example", severity="permanent", reason="bounce",
        **{"delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist.", "attempt-no": 1}},
    )  # fmt: skip
    temporary = mailgun_event(
        "failed", "4-2@shop.example", severity="temporary", reason="generic",
        **{"delivery-status": {"code": 452, "message": "4.2.2 Mailbox full", "attempt-no": 1}},
    )  # fmt: skip

    assert (await post(server, path, mailgun_body(permanent, key="wrong"))).status_code == 403
    assert (await post(server, path, mailgun_body(permanent, timestamp=int(time.time()) - 3600))).status_code == 403
    forged = orjson.loads(mailgun_body(permanent))
    forged["signature"]["token"] = "another-token"
    assert (await post(server, path, orjson.dumps(forged))).status_code == 403
    assert await status(gone) == ("SENT", None)

    outcomes = []
    for data in (
        permanent,
        temporary,
        mailgun_event("complained", "4-3@shop.example"),
        mailgun_event("delivered", "<4-4@shop.example>"),
    ):
        response = await post(server, path, mailgun_body(data))
        assert response.status_code == 200, response.text
        outcomes.append(response.json()["results"][0]["outcome"])
    assert outcomes == ["APPLIED", "IGNORED", "APPLIED", "APPLIED"]
    assert await status(gone) == ("BOUNCED", "HARD")
    assert await status(later) == ("SENT", None)  # Mailgun retries temporary failures itself
    assert await status(fine) == ("DELIVERED", None)
    assert await TrackingEvent.filter(delivery_id=angry.id, kind="COMPLAINT").count() == 1
    assert await suppressed(sent.sandbox.id) == {
        ("gone@example.com", "HARD_BOUNCE"),
        ("angry@example.com", "SPAM_COMPLAINT"),
    }


# ---- Postmark ---------------------------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_postmark_records_with_basic_auth(
    sandbox: SandboxKeys, other_sandbox: SandboxKeys, server: RunningServer
) -> None:
    sent = await sent_email(
        sandbox.name, {"postmark_webhook_username": "postmark"}, {"postmark_webhook_password": "hook-secret"}
    )
    gone = await sent.delivery("john@example.com", "<5-1@shop.example>", "883953f4-6105-42a2-a16a-77a8eac79483")
    fine = await sent.delivery("fine@example.com", "<5-2@shop.example>", "00000000-0000-0000-0000-000000000001")
    angry = await sent.delivery("angry@example.com", "<5-3@shop.example>", "00000000-0000-0000-0000-000000000002")
    # Another sandbox's preset with the same relay id: a webhook of one preset never reaches the other's.
    theirs = await sent_email(
        other_sandbox.name, {"postmark_webhook_username": "postmark"}, {"postmark_webhook_password": "hook-secret"}
    )
    their_delivery = await theirs.delivery(
        "john@example.com", "<9-1@x.example>", "883953f4-6105-42a2-a16a-77a8eac79483"
    )
    path = f"/webhooks/email/{sent.preset.id}/postmark"
    bounce = {
        "RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807, "Type": "HardBounce",
        "TypeCode": 1, "Name": "Hard bounce", "Tag": "Test", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 23, "Description": "The server was unable to deliver your message (ex: unknown user, mailbox "
        "not found).", "Details": "Test bounce details", "Email": "john@example.com", "From": "news@shop.example",
        "BouncedAt": "2026-12-06T07:33:54.9070259Z", "Inactive": True, "CanActivate": True, "Subject": "Test",
    }  # fmt: skip
    delivery = {
        "RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
        "MessageID": "00000000-0000-0000-0000-000000000001", "Recipient": "fine@example.com",
        "DeliveredAt": "2026-12-06T07:34:52Z", "Details": "Test delivery webhook details",
    }  # fmt: skip
    complaint = {
        "RecordType": "SpamComplaint", "MessageStream": "outbound", "ID": 42, "Type": "SpamComplaint",
        "TypeCode": 512, "MessageID": "00000000-0000-0000-0000-000000000002", "Email": "angry@example.com",
    }  # fmt: skip
    body = orjson.dumps(bounce)
    missing = await post(server, path, body)
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, 'Basic realm="herald-feedback"')
    assert (await post(server, path, body, basic("postmark", "wrong"))).status_code == 401
    assert await status(gone) == ("SENT", None)

    for record in (bounce, delivery, complaint):
        response = await post(server, path, orjson.dumps(record), basic("postmark", "hook-secret"))
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["outcome"] == "APPLIED"
    assert await status(gone) == ("BOUNCED", "HARD")
    assert await status(fine) == ("DELIVERED", None)
    assert await TrackingEvent.filter(delivery_id=angry.id, kind="COMPLAINT").count() == 1
    assert await status(their_delivery) == ("SENT", None)
    assert await suppressed(theirs.sandbox.id) == set()


async def test_unknown_presets_and_providers_are_not_found(sandbox: SandboxKeys, server: RunningServer) -> None:
    sent = await sent_email(sandbox.name, {}, {})
    for path in (
        f"/webhooks/email/{sent.preset.id}/sparkpost",
        "/webhooks/email/999999999/ses",
        "/webhooks/email/x/ses",
    ):
        assert (await post(server, path, b"{}")).status_code == 404
