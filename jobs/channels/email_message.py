"""Builds RFC 5322 message bytes straight from rendered parts.

Going through `email.message.EmailMessage` costs ~0.6 ms a message (STACK-NOTES); the hot path instead
writes the few headers it needs and 7bit or base64 bodies. The stdlib still does the tricky parts: RFC 2047
encoded words (`email.header.Header`) and display names (`formataddr`).
"""

from __future__ import annotations

import binascii
import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from urllib.parse import quote

from jobs.channels.base import EmailContent

CRLF = b"\r\n"
BOUNDARY = "=_herald_alt"
_NEWLINES = re.compile(r"[\r\n]+")
# RFC 5322 atext minus "=" (our escape character) and "." (dot-atom rules); everything else is =XX-escaped.
_MSGID_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+\-/?^_`{|}~]")
_URL_SAFE = re.compile(r"[A-Za-z0-9_.\-~]*")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,76}$")
# Headers the composer owns; a message may not set them through `EmailContent.headers`.
_RESERVED = frozenset(
    name.lower()
    for name in (
        "From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version", "Content-Type",
        "Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post", "Return-Path", "Sender",
    )
)  # fmt: skip


class InvalidAddressError(ValueError):
    """The address cannot be sent without SMTPUTF8 (or is not an address at all)."""


@dataclass(frozen=True, slots=True)
class EmailSender:
    """The sending identity of an email preset."""

    from_address: str
    from_name: str | None = None
    reply_to_address: str | None = None
    reply_to_name: str | None = None
    # Envelope sender (bounces go there); defaults to `from_address`.
    error_address: str | None = None
    bcc_address: str | None = None
    # Marketing mail carries List-Unsubscribe (+ one-click) when `list_unsubscribe` is on.
    marketing: bool = True
    list_unsubscribe: bool = True
    # Mailbox for the List-Unsubscribe mailto: variant.
    unsubscribe_mailto: str | None = None


def ascii_address(address: str) -> str:
    """The address in ASCII: IDNA for the domain; a non-ASCII local part would need SMTPUTF8, which we refuse."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or _NEWLINES.search(address) or " " in address:
        raise InvalidAddressError(f"not an email address: {address!r}")
    if address.isascii():
        return address
    if not local.isascii():
        raise InvalidAddressError(f"non-ASCII local part needs SMTPUTF8: {address!r}")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as exc:
        raise InvalidAddressError(f"bad domain in {address!r}") from exc


def message_id(idempotency_key: str, domain: str) -> str:
    """`<key@domain>`, stable for a delivery across attempts; unsafe characters become `=XX`."""
    local = _MSGID_UNSAFE.sub(lambda m: "".join(f"={b:02X}" for b in m.group().encode()), idempotency_key)
    return f"<{local}@{domain}>"


def _one_line(value: str) -> str:
    return _NEWLINES.sub(" ", value).strip()


def _header(name: str, value: str) -> bytes:
    """`Name: value` CRLF, with RFC 2047 words and folding only when the value needs them."""
    value = _one_line(value)
    if value.isascii() and len(value) + len(name) < 76:
        return f"{name}: {value}\r\n".encode("ascii")
    encoded = Header(value, header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


def _address_header(name: str, address: str, display_name: str | None) -> bytes:
    address = ascii_address(address)
    if not display_name:
        return f"{name}: {address}\r\n".encode("ascii")
    return f"{name}: {email.utils.formataddr((_one_line(display_name), address), 'utf-8')}\r\n".encode("ascii")


def _encode_part(text: str, subtype: str) -> tuple[bytes, bytes]:
    """(part headers, body): ASCII text with short lines goes as 7bit, as is; anything else as base64.

    Both are C-speed (quoted-printable through `binascii.b2a_qp` measured ~80 µs for a 2 KB body). Text is
    put in canonical form (CRLF line ends) before encoding, as RFC 2046 asks of text parts.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii() and "\x00" not in text and BOUNDARY not in text and max(map(len, text.split("\n"))) <= 998:
        return _PART_HEADERS[subtype, "7bit"], text.replace("\n", "\r\n").encode("ascii")
    encoded = binascii.b2a_base64(text.replace("\n", "\r\n").encode("utf-8"), newline=False)
    return _PART_HEADERS[subtype, "base64"], CRLF.join([encoded[i : i + 76] for i in range(0, len(encoded), 76)])


_PART_HEADERS = {
    (
        subtype,
        cte,
    ): f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'.encode()
    for subtype in ("plain", "html")
    for cte in ("7bit", "base64")
}
_ALTERNATIVE = f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{BOUNDARY}"\r\n'.encode()
_DELIMITER = f"--{BOUNDARY}\r\n".encode()
_CLOSE = f"--{BOUNDARY}--\r\n".encode()


@dataclass(frozen=True, slots=True)
class ComposedEmail:
    envelope_from: str
    recipients: tuple[str, ...]  # the addressee first, then BCC
    message_id: str
    data: bytes
    # Every line ends in CRLF, none alone (EmailComposer's output): sent as is, without a pass to normalise it.
    canonical: bool = False


class EmailComposer:
    """Per-sender constant headers are encoded once; `compose` only formats what changes per message."""

    def __init__(self, sender: EmailSender) -> None:
        self.sender = sender
        from_address = ascii_address(sender.from_address)
        self.domain = from_address.rpartition("@")[2]
        self.envelope_from = ascii_address(sender.error_address or sender.from_address)
        self.bcc = (ascii_address(sender.bcc_address),) if sender.bcc_address else ()
        fixed = _address_header("From", from_address, sender.from_name)
        if sender.reply_to_address:
            fixed += _address_header("Reply-To", sender.reply_to_address, sender.reply_to_name)
        self._fixed_headers = fixed
        self._unsubscribe = sender.marketing and sender.list_unsubscribe
        self._mailto = ascii_address(sender.unsubscribe_mailto) if sender.unsubscribe_mailto else None
        self._date_for: datetime | None = None
        self._date_header = ""

    def _list_unsubscribe(self, content: EmailContent, key: str) -> bytes:
        if not self._unsubscribe:
            return b""
        targets = []
        if content.unsubscribe_url:
            targets.append(f"<{_one_line(content.unsubscribe_url)}>")
        if self._mailto:
            token = key if _URL_SAFE.fullmatch(key) else quote(key, safe="")
            targets.append(f"<mailto:{self._mailto}?subject=unsubscribe%20{token}>")
        if not targets:
            return b""
        # Folded between the URIs so a long URL never pushes one line past 998 octets.
        lines = ("List-Unsubscribe: " + ",\r\n ".join(targets) + "\r\n").encode("ascii")
        if content.unsubscribe_url:
            lines += b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        return lines

    def compose(
        self, content: EmailContent, to: str, idempotency_key: str, *, now: datetime | None = None
    ) -> ComposedEmail:
        """Raises InvalidAddressError for an unusable recipient, ValueError for an unusable message."""
        to = ascii_address(to)
        mid = message_id(idempotency_key, self.domain)
        if now is None:
            now = datetime.now(UTC).replace(microsecond=0)
            if now != self._date_for:  # formatting the date is a fair share of the cost: once a second
                self._date_for, self._date_header = now, email.utils.format_datetime(now)
            date = self._date_header
        else:
            date = email.utils.format_datetime(now)
        parts = [
            self._fixed_headers,
            f"To: {to}\r\n".encode("ascii"),
            _header("Subject", content.subject),
            f"Date: {date}\r\nMessage-ID: {mid}\r\n".encode("ascii"),
            self._list_unsubscribe(content, idempotency_key),
        ]
        for name, value in content.headers:
            if not _HEADER_NAME.match(name) or name.lower() in _RESERVED:
                raise ValueError(f"header {name!r} cannot be set by a message")
            parts.append(_header(name, value))
        if content.text is not None and content.html is not None:
            # The CRLF before a boundary delimiter belongs to the delimiter (RFC 2046), hence one after each body.
            parts += [_ALTERNATIVE, CRLF, _DELIMITER, *_encode_part(content.text, "plain"), CRLF]
            parts += [_DELIMITER, *_encode_part(content.html, "html"), CRLF, _CLOSE]
        elif content.html is not None or content.text is not None:
            single = (content.html, "html") if content.html is not None else (content.text, "plain")
            parts += [b"MIME-Version: 1.0\r\n", *_encode_part(*single), CRLF]  # type: ignore[arg-type]
        else:
            raise ValueError("an email needs an HTML or a text part")
        return ComposedEmail(self.envelope_from, (to, *self.bcc), mid, b"".join(parts), canonical=True)
