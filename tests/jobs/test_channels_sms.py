"""SmsAdapter against a local Twilio-style server over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jobs.channels.base import Backoff, FailureCode, OutgoingMessage, SendStatus, SmsContent
from jobs.channels.sms import SmsAdapter, TwilioConfig
from tests.conftest import free_port
from tests.jobs.provider_server import ACCOUNT_SID, AUTH_TOKEN, Providers, ProviderState, Scripted, provider_server

BACKOFF = Backoff(base=60, jitter=0)


@pytest.fixture(scope="module")
async def providers_server() -> AsyncIterator[Providers]:
    async with provider_server() as running:
        yield running


@pytest.fixture
def providers(providers_server: Providers) -> tuple[ProviderState, dict[str, str]]:
    """A fresh provider state for this test (on the module's server) and the service account."""
    return providers_server.fresh(), providers_server.account


def sms(n: int, *, attempt: int = 0) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(f"run1-{i}", f"+1555010{i:04d}", SmsContent(f"Hi {i}, 20% off today"), attempt=attempt)
        for i in range(n)
    ]


def adapter_for(base_url: str, **overrides) -> SmsAdapter:
    values = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": "+15550000000"}
    values.update(overrides)
    return SmsAdapter(TwilioConfig(base_url=base_url, **values), backoff=BACKOFF)


async def test_sends_form_encoded_with_basic_auth_and_bounded_concurrency(providers):
    state, _account = providers
    state.delay = 0.02
    adapter = adapter_for(state.base_url, max_concurrency=4)
    try:
        results = await adapter.send_batch(sms(12))
    finally:
        await adapter.close()
    assert [r.status for r in results] == [SendStatus.SENT] * 12
    assert all(r.provider_message_id and r.provider_message_id.startswith("SM") for r in results)
    assert len({r.provider_message_id for r in results}) == 12
    sent = {m["To"]: m for m in state.sms}
    assert sent["+15550100003"] == {
        "To": "+15550100003",
        "From": "+15550000000",
        "Body": "Hi 3, 20% off today",
        "idempotency_key": "run1-3",
    }
    assert state.peak_in_flight == 4


async def test_messaging_service_sender(providers):
    state, _account = providers
    adapter = adapter_for(state.base_url, from_number=None, messaging_service_sid="MG123")
    try:
        [result] = await adapter.send_batch(sms(1))
    finally:
        await adapter.close()
    assert result.status is SendStatus.SENT
    assert state.sms[0]["MessagingServiceSid"] == "MG123" and "From" not in state.sms[0]
    with pytest.raises(ValueError):
        TwilioConfig(account_sid="AC1", auth_token="t")


async def test_messaging_service_with_a_sender_of_its_pool(providers):
    state, _account = providers
    adapter = adapter_for(state.base_url, from_number="+14155550100", messaging_service_sid="MG123")
    try:
        [result] = await adapter.send_batch(sms(1))
    finally:
        await adapter.close()
    assert result.status is SendStatus.SENT
    assert (state.sms[0]["MessagingServiceSid"], state.sms[0]["From"]) == ("MG123", "+14155550100")


async def test_throttling_and_server_errors_are_retried_honouring_retry_after(providers):
    state, _account = providers
    state.twilio_script.extend(
        [
            Scripted(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "7"}),
            Scripted(503, {"message": "Service Unavailable"}),
            Scripted(500, {"code": 20500, "message": "Internal"}, {"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}),
        ]
    )
    adapter = adapter_for(state.base_url, max_concurrency=1)
    try:
        results = await adapter.send_batch(sms(4, attempt=2))
    finally:
        await adapter.close()
    throttled, unavailable, internal, ok = results
    assert (throttled.status, throttled.reason, throttled.retry_after, throttled.provider_code) == (
        SendStatus.RETRY,
        FailureCode.THROTTLED,
        7,
        "20429",
    )
    assert (unavailable.status, unavailable.reason, unavailable.retry_after) == (
        SendStatus.RETRY,
        FailureCode.TEMPORARY,
        240,  # no Retry-After: 60 * 2^2
    )
    assert (internal.status, internal.retry_after) == (SendStatus.RETRY, 0)  # a date in the past
    assert ok.status is SendStatus.SENT
    assert [m["To"] for m in state.sms] == ["+15550100003"]


async def test_client_errors_are_hard_failures_with_the_provider_code(providers):
    state, _account = providers
    state.twilio_errors = {
        "+15550100000": (400, 21211, "The 'To' number is not a valid phone number."),
        "+15550100001": (400, 21610, "Attempt to send to unsubscribed recipient"),
        "+15550100002": (400, 21408, "Permission to send an SMS has not been enabled for the region"),
    }
    adapter = adapter_for(state.base_url)
    wrong_token = adapter_for(state.base_url, auth_token="nope")
    try:
        results = await adapter.send_batch(sms(3))
        [unauthorised] = await wrong_token.send_batch(sms(1))
    finally:
        await adapter.close()
        await wrong_token.close()
    invalid, opted_out, region = results
    assert (invalid.status, invalid.reason, invalid.suppress_address, invalid.provider_code) == (
        SendStatus.HARD_FAIL,
        FailureCode.INVALID_ADDRESS,
        True,
        "21211",
    )
    assert (opted_out.reason, opted_out.suppress_address, opted_out.provider_code) == (
        FailureCode.HARD_BOUNCE,
        True,
        "21610",
    )
    assert (region.status, region.reason, region.suppress_address, region.provider_code) == (
        SendStatus.HARD_FAIL,
        FailureCode.PROVIDER_REJECTED,
        False,
        "21408",
    )
    assert "has not been enabled for the region" in region.message
    assert (unauthorised.status, unauthorised.reason, unauthorised.provider_code) == (
        SendStatus.HARD_FAIL,
        FailureCode.AUTH_FAILED,
        "20003",
    )
    assert state.sms == []


async def test_unreachable_provider_is_a_retry():
    adapter = adapter_for(f"http://127.0.0.1:{free_port()}")
    try:
        results = await adapter.send_batch(sms(3))
    finally:
        await adapter.close()
    assert {(r.status, r.reason, r.retry_after) for r in results} == {(SendStatus.RETRY, FailureCode.CONNECTION, 60)}
