"""PushAdapter against a local FCM HTTP v1 + OAuth2 token endpoint over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jobs.channels.base import Backoff, FailureCode, OutgoingMessage, PushContent, SendStatus
from jobs.channels.push import FCM_SCOPE, FcmConfig, PushAdapter
from tests.jobs.provider_server import PROJECT, Providers, ProviderState, Scripted, provider_server

BACKOFF = Backoff(base=60, jitter=0)


@pytest.fixture(scope="module")
async def providers_server() -> AsyncIterator[Providers]:
    async with provider_server() as running:
        yield running


@pytest.fixture
def providers(providers_server: Providers) -> tuple[ProviderState, dict[str, str]]:
    """A fresh provider state for this test (on the module's server) and the service account."""
    return providers_server.fresh(), providers_server.account


def pushes(n: int, *, attempt: int = 0) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(
            f"run1-{i}",
            f"device-token-{i}",
            PushContent(f"Hello {i}", "Your order shipped", {"orderId": f"o-{i}", "deepLink": "app://orders"}),
            attempt=attempt,
        )
        for i in range(n)
    ]


def adapter_for(state, account, **overrides) -> PushAdapter:
    values = {"project_id": PROJECT, "service_account": account, "base_url": state.base_url, "max_concurrency": 5}
    values.update(overrides)
    return PushAdapter(FcmConfig(**values), backoff=BACKOFF)


async def test_sends_with_one_cached_token_from_a_signed_assertion(providers):
    state, account = providers
    adapter = adapter_for(state, account)
    try:
        results = await adapter.send_batch(pushes(10))
        results += await adapter.send_batch(pushes(3))
    finally:
        await adapter.close()
    assert [r.status for r in results] == [SendStatus.SENT] * 13
    assert results[0].provider_message_id.startswith(f"projects/{PROJECT}/messages/")
    # Thirteen sends, ten of them concurrent at first: one token request.
    [token_request] = state.token_requests
    claims = token_request["claims"]  # the server verified the RS256 signature with the account's public key
    assert claims["iss"] == account["client_email"] and claims["scope"] == FCM_SCOPE
    assert claims["exp"] - claims["iat"] == 3600
    assert token_request["kid"]["kid"] == "key-1" and token_request["kid"]["alg"] == "RS256"
    first = next(p for p in state.push if p["message"]["token"] == "device-token-0")["message"]
    assert first == {
        "token": "device-token-0",
        "notification": {"title": "Hello 0", "body": "Your order shipped"},
        "data": {"orderId": "o-0", "deepLink": "app://orders"},
    }


async def test_token_is_refreshed_after_expiry_and_after_a_401(providers):
    state, account = providers
    state.token_lifetime = 0  # expires at once: every send needs a fresh one
    adapter = adapter_for(state, account, max_concurrency=1)
    try:
        assert all(r.status is SendStatus.SENT for r in await adapter.send_batch(pushes(2)))
        assert len(state.token_requests) == 2
        state.token_lifetime = 3600
        await adapter.send_batch(pushes(1))
        state.revoked_tokens |= state.issued_tokens  # revoked before expiry: FCM answers 401
        [result] = await adapter.send_batch(pushes(1))
    finally:
        await adapter.close()
    assert result.status is SendStatus.SENT
    assert len(state.token_requests) == 4
    assert state.push[-1]["bearer"] == "ya29.test-4"


async def test_dead_tokens_and_invalid_arguments_are_hard_failures(providers):
    state, account = providers
    state.unregistered_tokens = {"device-token-1"}
    state.fcm_script.append(
        Scripted(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid JSON payload"}})
    )
    adapter = adapter_for(state, account, max_concurrency=1)
    try:
        invalid, unregistered, ok = await adapter.send_batch(pushes(3))
        # FCM's answer to a malformed token, as documented: INVALID_ARGUMENT naming the registration token.
        state.fcm_script.extend(
            [
                Scripted(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                               "message": "The registration token is not a valid FCM registration token",
                               "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                            "errorCode": "INVALID_ARGUMENT"}]}}),
                Scripted(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid value",
                               "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                            "fieldViolations": [{"field": "message.token"}]}]}}),
                Scripted(401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "APNs auth",
                               "details": [{"errorCode": "THIRD_PARTY_AUTH_ERROR"}]}}),
            ]
        )  # fmt: skip
        bad_token, violation, apns = await adapter.send_batch(pushes(3))
    finally:
        await adapter.close()
    assert [(r.reason, r.suppress_address) for r in (bad_token, violation)] == [(FailureCode.UNREGISTERED, True)] * 2
    assert (apns.status, apns.reason, apns.suppress_address) == (SendStatus.HARD_FAIL, FailureCode.AUTH_FAILED, False)
    assert apns.message.startswith("APNs or web push credentials refused")
    assert (unregistered.status, unregistered.reason, unregistered.suppress_address, unregistered.provider_code) == (
        SendStatus.HARD_FAIL,
        FailureCode.UNREGISTERED,
        True,
        "UNREGISTERED",
    )
    assert (invalid.status, invalid.reason, invalid.suppress_address, invalid.provider_code) == (
        SendStatus.HARD_FAIL,
        FailureCode.INVALID_MESSAGE,
        False,
        "INVALID_ARGUMENT",
    )
    assert ok.status is SendStatus.SENT


async def test_quota_and_server_errors_are_retried_with_retry_after(providers):
    state, account = providers
    state.fcm_script.extend(
        [
            Scripted(429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
                                     "details": [{"errorCode": "QUOTA_EXCEEDED"}]}}, {"Retry-After": "30"}),
            Scripted(503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "later"}}),
        ]
    )  # fmt: skip
    adapter = adapter_for(state, account, max_concurrency=1)
    try:
        quota, unavailable, ok = await adapter.send_batch(pushes(3, attempt=1))
    finally:
        await adapter.close()
    assert (quota.status, quota.reason, quota.retry_after, quota.provider_code) == (
        SendStatus.RETRY,
        FailureCode.THROTTLED,
        30,
        "QUOTA_EXCEEDED",
    )
    assert (unavailable.status, unavailable.reason, unavailable.retry_after) == (
        SendStatus.RETRY,
        FailureCode.TEMPORARY,
        120,
    )
    assert ok.status is SendStatus.SENT


async def test_token_endpoint_failures(providers):
    state, account = providers
    state.token_script.extend(
        [
            Scripted(503, {"error": "backend_error"}, {"Retry-After": "5"}),
            Scripted(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
        ]
    )
    adapter = adapter_for(state, account, max_concurrency=1, token_failure_hold=0)
    try:
        unavailable, refused, ok = await adapter.send_batch(pushes(3))
    finally:
        await adapter.close()
    assert (unavailable.status, unavailable.retry_after) == (SendStatus.RETRY, 5)
    assert (refused.status, refused.reason) == (SendStatus.HARD_FAIL, FailureCode.AUTH_FAILED)
    assert "Invalid JWT Signature" in refused.message
    assert ok.status is SendStatus.SENT
    assert len(state.push) == 1


async def test_a_refused_token_request_is_not_repeated_for_every_message(providers):
    state, account = providers
    state.token_script.append(Scripted(401, {"error": "invalid_client"}))
    adapter = adapter_for(state, account, max_concurrency=5)
    try:
        results = await adapter.send_batch(pushes(20))
    finally:
        await adapter.close()
    assert {(r.status, r.reason) for r in results} == {(SendStatus.HARD_FAIL, FailureCode.AUTH_FAILED)}
    assert len(state.token_requests) == 1
