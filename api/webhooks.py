"""Provider feedback webhooks: delivery receipts, bounces and complaints after the send (DESIGN §6).

    POST /webhooks/sms/twilio   Twilio-style status callback (form fields MessageSid, MessageStatus, ErrorCode),
                                authenticated by X-Twilio-Signature with the auth token of the SMS preset
                                that sent the message
    POST /webhooks/email        {"events": [{"messageId": "<…>", "type": "delivered|bounce|complaint",
                                "bounceType": "hard|soft", "reason": "…"}]} with `Authorization: Bearer
                                <API key>` (MANAGER or above); only deliveries of the key's sandbox are found

Effects: delivered → DELIVERED (+ delivered_at); bounce → BOUNCED with its bounce type (hard → suppression
HARD_BOUNCE); complaint → a COMPLAINT event (once) and suppression SPAM_COMPLAINT, the status unchanged.
Each report applies in its own transaction; the run counters are refreshed from the ledger afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tortoise.transactions import in_transaction

from api.auth import authenticate_request, json_error
from jobs.channels.sms import DELIVERY_PARAM
from models.ledger.counts import ledger_counts, store_counters
from models.ledger.delivery import DeliveryStatus
from models.ledger.outcomes import confirm_unconfirmed
from models.presets.preset import MessagePreset
from models.presets.secret_box import SecretBox, SecretsUnreadableError
from models.reporting.feedback import (
    DeliveryRef,
    Feedback,
    FeedbackKind,
    apply_feedback,
    deliveries_by_idempotency_key,
    deliveries_by_message_id,
    deliveries_by_provider_id,
)
from models.reporting.tracking import BounceType
from models.tenancy.sandbox import Role
from resolvers.context import Caller

logger = logging.getLogger(__name__)

WEBHOOK_MAX_BODY_BYTES = 1_000_000
MAX_EVENTS = 1000
SMS_STATUS_PATH = "/webhooks/sms/twilio"
EMAIL_PATH = "/webhooks/email"
# Twilio error codes that mean the number itself is unusable: a hard bounce (others are soft).
_HARD_SMS_ERRORS = frozenset({"21211", "21214", "21217", "21610", "21614", "30005", "30006"})
_EMAIL_TYPES = {"delivered": FeedbackKind.DELIVERED, "bounce": FeedbackKind.BOUNCE, "complaint": FeedbackKind.COMPLAINT}
_BOUNCE_TYPES = {"hard": BounceType.HARD, "soft": BounceType.SOFT}


async def _refresh_counters(run_ids: set[int]) -> None:
    for run_id in sorted(run_ids):
        await store_counters(run_id, await ledger_counts(run_id))


# ---- SMS: Twilio status callbacks -----------------------------------------------------------------------------


_TWILIO_HASHES = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]], algorithm: str = "HMAC_SHA1") -> str:
    """Twilio's scheme: base64(HMAC(auth token, full URL + every POST name and value, sorted by name then value)),
    SHA-1 unless X-Twilio-Webhooks-Signature-Settings names HMAC_SHA256."""
    payload = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(auth_token.encode(), payload.encode(), _TWILIO_HASHES[algorithm]).digest()
    return base64.b64encode(digest).decode()


def twilio_url_forms(url: str) -> tuple[str, ...]:
    """The URL without its port and with it (the scheme's default when absent): Twilio signs either form, and
    its own RequestValidator accepts both."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return tuple(
        dict.fromkeys((urlunsplit(parts._replace(netloc=host)), urlunsplit(parts._replace(netloc=f"{host}:{port}"))))
    )


