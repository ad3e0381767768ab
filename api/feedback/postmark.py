"""Postmark webhooks: HTTP basic auth with the user name and password set on the webhook's URL in Postmark
(the preset's `postmark_webhook_username` / `postmark_webhook_password`). Postmark sends them over https
when PUBLIC_URL is https, which production requires."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

import orjson

from api.feedback.common import FeedbackRefused, FeedbackRequest, ProviderEvent, ProviderReply, message_id_forms
from models.reporting.feedback import Feedback, FeedbackKind
from models.reporting.tracking import BounceType

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="herald-feedback"'}
# Bounce types that say the address is unusable (postmarkapp.com/developer/api/bounce-api#bounce-types).
HARD_TYPES = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
SOFT_TYPES = frozenset({"SoftBounce", "Transient", "DnsError", "Blocked", "DMARCPolicy", "Unknown"})


def verify(request: FeedbackRequest) -> None:
    user = request.preset_settings.get("postmark_webhook_username")
    password = request.secrets.get("postmark_webhook_password")
    if not user or not password:
        raise FeedbackRefused(403, "This preset accepts no Postmark feedback: set its postmarkWebhook credentials.")
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        given = base64.b64decode(encoded, validate=True).decode() if scheme.lower() == "basic" else ""
    except (binascii.Error, UnicodeDecodeError):
        given = ""
    if not hmac.compare_digest(given.encode(), f"{user}:{password}".encode()):
        raise FeedbackRefused(401, "Basic authentication with the preset's Postmark credentials.", headers=_CHALLENGE)


async def read(request: FeedbackRequest) -> ProviderReply:
    verify(request)
    try:
        record = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise FeedbackRefused(400, "The body must be a Postmark webhook record (JSON).") from exc
    if not isinstance(record, dict):
        raise FeedbackRefused(400, "The body must be a Postmark webhook record (JSON).")
    kind = str(record.get("RecordType") or "")
    ids = (record["MessageID"],) if isinstance(record.get("MessageID"), str) else ()
    return ProviderReply([ProviderEvent(ids + message_id_forms(_header(record)), _feedback(kind, record), kind)])


def _header(record: dict[str, Any]) -> str | None:
    # Our Message-ID, when the record carries the message's headers.
    for header in record.get("Headers") or []:
        if isinstance(header, dict) and str(header.get("Name", "")).lower() == "message-id":
            return str(header.get("Value"))
    return None


def _feedback(kind: str, record: dict[str, Any]) -> Feedback | None:
    if kind == "Delivery":
        return Feedback(FeedbackKind.DELIVERED)
    if kind == "SpamComplaint":
        return Feedback(FeedbackKind.COMPLAINT)
    if kind == "Bounce":
        bounce_type = record.get("Type")
        reason = f"{bounce_type}: {record.get('Description') or ''} {record.get('Details') or ''}".strip()[:2000]
        if bounce_type in HARD_TYPES:
            return Feedback(FeedbackKind.BOUNCE, BounceType.HARD, reason)
        if bounce_type in SOFT_TYPES:
            return Feedback(FeedbackKind.BOUNCE, BounceType.SOFT, reason)
    return None  # auto-responders, opens, clicks, subscription changes
