"""A local stand-in for Amazon SNS: it serves a signing certificate generated here, signs messages the way SNS
documents (docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html) and records visits to
SubscribeURL."""

from __future__ import annotations

import base64
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.serving import free_port, uvicorn_serving

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-feedback"
# The order AWS documents for each message type (Subject only when present).
_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")


def _certificate() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-east-1.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Sns:
    base_url: str
    key: rsa.RSAPrivateKey
    cert_pem: bytes
    confirmed: list[str] = field(default_factory=list)
    cert_fetches: int = 0

    @property
    def cert_url(self) -> str:
        return f"{self.base_url}/SimpleNotificationService-test.pem"

    def sign(self, message: dict[str, Any], version: str = "1") -> dict[str, Any]:
        keys = _NOTIFICATION if message["Type"] == "Notification" else _CONFIRMATION
        text = "".join(f"{k}\n{message[k]}\n" for k in keys if k in message)
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), digest)
        return {
            **message,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": self.cert_url,
        }

    def notification(self, record: dict[str, Any], *, topic: str = TOPIC, version: str = "1") -> bytes:
        return orjson.dumps(
            self.sign(
                {
                    "Type": "Notification",
                    "MessageId": str(uuid.uuid4()),
                    "TopicArn": topic,
                    "Message": orjson.dumps(record).decode(),
                    "Timestamp": "2026-12-06T08:00:00.000Z",
                    "UnsubscribeURL": f"{self.base_url}/?Action=Unsubscribe",
                },
                version,
            )
        )

    def subscription_confirmation(self, token: str, *, topic: str = TOPIC) -> bytes:
        return orjson.dumps(
            self.sign(
                {
                    "Type": "SubscriptionConfirmation",
                    "MessageId": str(uuid.uuid4()),
                    "Token": token,
                    "TopicArn": topic,
                    "Message": f"You have chosen to subscribe to the topic {topic}.",
                    "SubscribeURL": f"{self.base_url}/?Action=ConfirmSubscription&TopicArn={topic}&Token={token}",
                    "Timestamp": "2026-12-06T08:00:00.000Z",
                }
            )
        )


@contextlib.asynccontextmanager
async def sns_server() -> AsyncIterator[Sns]:
    port = free_port()
    key, pem = _certificate()
    sns = Sns(f"http://127.0.0.1:{port}", key, pem)

    async def cert(request: Request) -> Response:
        sns.cert_fetches += 1
        return Response(sns.cert_pem, media_type="application/x-pem-file")

    async def root(request: Request) -> Response:
        if request.query_params.get("Action") == "ConfirmSubscription":
            sns.confirmed.append(request.query_params["Token"])
        return PlainTextResponse("<ConfirmSubscriptionResponse/>")

    app = Starlette(routes=[Route("/SimpleNotificationService-test.pem", cert), Route("/", root)])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    async with uvicorn_serving(config):
        yield sns
