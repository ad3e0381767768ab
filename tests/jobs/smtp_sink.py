"""A real aiosmtpd SMTP server in the test's event loop, with knobs to misbehave."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import policy
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    message_id: str | None
    mail_from: str
    recipients: list[str]
    data: bytes
    connection: int

    @property
    def parsed(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class SinkHandler:
    received: list[Received] = field(default_factory=list)
    # Answer DATA with this reply for the first `fail_data_count` messages (e.g. "421 …", "451 …", "554 …").
    fail_data_reply: str = "451 4.3.0 Try again later"
    fail_data_count: int = 0
    # RCPT replies by address, e.g. {"gone@example.com": "550 5.1.1 No such user"}.
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    credentials: tuple[str, str] | None = None
    # Hang up instead of answering the end of DATA, for this many messages (the client cannot know the outcome).
    hang_up_on_data_count: int = 0
    connections: int = 0
    # Sessions that answer their next MAIL with 421 and hang up (a server-side idle timeout).
    expiring: set[int] = field(default_factory=set)
    protocols: dict[int, SMTP] = field(default_factory=dict)
    # The reply to an accepted DATA; relays name their own id in it (e.g. "250 Ok: queued as 4ABC").
    data_accept_reply: str = "250 2.0.0 OK queued"

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]):
        conn_id = id(server)
        if conn_id in self.expiring:
            self.expiring.discard(conn_id)
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.4.2 Idle timeout, closing connection"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]):
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        if self.hang_up_on_data_count > 0:
            self.hang_up_on_data_count -= 1
            server.transport.abort()
            return "250 never seen"
        if self.fail_data_count > 0:
            self.fail_data_count -= 1
            return self.fail_data_reply
        data = envelope.original_content or b""
        parsed = email.message_from_bytes(data, policy=policy.default)
        self.received.append(
            Received(parsed["Message-ID"], envelope.mail_from or "", list(envelope.rcpt_tos), data, id(server))
        )
        return self.data_accept_reply

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        return AuthResult(success=ok, handled=False)

    def expire_all(self) -> None:
        self.expiring.update(self.protocols)

    async def drop_all(self) -> None:
        """Hangs up every session and returns once each one's connection_lost has run."""
        closing = []
        for protocol in list(self.protocols.values()):
            if protocol.transport is not None:
                future = asyncio.get_running_loop().create_future()
                protocol.closed_future = future  # type: ignore[attr-defined]
                closing.append(future)
                protocol.transport.close()
        await asyncio.gather(*closing)

    @property
    def message_ids(self) -> list[str | None]:
        return [r.message_id for r in self.received]


def _tracking_smtp(handler: SinkHandler, **kwargs) -> type[SMTP]:
    class TrackingSMTP(SMTP):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if self._original_transport is None:  # the STARTTLS upgrade calls this a second time
                handler.connections += 1
                handler.protocols[id(self)] = self
            super().connection_made(transport)

        def connection_lost(self, error: Exception | None) -> None:
            handler.protocols.pop(id(self), None)
            super().connection_lost(error)
            closed = getattr(self, "closed_future", None)
            if closed is not None and not closed.done():
                closed.set_result(None)

    return TrackingSMTP


@dataclass
class Sink:
    handler: SinkHandler
    host: str
    port: int


@contextlib.asynccontextmanager
async def smtp_sink(
    handler: SinkHandler | None = None,
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    require_auth: bool = False,
) -> AsyncIterator[Sink]:
    handler = handler or SinkHandler()
    loop = asyncio.get_running_loop()
    smtp_class = _tracking_smtp(handler)
    kwargs = {
        "hostname": "sink.test",
        "tls_context": starttls,
        "require_starttls": starttls is not None,
        "auth_required": require_auth,
        # aiosmtpd only knows about TLS it negotiated itself (STARTTLS); plain tests still exercise AUTH.
        "auth_require_tls": starttls is not None,
        "authenticator": handler.authenticate,
        "loop": loop,
    }
    server = await loop.create_server(lambda: smtp_class(handler, **kwargs), "127.0.0.1", 0, ssl=implicit_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Sink(handler, "127.0.0.1", port)
    finally:
        server.close()
        await handler.drop_all()
        await server.wait_closed()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost and its key, written as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def server_tls_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context
