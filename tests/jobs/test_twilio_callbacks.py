"""Twilio status callbacks signed by twilio's own RequestValidator: every URL form Twilio signs and its
validator accepts (with and without the default port, SHA-1 and SHA-256) is accepted; tampering is refused."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from api.webhooks import twilio_url_forms
from models.ledger.delivery import Delivery, DeliveryStatus
from tests.conftest import RunningServer, SandboxKeys, running_server
from tests.jobs.test_feedback_webhooks import SMS_TOKEN, sms_delivery

PUBLIC = "https://herald.example"


@pytest.fixture
async def public_server(server: RunningServer):
    """The app as published at https://herald.example (no port): what Twilio was given and signs."""
    async with running_server(server.settings.model_copy(update={"public_url": PUBLIC}), lifespan="off") as app:
        yield app


async def post(app: RunningServer, form: dict[str, str], headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            app.base_url + "/webhooks/sms/twilio",
            content=urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        )


def test_url_forms_are_twilios():
    assert twilio_url_forms("https://herald.example/w?a=1") == (
        "https://herald.example/w?a=1",
        "https://herald.example:443/w?a=1",
    )
    assert twilio_url_forms("http://127.0.0.1:8000/w") == ("http://127.0.0.1/w", "http://127.0.0.1:8000/w")


@pytest.mark.parametrize(
    ("signed_url", "algorithm"),
    [
        (f"{PUBLIC}/webhooks/sms/twilio", None),
        (f"{PUBLIC}:443/webhooks/sms/twilio", None),
        (f"{PUBLIC}:443/webhooks/sms/twilio", "HMAC_SHA256"),
        (f"{PUBLIC}/webhooks/sms/twilio", "HMAC_SHA256"),
    ],
)
async def test_callbacks_signed_by_twilios_validator_are_accepted(
    sandbox: SandboxKeys, public_server: RunningServer, signed_url: str, algorithm: str | None
) -> None:
    sid = f"SMform{abs(hash((signed_url, algorithm))) % 10**8}"
    delivery = await sms_delivery(sandbox.name, sid)
    form = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": "AC1", "To": "+15550100777"}
    validator = RequestValidator(SMS_TOKEN)
    headers = {"X-Twilio-Signature": validator.compute_signature(signed_url, form, algorithm)}
    if algorithm:
        headers["X-Twilio-Webhooks-Signature-Settings"] = f"key=webhooks_sharedkey_1,algorithm={algorithm}"
    # Twilio's own validator accepts this request for the published URL: so must Herald.
    assert validator.validate(f"{PUBLIC}/webhooks/sms/twilio", form, headers["X-Twilio-Signature"], algorithm)

    tampered = await post(public_server, {**form, "MessageStatus": "undelivered"}, headers)
    assert tampered.status_code == 403
    assert (await Delivery.get(id=delivery.id)).status is DeliveryStatus.SENT
    response = await post(public_server, form, headers)
    assert (response.status_code, response.json()) == (200, {"outcome": "APPLIED"})
    assert (await Delivery.get(id=delivery.id)).status is DeliveryStatus.DELIVERED


async def test_another_host_or_an_unknown_algorithm_is_refused(
    sandbox: SandboxKeys, public_server: RunningServer
) -> None:
    await sms_delivery(sandbox.name, "SMhost01")
    form = {"MessageSid": "SMhost01", "MessageStatus": "delivered"}
    validator = RequestValidator(SMS_TOKEN)
    elsewhere = {"X-Twilio-Signature": validator.compute_signature("https://evil.example/webhooks/sms/twilio", form)}
    assert (await post(public_server, form, elsewhere)).status_code == 403
    signed = {
        "X-Twilio-Signature": validator.compute_signature(f"{PUBLIC}/webhooks/sms/twilio", form),
        "X-Twilio-Webhooks-Signature-Settings": "key=k,algorithm=HMAC_MD5",
    }
    assert (await post(public_server, form, signed)).status_code == 403
