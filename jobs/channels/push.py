"""Push through FCM HTTP v1: an OAuth2 access token from the service account, then one POST per message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from jobs.channels.base import Backoff, ConcurrentAdapter, FailureCode, OutgoingMessage, PushContent, SendResult
from jobs.channels.egress import EgressRefused
from jobs.channels.http import is_retryable, json_or_empty, provider_client, refused, retry_response, transport_error
from models.egress_rules import DEV_POLICY, EgressPolicy

__all__ = ["AccessTokenError", "FcmConfig", "PushAdapter", "ServiceAccountTokens"]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# FCM error codes that mean this token will never work again for this sender → suppress it.
_DEAD_TOKEN = {"UNREGISTERED", "SENDER_ID_MISMATCH"}


@dataclass(frozen=True, slots=True)
class FcmConfig:
    project_id: str
    # The service-account JSON as a mapping: client_email, private_key, private_key_id, token_uri.
    service_account: Mapping[str, Any] = field(repr=False)
    base_url: str = "https://fcm.googleapis.com"
    # Defaults to the service account's token_uri; tests point it at a local server.
    token_url: str | None = None
    max_concurrency: int = 20
    timeout: float = 15.0
    token_failure_hold: float = 1.0
    # The preset's app id (Android package name, iOS bundle id) and platforms: they pin where a message may go.
    app_id: str | None = None
    platforms: tuple[str, ...] = ()
    # Where base_url and the token URL may point; the worker passes the settings' policy.
    egress: EgressPolicy = DEV_POLICY


class AccessTokenError(Exception):
    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class ServiceAccountTokens:
    """OAuth2 access tokens for a service account (RFC 7523 JWT bearer grant), cached until shortly before expiry."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        service_account: Mapping[str, Any],
        token_url: str | None = None,
        *,
        failure_hold: float = 1.0,
    ):
        self.client = client
        # After a failed fetch, sends within `failure_hold` seconds get the same error instead of each asking again.
        self.failure_hold = failure_hold
        self._failure: AccessTokenError | None = None
        self._failure_until = 0.0
        self.client_email = service_account["client_email"]
        self.key_id = service_account.get("private_key_id")
        self.token_url = token_url or service_account.get("token_uri") or "https://oauth2.googleapis.com/token"
        self._private_key = service_account["private_key"]
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {"iss": self.client_email, "scope": FCM_SCOPE, "aud": self.token_url, "iat": now, "exp": now + 3600}
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self._private_key, algorithm="RS256", headers=headers)

    async def get(self) -> str:
        if self._token is not None and time.monotonic() < self._expires_at:
            return self._token
        async with self._lock:  # one refresh however many sends are waiting
            if self._token is not None and time.monotonic() < self._expires_at:
                return self._token
            if self._failure is not None and time.monotonic() < self._failure_until:
                raise self._failure
            try:
                await self._fetch()
            except AccessTokenError as exc:
                self._failure, self._failure_until = exc, time.monotonic() + self.failure_hold
                raise
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def _fetch(self) -> None:
        try:
            response = await self.client.post(
                self.token_url, data={"grant_type": JWT_BEARER, "assertion": self._assertion()}
            )
        except httpx.HTTPError as exc:
            raise AccessTokenError(f"token endpoint unreachable: {exc!r}", permanent=False) from exc
        body = json_or_empty(response)
        if not response.is_success or "access_token" not in body:
            detail = f"token endpoint HTTP {response.status_code}: {body.get('error_description') or body.get('error')}"
            retry_after = response.headers.get("retry-after")
            raise AccessTokenError(
                detail,
                permanent=not is_retryable(response.status_code),
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        self.fetches += 1
        lifetime = float(body.get("expires_in", 3600))
        self._token = body["access_token"]
        # Refresh a minute early (or at half-life for short tokens) so no send races the expiry.
        self._expires_at = time.monotonic() + max(lifetime - min(60.0, lifetime / 2), 0.0)


def fcm_error(body: dict) -> tuple[str | None, str]:
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    code = None
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and detail.get("errorCode"):
            code = detail["errorCode"]
            break
    return code or error.get("status"), str(error.get("message") or "")


def fcm_request_body(
    token: str, content: PushContent, *, app_id: str | None = None, platforms: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The messages:send body, as firebase-admin encodes the same message (empty fields and data omitted; data
    values are strings, checked at input).

    A registration token is opaque (nothing says which app or platform it belongs to), so the preset's app id
    pins the delivery per platform it lists: Android messages only to that package (`restricted_package_name`:
    FCM refuses a token of another app), iOS ones with that bundle id as the APNs topic."""
    notification = {key: value for key, value in (("title", content.title), ("body", content.body)) if value}
    message: dict[str, Any] = {"token": token, "notification": notification}
    if content.data:
        message["data"] = dict(content.data)
    if app_id and "ANDROID" in platforms:
        message["android"] = {"restricted_package_name": app_id}
    if app_id and "IOS" in platforms:
        message["apns"] = {"headers": {"apns-topic": app_id}}
    return {"message": message}


def _names_the_token(body: dict, detail: str) -> bool:
    if "registration token" in detail.lower():
        return True
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    for item in error.get("details") or ():
        for violation in (item.get("fieldViolations") or ()) if isinstance(item, dict) else ():
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                return True
    return False


class PushAdapter(ConcurrentAdapter):
    def __init__(
        self, config: FcmConfig, *, backoff: Backoff | None = None, client: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(max_concurrency=config.max_concurrency, backoff=backoff)
        self.url = f"{config.base_url.rstrip('/')}/v1/projects/{config.project_id}/messages:send"
        self.app_id, self.platforms = config.app_id, config.platforms
        self._owns_client = client is None
        self.client = client or provider_client(
            max_connections=config.max_concurrency, timeout=config.timeout, egress=config.egress
        )
        self.tokens = ServiceAccountTokens(
            self.client, config.service_account, config.token_url, failure_hold=config.token_failure_hold
        )

    async def send_one(self, message: OutgoingMessage) -> SendResult:
        content = message.content
        if not isinstance(content, PushContent):
            return SendResult.hard_fail(FailureCode.INVALID_MESSAGE, f"not push content: {type(content).__name__}")
        payload = fcm_request_body(message.address, content, app_id=self.app_id, platforms=self.platforms)
        for _ in range(2):
            try:
                token = await self.tokens.get()
            except EgressRefused as exc:
                return refused(exc)
            except AccessTokenError as exc:
                if exc.permanent:
                    return SendResult.hard_fail(FailureCode.AUTH_FAILED, str(exc))
                return SendResult.retry(
                    self.backoff.delay(message.attempt, exc.retry_after), FailureCode.CONNECTION, str(exc)
                )
            try:
                response = await self.client.post(self.url, json=payload, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                return transport_error(exc, self.backoff, message.attempt)
            except EgressRefused as exc:
                return refused(exc)
            # FCM answers an APNs credential problem with 401 too: that is no reason to fetch a new token.
            if response.status_code == 401 and fcm_error(json_or_empty(response))[0] != "THIRD_PARTY_AUTH_ERROR":
                # The token expired or was revoked early: fetch a new one and try once more.
                self.tokens.invalidate(token)
                continue
            return self._result(response, message.attempt)
        return SendResult.hard_fail(FailureCode.AUTH_FAILED, "FCM refused a freshly issued access token")

    def _result(self, response: httpx.Response, attempt: int) -> SendResult:
        body = json_or_empty(response)
        if response.is_success:
            return SendResult.sent(body.get("name"))
        code, detail = fcm_error(body)
        text = f"HTTP {response.status_code} {code}: {detail}"
        if is_retryable(response.status_code):
            return retry_response(response, self.backoff, attempt, text, code)
        if code in _DEAD_TOKEN:
            return SendResult.hard_fail(FailureCode.UNREGISTERED, text, suppress=True, provider_code=code)
        if code == "INVALID_ARGUMENT":
            # The same code for a malformed token and a malformed message: only the token is suppressed, when
            # FCM's message or field violation names it (data is checked at input, so the token is the usual one).
            if _names_the_token(body, detail):
                return SendResult.hard_fail(FailureCode.UNREGISTERED, text, suppress=True, provider_code=code)
            return SendResult.hard_fail(FailureCode.INVALID_MESSAGE, text, provider_code=code)
        if code == "THIRD_PARTY_AUTH_ERROR":
            # The project's APNs certificate / auth key (or web push key): the sender's credentials, not the token.
            return SendResult.hard_fail(
                FailureCode.AUTH_FAILED, f"APNs or web push credentials refused: {text}", provider_code=code
            )
        if response.status_code == 403:
            return SendResult.hard_fail(FailureCode.AUTH_FAILED, text, provider_code=code)
        return SendResult.hard_fail(FailureCode.PROVIDER_REJECTED, text, provider_code=code)

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()
