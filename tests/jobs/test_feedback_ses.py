"""Amazon SES feedback through SNS: signed with a locally generated certificate served by a local SNS stand-in;
subscription confirmed, bounces, complaints and deliveries applied; forgeries refused."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from models.reporting.tracking import TrackingEvent
from tests.conftest import RunningServer, SandboxKeys, running_server
from tests.jobs.sns_server import TOPIC, sns_server
from tests.jobs.test_provider_feedback import post, sent_email, status, suppressed

# ---- Amazon SES through SNS -----------------------------------------------------------------------------------


def ses_mail(ses_id: str, message_id: str | None = None) -> dict[str, Any]:
    mail: dict[str, Any] = {
        "timestamp": "2026-12-06T07:59:38.237Z",
        "source": "news@shop.example",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/shop.example",
        "sendingAccountId": "123456789012",
        "messageId": ses_id,
        "destination": ["jane@example.com"],
    }
    if message_id:
        mail["commonHeaders"] = {"from": ["Shop <news@shop.example>"], "messageId": message_id, "subject": "Hi"}
    return mail


def ses_bounce(ses_id: str, address: str, bounce_type: str, diagnostic: str) -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "reportingMTA": "dns; email.example.com",
            "bouncedRecipients": [
                {"emailAddress": address, "status": "5.1.1", "action": "failed", "diagnosticCode": diagnostic}
            ],
            "timestamp": "2026-12-06T07:59:38.237Z",
            "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
        },
        "mail": ses_mail(ses_id),
    }


@pytest.fixture
async def ses_server(server: RunningServer):
    """The app again, with SNS certificates accepted from loopback (the setting's production value names
    AWS's hosts), and the local SNS."""
    async with sns_server() as sns:
        settings = server.settings.model_copy(update={"sns_cert_url_pattern": r"^http://127\.0\.0\.1:\d+/"})
        async with running_server(settings, lifespan="off") as app:
            yield app, sns


async def test_ses_bounces_complaints_and_deliveries_through_signed_sns_messages(
    sandbox: SandboxKeys, ses_server
) -> None:
    app, sns = ses_server
    sent = await sent_email(sandbox.name, {"ses_topic_arn": TOPIC}, {})
    gone = await sent.delivery("gone@example.com", "<1-1@shop.example>", "0100018c-gone-000000")
    angry = await sent.delivery("angry@example.com", "<1-2@shop.example>", "0100018c-angry-000000")
    fine = await sent.delivery("fine@example.com", "<1-3@shop.example>", "0100018c-fine-000000")
    refused = await sent.delivery("refused@example.com", "<1-4@shop.example>", "0100018c-refused-000000")
    path = f"/webhooks/email/{sent.preset.id}/ses"

    # The subscription is confirmed by visiting SubscribeURL, once the message proves to be SNS's.
    response = await post(app, path, sns.subscription_confirmation("tok-1"))
    assert (response.status_code, response.json()) == (200, {"outcome": "SUBSCRIBED"})
    assert sns.confirmed == ["tok-1"]

    bounce = ses_bounce("0100018c-gone-000000", "gone@example.com", "Permanent", "smtp; 550 5.1.1 user unknown")
    # A policy refusal SES calls permanent says nothing about the recipient.
    policy = ses_bounce("0100018c-refused-000000", "refused@example.com", "Permanent", "smtp; 550 5.7.1 blocked")
    # The complaint matched by our Message-ID in commonHeaders, the receipt by SES's id (signature version 2).
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "angry@example.com"}],
            "complaintFeedbackType": "abuse",
        },
        "mail": ses_mail("unknown-to-us", "<1-2@shop.example>"),
    }
    delivery = {
        "notificationType": "Delivery",
        "delivery": {"recipients": ["fine@example.com"], "smtpResponse": "250 ok: Message 64111812 accepted"},
        "mail": ses_mail("0100018c-fine-000000"),
    }
    for record, version in ((bounce, "1"), (policy, "1"), (complaint, "1"), (delivery, "2")):
        response = await post(app, path, sns.notification(record, version=version))
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["outcome"] == "APPLIED"

    assert await status(gone) == ("BOUNCED", "HARD")
    assert await status(refused) == ("BOUNCED", "SOFT")
    assert await status(fine) == ("DELIVERED", None)
    assert [e.kind.value for e in await TrackingEvent.filter(delivery_id=angry.id)] == ["COMPLAINT"]
    assert await suppressed(sent.sandbox.id) == {
        ("gone@example.com", "HARD_BOUNCE"),
        ("angry@example.com", "SPAM_COMPLAINT"),
    }
    assert sns.cert_fetches == 1  # the certificate is kept


async def test_ses_refuses_unsigned_tampered_foreign_topic_and_foreign_certificate_hosts(
    sandbox: SandboxKeys, ses_server, server: RunningServer
) -> None:
    app, sns = ses_server
    sent = await sent_email(sandbox.name, {"ses_topic_arn": TOPIC}, {})
    victim = await sent.delivery("v@example.com", "<2-1@shop.example>", "0100018c-victim-000000")
    path = f"/webhooks/email/{sent.preset.id}/ses"
    record = ses_bounce("0100018c-victim-000000", "v@example.com", "Permanent", "smtp; 550 5.1.1 user unknown")

    tampered = orjson.loads(sns.notification(record))
    tampered["Message"] = tampered["Message"].replace("victim", "victim ")
    unsigned = {k: v for k, v in orjson.loads(sns.notification(record)).items() if k != "Signature"}
    other_topic = sns.notification(record, topic="arn:aws:sns:us-east-1:999999999999:attacker")
    for body in (orjson.dumps(tampered), orjson.dumps(unsigned), other_topic):
        assert (await post(app, path, body)).status_code == 403
    # The session server keeps the production pattern: a loopback certificate URL is refused before any fetch.
    fetches = sns.cert_fetches
    assert (await post(server, path, sns.notification(record))).status_code == 403
    assert sns.cert_fetches == fetches
    # A preset without a topic accepts nothing from SES; a confirmation for another topic is not visited.
    bare = await sent_email(sandbox.name, {}, {})
    assert (await post(app, f"/webhooks/email/{bare.preset.id}/ses", sns.notification(record))).status_code == 403
    assert (await post(app, path, sns.subscription_confirmation("t", topic="arn:aws:sns:x:1:y"))).status_code == 403
    assert sns.confirmed == []
    assert await status(victim) == ("SENT", None)
    assert await suppressed(sent.sandbox.id) == set()
