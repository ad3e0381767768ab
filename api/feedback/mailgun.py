"""Mailgun webhooks: HMAC-SHA256 of timestamp + token under the webhook signing key (the preset's
`mailgun_webhook_signing_key`), hex in signature.signature."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson

from api.feedback.common import (
    MAX_SIGNATURE_AGE_SECONDS,
    FeedbackRefused,
    FeedbackRequest,
    ProviderEvent,
    ProviderReply,
    bounce,
    message_id_forms,
)
from models.reporting.feedback import Feedback, FeedbackKind


def signature_of(signing_key: str, timestamp: str, token: str) -> str:
    return hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def verify(document: dict[str, Any], request: FeedbackRequest, *, now: float | None = None) -> None:
    key = request.secrets.get("mailgun_webhook_signing_key")
    if not key:
        raise FeedbackRefused(403, "This preset accepts no Mailgun feedback: set mailgunWebhookSigningKey on it.")
    signed = document.get("signature")
    if not isinstance(signed, dict) or not all(isinstance(signed.get(k), str) for k in ("timestamp", "token")):
        raise FeedbackRefused(403, "signature.timestamp, signature.token and signature.signature are required.")
    try:
        age = abs((now or time.time()) - int(signed["timestamp"]))
    except ValueError as exc:
        raise FeedbackRefused(403, "signature.timestamp must be Unix seconds.") from exc
    if age > MAX_SIGNATURE_AGE_SECONDS:
        raise FeedbackRefused(403, "signature.timestamp is too far from now.")
    expected = signature_of(key, signed["timestamp"], signed["token"])
    if not hmac.compare_digest(expected, str(signed.get("signature", ""))):
        raise FeedbackRefused(403, "The Mailgun signature does not match.")


async def read(request: FeedbackRequest) -> ProviderReply:
    try:
        document = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise FeedbackRefused(400, "The body must be Mailgun's JSON webhook payload.") from exc
    if not isinstance(document, dict):
        raise FeedbackRefused(400, "The body must be Mailgun's JSON webhook payload.")
    verify(document, request)
    data = document.get("event-data")
    if not isinstance(data, dict):
        raise FeedbackRefused(400, "event-data is required.")
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
    kind = str(data.get("event") or "")
    return ProviderReply([ProviderEvent(message_id_forms(headers.get("message-id")), _feedback(kind, data), kind)])


def _feedback(kind: str, data: dict[str, Any]) -> Feedback | None:
    if kind == "delivered":
        return Feedback(FeedbackKind.DELIVERED)
    if kind == "complained":
        return Feedback(FeedbackKind.COMPLAINT)
    if kind == "failed" and data.get("severity") == "permanent":
        status = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) else {}
        text = str(status.get("message") or status.get("description") or "")
        reason = f"{status.get('code', '')} {text}".strip() or str(data.get("reason") or "failed")
        return bounce(True, status.get("code"), text, reason[:2000])
    return None  # temporary failures are retried by Mailgun; opens, clicks, … are not ledger states
