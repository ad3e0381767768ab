"""Email over SMTP with aiosmtplib: a connection pool per transport, one SMTP transaction per message.

The transaction is driven command by command (MAIL, RCPT, DATA) rather than through `sendmail`, so the
result says which step failed: a refused recipient is a bounce, a refused DATA is a rejected message, and
a connection that died before MAIL on a reused connection can be replaced and the message sent at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from dataclasses import dataclass, field
from enum import StrEnum

import aiosmtplib

from jobs.channels.base import (
    Backoff,
    ConcurrentAdapter,
    EmailContent,
    FailureCode,
    OutgoingMessage,
    SendResult,
)
from jobs.channels.bounces import SmtpVerdict, classify_smtp_reply, relay_id
from jobs.channels.egress import EgressRefused, open_socket
from jobs.channels.email_message import ComposedEmail, EmailComposer, EmailSender, InvalidAddressError
from models.egress_rules import DEV_POLICY, EgressPolicy

logger = logging.getLogger(__name__)

__all__ = ["EmailAdapter", "EmailSender", "SmtpPool", "SmtpPools", "SmtpTransport", "TlsMode"]


class TlsMode(StrEnum):
    NONE = "NONE"
    STARTTLS = "STARTTLS"
    TLS = "TLS"  # implicit TLS (usually port 465)


@dataclass(frozen=True, slots=True)
class SmtpTransport:
    host: str
    port: int
    tls: TlsMode = TlsMode.NONE
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    max_connections: int = 5
    timeout: float = 30.0
    # Servers often cap messages per session; we open a fresh one before they have to say so.
    max_messages_per_connection: int = 1000
    validate_certs: bool = True
    ca_file: str | None = None
    local_hostname: str | None = None
    # Where `host` may point; the worker passes the settings' policy.
    egress: EgressPolicy = DEV_POLICY


class _ConnectFailed(Exception):
    def __init__(self, result_kind: str, code: int | None, message: str) -> None:
        super().__init__(message)
        self.result_kind = result_kind  # "retry" | "auth" | "config" | "refused"
        self.code = code


class _Stale(Exception):
    """The connection was gone before the server accepted anything for this message."""


class _Connection:
    __slots__ = ("messages", "smtp")

    def __init__(self, smtp: aiosmtplib.SMTP) -> None:
        self.smtp = smtp
        self.messages = 0


class SmtpPool:
    """Up to `max_connections` SMTP sessions to one server, reused across messages and batches.

    After a failed connect, new connects are refused for `connect_hold` seconds with the same error, so a
    batch against a dead server fails fast instead of waiting out one connect timeout per message.
    """

    def __init__(self, transport: SmtpTransport, *, connect_hold: float = 1.0) -> None:
        self.transport = transport
        self.connect_hold = connect_hold
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(transport.max_connections)
        self._held_until = 0.0
        self._held_error: _ConnectFailed | None = None
        self._closed = False
        self._quitting: set[asyncio.Task[None]] = set()
        self.connections_opened = 0

    async def _connect(self) -> _Connection:
        if self._held_error is not None and time.monotonic() < self._held_until:
            raise self._held_error
        t = self.transport
        try:
            sock = await open_socket(t.host, t.port, t.egress, t.timeout)
        except EgressRefused as exc:
            error = _ConnectFailed("refused", None, str(exc))
            self._hold(error)
            raise error from exc
        except (OSError, TimeoutError) as exc:
            error = _ConnectFailed("retry", None, f"SMTP connect to {t.host}:{t.port} failed: {exc!r}")
            self._hold(error)
            raise error from exc
        # Connected to the checked address; the name stays the TLS server name.
        smtp = aiosmtplib.SMTP(
            hostname=t.host,
            sock=sock,
            use_tls=t.tls is TlsMode.TLS,
            start_tls=t.tls is TlsMode.STARTTLS,
            validate_certs=t.validate_certs,
            cert_bundle=t.ca_file,
            timeout=t.timeout,
            local_hostname=t.local_hostname,
            username=t.username,
            password=t.password,
        )
        try:
            await smtp.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            smtp.close()
            sock.close()  # aiosmtplib may fail before its transport owns the socket
            kind = "auth" if exc.code >= 500 else "retry"
            error = _ConnectFailed(kind, exc.code, f"SMTP authentication refused: {exc.code} {exc.message}")
            self._hold(error)
            raise error from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            sock.close()
            code = getattr(exc, "code", None)
            # STARTTLS missing or a certificate that does not verify: the preset's setup, no retry will cure it.
            kind = "config" if _is_configuration_error(exc) else "retry"
            error = _ConnectFailed(kind, code, f"SMTP connect to {t.host}:{t.port} failed: {exc}")
            self._hold(error)
            raise error from exc
        self._held_error = None
        self.connections_opened += 1
        return _Connection(smtp)

    def _hold(self, error: _ConnectFailed) -> None:
        self._held_error = error
        self._held_until = time.monotonic() + self.connect_hold

    async def acquire(self, *, fresh: bool = False) -> tuple[_Connection, bool]:
        """A connection and whether it was reused (reused ones may have been dropped by the server)."""
        await self._slots.acquire()
        try:
            while self._idle and not fresh:
                conn = self._idle.pop()
                if conn.smtp.is_connected:
                    return conn, True
            return await self._connect(), False
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: _Connection) -> None:
        keep = (
            not self._closed and conn.smtp.is_connected and conn.messages < self.transport.max_messages_per_connection
        )
        if keep:
            self._idle.append(conn)
        else:
            self._retire(conn)
        self._slots.release()

    def _retire(self, conn: _Connection) -> None:
        if conn.smtp.is_connected:
            # Polite QUIT in the background; the server may already be gone.
            task = asyncio.get_running_loop().create_task(_quit(conn.smtp))
            self._quitting.add(task)
            task.add_done_callback(self._quitting.discard)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(conn.smtp) for conn in idle), *self._quitting)


class SmtpPools:
    """One pool per transport config for a worker process: runs of presets sharing an SMTP server share sessions.

    Keep one in the worker's ctx and `close()` it at shutdown.
    """

    def __init__(self) -> None:
        self._pools: dict[SmtpTransport, SmtpPool] = {}

    def get(self, transport: SmtpTransport) -> SmtpPool:
        pool = self._pools.get(transport)
        if pool is None:
            pool = self._pools[transport] = SmtpPool(transport)
        return pool

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools))


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.quit(timeout=2)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        smtp.close()


# A permanent RCPT refusal by verdict (jobs/channels/bounces.py); only HARD_BOUNCE suppresses the address.
_RCPT_FAILURES = {
    SmtpVerdict.HARD_BOUNCE: FailureCode.HARD_BOUNCE,
    SmtpVerdict.MAILBOX_FULL: FailureCode.MAILBOX_FULL,
    SmtpVerdict.SENDER: FailureCode.SENDER_REJECTED,
    SmtpVerdict.AUTH: FailureCode.AUTH_FAILED,
    SmtpVerdict.MESSAGE: FailureCode.MESSAGE_REJECTED,
    SmtpVerdict.REMOTE: FailureCode.PROVIDER_REJECTED,
}

_DATA_ADDRESS_VERDICTS = frozenset({SmtpVerdict.HARD_BOUNCE, SmtpVerdict.AUTH})


def _refused(verdict: SmtpVerdict, failure: FailureCode, detail: str, code: int) -> SendResult:
    if verdict is SmtpVerdict.MAILBOX_FULL:
        return SendResult.soft_fail(FailureCode.MAILBOX_FULL, detail, provider_code=str(code))
    suppress = verdict is SmtpVerdict.HARD_BOUNCE
    return SendResult.hard_fail(failure, detail, suppress=suppress, provider_code=str(code))


class EmailAdapter(ConcurrentAdapter):
    """Sends `OutgoingMessage`s with `EmailContent` through one SMTP server as one sender."""

    def __init__(
        self,
        transport: SmtpTransport,
        sender: EmailSender,
        *,
        backoff: Backoff | None = None,
        pool: SmtpPool | None = None,
    ) -> None:
        super().__init__(max_concurrency=transport.max_connections, backoff=backoff)
        # Pass a shared pool (SmtpPools.get) when several adapters use one server; closing the adapter then
        # leaves the pool to its owner.
        self._owns_pool = pool is None
        self.pool = pool or SmtpPool(transport)
        self.composer = EmailComposer(sender)

    async def send_one(self, message: OutgoingMessage) -> SendResult:
        content = message.content
        if not isinstance(content, EmailContent):
            return SendResult.hard_fail(FailureCode.INVALID_MESSAGE, f"not email content: {type(content).__name__}")
        try:
            composed = self.composer.compose(content, message.address, message.idempotency_key)
        except InvalidAddressError as exc:
            return SendResult.hard_fail(FailureCode.INVALID_ADDRESS, str(exc))
        except ValueError as exc:
            return SendResult.hard_fail(FailureCode.INVALID_MESSAGE, str(exc))
        return await self.send_composed(composed, attempt=message.attempt)

    async def send_composed(self, composed: ComposedEmail, *, attempt: int = 0) -> SendResult:
        for fresh in (False, True):
            try:
                conn, reused = await self.pool.acquire(fresh=fresh)
            except _ConnectFailed as exc:
                if exc.result_kind == "auth":
                    return SendResult.hard_fail(FailureCode.AUTH_FAILED, str(exc), provider_code=str(exc.code))
                if exc.result_kind == "config":
                    return SendResult.hard_fail(FailureCode.CONFIGURATION, str(exc), provider_code=_code(exc.code))
                if exc.result_kind == "refused":
                    return SendResult.hard_fail(FailureCode.ADDRESS_NOT_ALLOWED, str(exc))
                return self._retry(attempt, FailureCode.CONNECTION, str(exc), exc.code)
            try:
                return await self._transact(conn, composed, attempt)
            except _Stale as exc:
                if fresh:
                    return self._retry(attempt, FailureCode.CONNECTION, str(exc))
                # A session the server dropped or closed (421) before accepting anything: send on a fresh one now,
                # once. A server closing its sessions after a password change then answers the login itself.
                logger.info("SMTP connection dropped by the server; reconnecting (%s)", "pooled" if reused else "new")
            finally:
                self.pool.release(conn)
        raise AssertionError("unreachable: a fresh connection is never reused")

    def _retry(self, attempt: int, reason: FailureCode, message: str, code: int | None = None) -> SendResult:
        return SendResult.retry(
            self.backoff.delay(attempt), reason, message, provider_code=str(code) if code is not None else None
        )

    async def _transact(self, conn: _Connection, composed: ComposedEmail, attempt: int) -> SendResult:
        smtp = conn.smtp
        conn.messages += 1
        options = [f"SIZE={len(composed.data)}"] if smtp.supports_extension("size") else None
        try:
            await _mail(smtp, composed.envelope_from, options)
        except aiosmtplib.SMTPServerDisconnected as exc:
            raise _Stale(str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the server closes the session (e.g. idle timeout); aiosmtplib closed it too
                raise _Stale(f"{exc.code} {exc.message}") from exc
            await _reset(smtp, exc.code)
            refusal = classify_smtp_reply(exc.code, exc.message)
            if refusal.verdict is SmtpVerdict.RETRY:
                return self._retry(attempt, FailureCode.TEMPORARY, f"MAIL FROM: {exc.message}", exc.code)
            # Whatever the code says, a refused sender is no fact about the recipient.
            failure = FailureCode.AUTH_FAILED if refusal.verdict is SmtpVerdict.AUTH else FailureCode.SENDER_REJECTED
            if _STARTTLS_REQUIRED.search(exc.message):
                failure = FailureCode.CONFIGURATION  # "530 5.7.0 Must issue a STARTTLS command first"
            return SendResult.hard_fail(failure, f"MAIL FROM refused: {exc.message}", provider_code=str(exc.code))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            return self._retry(attempt, _transport_reason(exc), f"MAIL FROM: {exc!r}")

        recipient, *bcc = composed.recipients
        try:
            await _rcpt(smtp, recipient)
            for extra in bcc:
                try:
                    await _rcpt(smtp, extra)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    # The BCC copy is the sender's business; the delivery's outcome is the addressee's.
                    logger.warning("BCC %s refused: %s %s", extra, exc.code, exc.message)
        except aiosmtplib.SMTPRecipientRefused as exc:
            await _reset(smtp, exc.code)
            detail = f"RCPT TO refused: {exc.code} {exc.message}"
            verdict = classify_smtp_reply(exc.code, exc.message).verdict
            if verdict is SmtpVerdict.RETRY:
                return self._retry(attempt, FailureCode.TEMPORARY, detail, exc.code)
            return _refused(verdict, _RCPT_FAILURES[verdict], detail, exc.code)
        except aiosmtplib.SMTPServerDisconnected as exc:
            raise _Stale(str(exc)) from exc  # before DATA nothing was accepted
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            return self._retry(attempt, _transport_reason(exc), f"RCPT TO: {exc!r}")

        try:
            accepted = await _data(smtp, composed) if composed.canonical else await smtp.data(composed.data)
        except aiosmtplib.SMTPDataError as exc:
            await _reset(smtp, exc.code)
            detail = f"DATA refused: {exc.code} {exc.message}"
            verdict = classify_smtp_reply(exc.code, exc.message).verdict
            if verdict is SmtpVerdict.RETRY:
                return self._retry(attempt, FailureCode.TEMPORARY, detail, exc.code)
            # After DATA a policy refusal is about this message; an address verdict still stands.
            failure = _RCPT_FAILURES[verdict] if verdict in _DATA_ADDRESS_VERDICTS else FailureCode.MESSAGE_REJECTED
            return _refused(verdict, failure, detail, exc.code)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # The server may or may not have the message; a resend carries the same Message-ID.
            smtp.close()
            return self._retry(attempt, _transport_reason(exc), f"DATA: {exc!r}")
        return SendResult.sent(composed.message_id, relay_id=relay_id(accepted.message))

    async def close(self) -> None:
        if self._owns_pool:
            await self.pool.close()


# An address `aiosmtplib.email.quote_address` would send as `<address>` unchanged: dot-atom characters only, so
# parsing it as a header (email.utils.parseaddr, ~15 us for the MAIL and RCPT of a message) is skipped.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


async def _mail(smtp: aiosmtplib.SMTP, sender: str, options: list[str] | None) -> None:
    """`SMTP.mail`, raising as it does; a session already greeted and a plain address go straight to the command."""
    if smtp.is_ehlo_or_helo_needed or not _PLAIN_ADDRESS.fullmatch(sender):
        await smtp.mail(sender, options=options)
        return
    extra = [option.encode("ascii") for option in options] if options else []
    response = await smtp.execute_command(b"MAIL", b"FROM:<" + sender.encode("ascii") + b">", *extra)
    if response.code != aiosmtplib.SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)


async def _rcpt(smtp: aiosmtplib.SMTP, recipient: str) -> None:
    """`SMTP.rcpt`, raising as it does, the same shortcut as `_mail` for a plain address."""
    if not _PLAIN_ADDRESS.fullmatch(recipient):
        await smtp.rcpt(recipient)
        return
    response = await smtp.execute_command(b"RCPT", b"TO:<" + recipient.encode("ascii") + b">")
    if response.code not in (aiosmtplib.SMTPStatus.completed, aiosmtplib.SMTPStatus.will_forward):
        raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, recipient)


# A line starting with "." (RFC 5321 4.5.2: the client doubles it).
_LEADING_DOT = re.compile(rb"(?m)^\.")


async def _data(smtp: aiosmtplib.SMTP, composed: ComposedEmail) -> aiosmtplib.SMTPResponse:
    """DATA with the composer's bytes as they are: every line of them already ends in CRLF, so aiosmtplib's own
    pass over the whole message (two regular expressions, ~50 us for 4 KB, a tenth of a message's CPU) is
    skipped. Lines starting with a dot are still doubled. Raises as `SMTP.data` does."""
    data = composed.data
    if data[:1] == b"." or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    start = await smtp.execute_command(b"DATA")  # closes the session itself on a lost connection or timeout
    if start.code != aiosmtplib.SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol = smtp.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    try:
        # One write, then the reply: nothing runs in between, so the reply cannot arrive unawaited.
        protocol.write(data + b".\r\n")
        response = await protocol.read_response(timeout=smtp.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        smtp.close()
        raise
    if response.code != aiosmtplib.SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response


_STARTTLS_REQUIRED = re.compile(r"starttls|\btls\b.*\brequired|encryption required", re.IGNORECASE)


def _is_configuration_error(exc: BaseException) -> bool:
    """STARTTLS not offered by a server the preset wants it from, or a certificate that does not verify."""
    causes = [exc, exc.__cause__, exc.__context__]
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in causes):
        return True
    return isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS extension not supported" in str(exc)


def _code(code: int | None) -> str | None:
    return str(code) if code is not None else None


def _transport_reason(exc: BaseException) -> FailureCode:
    return FailureCode.TIMEOUT if isinstance(exc, TimeoutError) else FailureCode.CONNECTION


async def _reset(smtp: aiosmtplib.SMTP, code: int) -> None:
    """RSET after a refusal so the session can carry the next message; a session that cannot is closed."""
    if code == 421:  # "closing transmission channel": aiosmtplib only hangs up itself outside DATA
        smtp.close()
    if not smtp.is_connected:
        return
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        smtp.close()
