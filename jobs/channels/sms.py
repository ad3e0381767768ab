"""SMS through a Twilio-style messages API: POST {base}/2010-04-01/Accounts/{sid}/Messages.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx

from jobs.channels.base import Backoff, ConcurrentAdapter, FailureCode, OutgoingMessage, SendResult, SmsContent
from jobs.channels.egress import EgressRefused
from jobs.channels.http import is_retryable, json_or_empty, provider_client, refused, retry_response, transport_error
from models.egress_rules import DEV_POLICY, EgressPolicy

__all__ = ["SENT_NO_ANSWER", "SmsAdapter", "TwilioConfig", "status_callback_url"]

# httpx errors raised after the request was written: a read timeout, or the server hanging up without an answer.
SENT_NO_ANSWER = (httpx.ReadTimeout, httpx.RemoteProtocolError)
# The query parameter of the status callback URL naming the delivery (its idempotency key).
DELIVERY_PARAM = "delivery"


def status_callback_url(base: str, idempotency_key: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}{urlencode({DELIVERY_PARAM: idempotency_key})}"


# Twilio error codes that say the recipient number is unusable / has opted out → suppress the address.
_BAD_NUMBER = {21211, 21214, 21217, 21401, 21407, 21614}
_OPTED_OUT = {21610}
_BAD_SENDER = {21212, 21606, 21659}
_AUTH = {20003, 20005}


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    account_sid: str
    auth_token: str = field(repr=False)
    # Either a sender number / alphanumeric id, or a messaging service that picks one.
    from_number: str | None = None
    messaging_service_sid: str | None = None
    base_url: str = "https://api.twilio.com"
    max_concurrency: int = 10
    timeout: float = 15.0
    # Where the provider posts delivery receipts (Herald's /webhooks/sms/twilio), None for none.
    status_callback: str | None = None
    # Where base_url may point; the worker passes the settings' policy.
    egress: EgressPolicy = DEV_POLICY

    def __post_init__(self) -> None:
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("an SMS sender needs from_number or messaging_service_sid")


def _failure(status_code: int, code: int | None, message: str) -> SendResult:
    provider_code = str(code) if code is not None else str(status_code)
    if code in _BAD_NUMBER:
        return SendResult.hard_fail(FailureCode.INVALID_ADDRESS, message, suppress=True, provider_code=provider_code)
    if code in _OPTED_OUT:
        return SendResult.hard_fail(FailureCode.HARD_BOUNCE, message, suppress=True, provider_code=provider_code)
    if code in _BAD_SENDER:
        return SendResult.hard_fail(FailureCode.SENDER_REJECTED, message, provider_code=provider_code)
    if code in _AUTH or status_code in (401, 403):
        return SendResult.hard_fail(FailureCode.AUTH_FAILED, message, provider_code=provider_code)
    return SendResult.hard_fail(FailureCode.PROVIDER_REJECTED, message, provider_code=provider_code)


class SmsAdapter(ConcurrentAdapter):
    def __init__(
        self, config: TwilioConfig, *, backoff: Backoff | None = None, client: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(max_concurrency=config.max_concurrency, backoff=backoff)
        self.config = config
        self.url = f"{config.base_url.rstrip('/')}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
        self._owns_client = client is None
        self.client = client or provider_client(
            max_connections=config.max_concurrency, timeout=config.timeout, egress=config.egress
        )
        self._auth = httpx.BasicAuth(config.account_sid, config.auth_token)
        # With both, Twilio sends from that number of the service's pool.
        self._sender: dict[str, str] = {}
        if config.messaging_service_sid:
            self._sender["MessagingServiceSid"] = config.messaging_service_sid
        if config.from_number:
            self._sender["From"] = config.from_number

    async def send_one(self, message: OutgoingMessage) -> SendResult:
        content = message.content
        if not isinstance(content, SmsContent):
            return SendResult.hard_fail(FailureCode.INVALID_MESSAGE, f"not SMS content: {type(content).__name__}")
        form = {"To": message.address, **self._sender, "Body": content.body}
        if self.config.status_callback:
            # The delivery's key in the callback URL: a callback for a send whose answer was lost (so whose SID
            # we never learnt) still finds its delivery.
            form["StatusCallback"] = status_callback_url(self.config.status_callback, message.idempotency_key)
        try:
            response = await self.client.post(
                self.url,
                data=form,
                auth=self._auth,
                # Providers that honour it drop a repeated request; the rest ignore it.
                headers={"Idempotency-Key": message.idempotency_key},
            )
        except SENT_NO_ANSWER as exc:
            # The request went and no answer came: Twilio may have the message (it ignores Idempotency-Key), so a
            # resend could text the recipient twice. Held UNCONFIRMED for the status callback to settle.
            return SendResult.unconfirmed(f"{type(exc).__name__}: no answer after the request was sent")
        except httpx.HTTPError as exc:
            return transport_error(exc, self.backoff, message.attempt)
        except EgressRefused as exc:
            return refused(exc)

        body = json_or_empty(response)
        if response.is_success:
            return SendResult.sent(body.get("sid"))
        code = body.get("code") if isinstance(body.get("code"), int) else None
        text = f"HTTP {response.status_code}: {body.get('message') or response.reason_phrase}"
        if is_retryable(response.status_code):
            return retry_response(response, self.backoff, message.attempt, text, str(code or response.status_code))
        return _failure(response.status_code, code, text)

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()
