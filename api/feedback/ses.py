"""Amazon SES feedback through SNS: the message signature is checked with the certificate SNS names, fetched
only from SNS hosts (setting SNS_CERT_URL_PATTERN), and the topic must be the preset's `ses_topic_arn`.

A SubscriptionConfirmation for that topic is answered by visiting its SubscribeURL; a Notification carries
SES's Bounce, Complaint or Delivery record (notificationType, or eventType for configuration-set events).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import OrderedDict
from typing import Any

import httpx
import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from api.feedback.common import FeedbackRefused, FeedbackRequest, ProviderEvent, ProviderReply, bounce, message_id_forms
from models.reporting.feedback import Feedback, FeedbackKind

# The fields SNS signs, in this order (docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html);
# Subject only when the notification has one.
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
_DIAGNOSTIC = re.compile(r"\b([245]\d\d)[ -]+(.*)", re.DOTALL)
_CERTS: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()  # public certificates by URL; small, process-wide
_CERTS_MAX = 16


def string_to_sign(document: dict[str, Any]) -> str:
    keys = SIGNED_FIELDS[document["Type"]]
    return "".join(f"{key}\n{document[key]}\n" for key in keys if document.get(key) is not None)


async def _public_key(url: str, request: FeedbackRequest) -> rsa.RSAPublicKey:
    if url in _CERTS:
        return _CERTS[url]
    try:
        response = await request.http.get(url, timeout=10)
        response.raise_for_status()
        cert = x509.load_pem_x509_certificate(response.content)
    except (httpx.HTTPError, ValueError) as exc:
        raise FeedbackRefused(403, f"The SNS signing certificate could not be loaded: {exc}") from exc
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise FeedbackRefused(403, "The SNS signing certificate does not hold an RSA key.")
    _CERTS[url] = key
    while len(_CERTS) > _CERTS_MAX:
        _CERTS.popitem(last=False)
    return key


async def verify(document: dict[str, Any], request: FeedbackRequest) -> None:
    """Raises FeedbackRefused unless SNS signed this document."""
    pattern = re.compile(request.settings.sns_cert_url_pattern)
    cert_url = document.get("SigningCertURL") or document.get("SigningCertUrl")
    if not isinstance(cert_url, str) or not pattern.match(cert_url):
        raise FeedbackRefused(403, "SigningCertURL is not an Amazon SNS URL.")
    digest = _HASHES.get(str(document.get("SignatureVersion")))
    if digest is None:
        raise FeedbackRefused(403, "SignatureVersion must be 1 or 2.")
    try:
        signature = base64.b64decode(str(document.get("Signature", "")), validate=True)
        signed = string_to_sign(document).encode()
    except (binascii.Error, KeyError) as exc:
        raise FeedbackRefused(403, "The SNS signature is malformed.") from exc
    key = await _public_key(cert_url, request)
    try:
        key.verify(signature, signed, padding.PKCS1v15(), digest())
    except InvalidSignature as exc:
        raise FeedbackRefused(403, "The SNS signature does not match.") from exc


async def read(request: FeedbackRequest) -> ProviderReply:
    try:
        document = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise FeedbackRefused(400, "The body must be an SNS message (JSON).") from exc
    if not isinstance(document, dict) or document.get("Type") not in SIGNED_FIELDS:
        raise FeedbackRefused(400, "Type must be Notification, SubscriptionConfirmation or UnsubscribeConfirmation.")
    topic = request.preset_settings.get("ses_topic_arn")
    if not topic:
        raise FeedbackRefused(403, "This preset accepts no SES feedback: set sesTopicArn on it.")
    await verify(document, request)
    # Anyone can publish signed SNS messages from their own topic: only the preset's topic counts.
    if document.get("TopicArn") != topic:
        raise FeedbackRefused(403, "The notification is from another SNS topic than the preset's sesTopicArn.")
    if document["Type"] == "SubscriptionConfirmation":
        return ProviderReply([], await _confirm(document, request))
    if document["Type"] == "UnsubscribeConfirmation":
        return ProviderReply([], {"outcome": "IGNORED"})
    try:
        record = orjson.loads(document.get("Message") or "")
    except orjson.JSONDecodeError as exc:
        raise FeedbackRefused(400, "Message must be an SES notification (JSON).") from exc
    return ProviderReply([_event(record)] if isinstance(record, dict) else [])


async def _confirm(document: dict[str, Any], request: FeedbackRequest) -> dict[str, Any]:
    url = document.get("SubscribeURL")
    if not isinstance(url, str) or not re.compile(request.settings.sns_cert_url_pattern).match(url):
        raise FeedbackRefused(403, "SubscribeURL is not an Amazon SNS URL.")
    try:
        response = await request.http.get(url, timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise FeedbackRefused(502, f"Confirming the SNS subscription failed: {exc}") from exc
    return {"outcome": "SUBSCRIBED"}


def _event(record: dict[str, Any]) -> ProviderEvent:
    kind = record.get("notificationType") or record.get("eventType")
    mail = record.get("mail") if isinstance(record.get("mail"), dict) else {}
    headers = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
    ids = (*((mail["messageId"],) if isinstance(mail.get("messageId"), str) else ()),)
    ids += message_id_forms(headers.get("messageId"))
    return ProviderEvent(ids, _feedback(kind, record), kind=str(kind))


def _feedback(kind: object, record: dict[str, Any]) -> Feedback | None:
    if kind == "Delivery":
        return Feedback(FeedbackKind.DELIVERED)
    if kind == "Complaint":
        complaint = record.get("complaint") if isinstance(record.get("complaint"), dict) else {}
        return Feedback(FeedbackKind.COMPLAINT, reason=str(complaint.get("complaintFeedbackType") or "") or None)
    if kind == "Bounce":
        details = record.get("bounce") if isinstance(record.get("bounce"), dict) else {}
        recipients = details.get("bouncedRecipients") or [{}]
        first = recipients[0] if isinstance(recipients, list) and isinstance(recipients[0], dict) else {}
        diagnostic = str(first.get("diagnosticCode") or "")
        match = _DIAGNOSTIC.search(diagnostic)
        reason = diagnostic or f"{details.get('bounceType')} {details.get('bounceSubType')}"
        permanent = details.get("bounceType") == "Permanent"
        return bounce(permanent, match.group(1) if match else None, match.group(2) if match else "", reason[:2000])
    return None
