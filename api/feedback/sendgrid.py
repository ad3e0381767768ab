"""SendGrid Event Webhook: ECDSA P-256 / SHA-256 signature of timestamp + raw body, under the verification key
SendGrid shows for the webhook (the preset's `sendgrid_webhook_public_key`)."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from api.feedback.common import (
    MAX_SIGNATURE_AGE_SECONDS,
    FeedbackRefused,
    FeedbackRequest,
    ProviderEvent,
    ProviderReply,
    bounce,
    message_id_forms,
)
from models.presets.channel_rules import load_ec_public_key
from models.reporting.feedback import Feedback, FeedbackKind

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
MAX_EVENTS = 1000


def verify(request: FeedbackRequest, *, now: float | None = None) -> None:
    key_text = request.secrets.get("sendgrid_webhook_public_key")
    if not key_text:
        raise FeedbackRefused(403, "This preset accepts no SendGrid feedback: set sendgridWebhookPublicKey on it.")
    signature, timestamp = request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise FeedbackRefused(403, "The SendGrid signature headers are required.")
    try:
        age = abs((now or time.time()) - int(timestamp))
    except ValueError as exc:
        raise FeedbackRefused(403, "The SendGrid timestamp must be Unix seconds.") from exc
    if age > MAX_SIGNATURE_AGE_SECONDS:
        raise FeedbackRefused(403, "The SendGrid timestamp is too far from now.")
    try:
        key = load_ec_public_key(key_text)
        key.verify(
            base64.b64decode(signature, validate=True), timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError, binascii.Error) as exc:
        raise FeedbackRefused(403, "The SendGrid signature does not match.") from exc


async def read(request: FeedbackRequest) -> ProviderReply:
    verify(request)
    try:
        events = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise FeedbackRefused(400, "The body must be a JSON array of events.") from exc
    if not isinstance(events, list):
        raise FeedbackRefused(400, "The body must be a JSON array of events.")
    if len(events) > MAX_EVENTS:
        raise FeedbackRefused(413, f"At most {MAX_EVENTS} events per request.")
    return ProviderReply([_event(item) for item in events if isinstance(item, dict)])


def _event(item: dict[str, Any]) -> ProviderEvent:
    kind = str(item.get("event") or "")
    ids: tuple[str, ...] = ()
    # sg_message_id is the X-Message-Id SendGrid answered the SMTP DATA with, then ".filter…" (older ids
    # had dots of their own).
    if isinstance(item.get("sg_message_id"), str):
        ids += (item["sg_message_id"].split(".filter", 1)[0], item["sg_message_id"].split(".", 1)[0])
    ids += message_id_forms(item.get("smtp-id"))
    return ProviderEvent(ids, _feedback(kind, item), kind=kind)


def _feedback(kind: str, item: dict[str, Any]) -> Feedback | None:
    if kind == "delivered":
        return Feedback(FeedbackKind.DELIVERED)
    if kind == "spamreport":
        return Feedback(FeedbackKind.COMPLAINT)
    if kind == "bounce":
        reason = str(item.get("reason") or item.get("status") or "bounce")[:2000]
        # type "blocked" is SendGrid's word for a refusal about the sender (IP, content, policy).
        permanent = item.get("type", "bounce") == "bounce"
        status = str(item.get("status") or "")
        return bounce(permanent, 550 if status.startswith("5") else None, f"{status} {reason}".strip(), reason)
    return None  # processed, deferred, dropped, open, click, …