def twilio_algorithm(settings_header: str | None) -> str | None:
    """The signing algorithm X-Twilio-Webhooks-Signature-Settings names (absent: the auth token's SHA-1);
    None for one Herald does not know."""
    for part in (settings_header or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            algorithm = value.strip().upper()
            return algorithm if algorithm in _TWILIO_HASHES else None
    return "HMAC_SHA1"


def _sms_feedback(status: str, error_code: str) -> Feedback | None:
    if status == "delivered":
        return Feedback(FeedbackKind.DELIVERED)
    if status in ("undelivered", "failed"):
        bounce = BounceType.HARD if error_code in _HARD_SMS_ERRORS else BounceType.SOFT
        return Feedback(FeedbackKind.BOUNCE, bounce, f"{status} {error_code}".strip())
    return None  # queued, sending, sent, accepted, …: nothing the ledger records


async def _auth_token(preset_id: int, box: SecretBox, cache: dict[int, str | None]) -> str | None:
    if preset_id not in cache:
        preset = await MessagePreset.get_or_none(id=preset_id)
        token = None
        if preset is not None:
            try:
                token = box.open(preset.secrets, sandbox_id=preset.sandbox_id).get("auth_token") or None
            except SecretsUnreadableError:
                logger.warning("SMS status callback: preset %s secrets unreadable", preset_id)
        cache[preset_id] = token
    return cache[preset_id]


async def sms_status(request: Request) -> Response:
    settings = request.app.state.settings
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        return json_error(403, "FORBIDDEN", "X-Twilio-Signature is required.")
    try:
        body = await request.body()  # size limited by BodySizeLimitMiddleware (WEBHOOK_MAX_BODY_BYTES)
    except ClientDisconnect:
        return Response(status_code=400)
    try:
        params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return json_error(400, "BAD_REQUEST", "The body must be application/x-www-form-urlencoded UTF-8.")
    fields = dict(params)
    sid = fields.get("MessageSid") or fields.get("SmsSid")
    if not sid:
        return json_error(400, "BAD_REQUEST", "MessageSid is required.")
    # Twilio signs the URL it was given: ours as published (PUBLIC_URL), whatever proxy sits in between.
    url = settings.public_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    box = SecretBox(settings.secret_key.get_secret_value())
    tokens: dict[int, str | None] = {}
    matched: list[DeliveryRef] = []
    algorithm = twilio_algorithm(request.headers.get("x-twilio-webhooks-signature-settings"))
    if algorithm is None:
        return json_error(403, "FORBIDDEN", "Unsupported signature algorithm.")
    forms = twilio_url_forms(url)
    # A SID could be claimed by a fake provider of another sandbox: only deliveries whose own preset's token
    # produced the signature are touched.
    candidates = await deliveries_by_provider_id(sid)
    key = request.query_params.get(DELIVERY_PARAM)
    if key:
        # A send held UNCONFIRMED (no answer, so no SID known): its callback URL names the delivery.
        known = {ref.id for ref in candidates}
        candidates += [ref for ref in await deliveries_by_idempotency_key(key) if ref.id not in known]
    for ref in candidates:
        token = await _auth_token(ref.preset_id, box, tokens) if ref.preset_id is not None else None
        if token and any(
            hmac.compare_digest(twilio_signature(token, form, params, algorithm), signature) for form in forms
        ):
            matched.append(ref)
    if not matched:
        return json_error(403, "FORBIDDEN", "The signature does not match a message sent by this server.")
    now = datetime.now(UTC)
    confirmed = False
    for ref in matched:
        if ref.status is DeliveryStatus.UNCONFIRMED:
            # Whatever its status says, Twilio has the message: SENT with its SID, then the status applies.
            async with in_transaction() as conn:
                confirmed = await confirm_unconfirmed(ref.id, sid, now, conn) or confirmed
    feedback = _sms_feedback(fields.get("MessageStatus", "").lower(), fields.get("ErrorCode", "").strip())
    if feedback is None:
        if confirmed:
            await _refresh_counters({ref.run_id for ref in matched})
        return JSONResponse({"outcome": "APPLIED" if confirmed else "IGNORED"})
    outcomes = [await apply_feedback(ref, feedback, now, actor="provider:sms") for ref in matched]
    await _refresh_counters({ref.run_id for ref in matched})
    return JSONResponse({"outcome": outcomes[0].value})


# ---- email: generic JSON -------------------------------------------------------------------------------------


def normalise_message_id(value: str) -> str:
    value = value.strip()
    return value if value.startswith("<") and value.endswith(">") else f"<{value.strip('<>')}>"


def _parse_event(item: Any) -> tuple[str | None, Feedback | None, str | None]:
    """(message id, feedback, problem) of one item of `events`."""
    if not isinstance(item, dict):
        return None, None, "each event must be an object"
    message_id = item.get("messageId")
    if not isinstance(message_id, str) or not message_id.strip() or len(message_id) > 998:
        return None, None, "messageId must be a non-empty string"
    message_id = normalise_message_id(message_id)
    kind = _EMAIL_TYPES.get(item.get("type")) if isinstance(item.get("type"), str) else None
    if kind is None:
        return message_id, None, "type must be one of delivered, bounce, complaint"
    reason = item.get("reason")
    if reason is not None and not isinstance(reason, str):
        return message_id, None, "reason must be a string"
    bounce = None
    if kind is FeedbackKind.BOUNCE:
        raw = item.get("bounceType", "hard")
        bounce = _BOUNCE_TYPES.get(raw.lower()) if isinstance(raw, str) else None
        if bounce is None:
            return message_id, None, "bounceType must be hard or soft"
    return message_id, Feedback(kind, bounce, reason), None


async def email_feedback(request: Request) -> Response:
    settings = request.app.state.settings
    caller = await authenticate_request(
        request, Role.MANAGER, "Reporting delivery feedback needs a MANAGER key or above.", settings.auth_cache_seconds
    )
    if not isinstance(caller, Caller):
        return caller
    try:
        body = await request.body()  # size limited by BodySizeLimitMiddleware (WEBHOOK_MAX_BODY_BYTES)
    except ClientDisconnect:
        return Response(status_code=400)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return json_error(400, "BAD_REQUEST", "The body must be JSON.")
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list):
        return json_error(400, "BAD_REQUEST", 'The body must be {"events": [...]}.')
    if len(events) > MAX_EVENTS:
        return json_error(413, "TOO_LARGE", f"At most {MAX_EVENTS} events per request.")
    parsed = [_parse_event(item) for item in events]
    found = await deliveries_by_message_id(caller.sandbox_id, [m for m, f, _ in parsed if f is not None and m])
    now = datetime.now(UTC)
    results: list[dict[str, Any]] = []
    touched: set[int] = set()
    for index, (message_id, feedback, problem) in enumerate(parsed):
        result: dict[str, Any] = {"index": index, "messageId": message_id}
        ref = found.get(message_id) if message_id else None
        if feedback is None:
            result.update(outcome="INVALID", error=problem)
        elif ref is None:
            result.update(outcome="UNKNOWN", error="no delivery of this sandbox has this Message-ID")
        else:
            outcome = await apply_feedback(ref, feedback, now, actor=caller.actor)
            result["outcome"] = outcome.value
            touched.add(ref.run_id)
        results.append(result)
    await _refresh_counters(touched)
    return JSONResponse({"results": results})


ROUTES = [
    Route(SMS_STATUS_PATH, sms_status, methods=["POST"]),
    Route(EMAIL_PATH, email_feedback, methods=["POST"]),
]
