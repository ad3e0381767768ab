"""Real local providers for preset validation tests: aiosmtpd SMTP servers, a Twilio-style HTTP API, and
servers that accept connections and then never answer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import free_port
from tests.serving import uvicorn_serving

SMTP_USER = "mailer"
SMTP_PASSWORD = "s3cret-smtp-Pa55"
SMS_SID = "AC0123456789"
SMS_TOKEN = "sms-token-Zq81"


class _Sink:
    async def handle_DATA(self, server, session, envelope) -> str:
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    host: str
    port: int


@contextlib.contextmanager
def smtp_server(*, auth: bool = False, tls_context: ssl.SSLContext | None = None) -> Iterator[SmtpServer]:
    """aiosmtpd in a thread. With `auth`, AUTH PLAIN/LOGIN is offered on the plain connection."""
    kwargs: dict = {}
    if auth:
        kwargs.update(authenticator=_authenticator, auth_require_tls=False)
    if tls_context is not None:
        kwargs.update(tls_context=tls_context, require_starttls=False)
    controller = Controller(_Sink(), hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port)
    finally:
        controller.stop()


def self_signed_tls_context() -> ssl.SSLContext:
    """A server context with a throw-away self-signed certificate: STARTTLS works, verification fails."""
    import tempfile

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = f"{tmp}/cert.pem", f"{tmp}/key.pem"
        with open(cert_path, "wb") as out:
            out.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
    return context


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts TCP connections and never says a word: a provider that hangs. Yields its port."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A port nothing listens on: connecting is refused."""
    return free_port()


async def _root(request: Request) -> JSONResponse:
    return JSONResponse({"service": "fake-sms"})


async def _broken(request: Request) -> JSONResponse:
    return JSONResponse({"error": "down"}, status_code=503)


async def _account(request: Request) -> JSONResponse:
    expected = "Basic " + base64.b64encode(f"{SMS_SID}:{SMS_TOKEN}".encode()).decode()
    if request.path_params["sid"] != SMS_SID:
        return JSONResponse({"message": "not found"}, status_code=404)
    if request.headers.get("authorization") != expected:
        return JSONResponse({"message": "Authenticate"}, status_code=401)
    return JSONResponse({"sid": SMS_SID, "status": "active"})


PROVIDER_APP = Starlette(
    routes=[
        Route("/", _root),
        Route("/broken/", _broken),
        Route("/2010-04-01/Accounts/{sid}.json", _account),
    ]
)


@contextlib.asynccontextmanager
async def http_provider() -> AsyncIterator[str]:
    """A Twilio-style API under a real uvicorn in this loop. Yields its base URL."""
    port = free_port()
    config = uvicorn.Config(PROVIDER_APP, host="127.0.0.1", port=port, log_config=None, access_log=False)
    async with uvicorn_serving(config):
        yield f"http://127.0.0.1:{port}"
