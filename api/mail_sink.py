"""The local SMTP sink of a first run: `herald serve` on embedded defaults accepts mail on 127.0.0.1 and keeps
every message in a Maildir (DATA_DIR/mail), so a demo campaign can be sent and read without a mail provider.

It runs in the app's event loop (aiosmtpd's protocol on `loop.create_server`), so it starts and stops with
the lifespan and never outlives the process. It relays nothing.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

logger = logging.getLogger(__name__)
# aiosmtpd logs every command of every session at INFO; a sink taking thousands of messages needs none of it.
logging.getLogger("mail.log").setLevel(logging.WARNING)

SINK_HOST = "127.0.0.1"


def maildir_path(data_dir: Path) -> Path:
    return data_dir / "mail"


class MaildirHandler:
    """Stores each accepted message, with the envelope as headers, in a Maildir."""

    def __init__(self, path: Path) -> None:
        self.maildir = mailbox.Maildir(path, create=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        envelope_headers = (
            f"X-Herald-Sink-From: {envelope.mail_from or ''}\r\nX-Herald-Sink-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        # A file write per message: fine for a development sink, and off the event loop.
        await asyncio.to_thread(self.maildir.add, envelope_headers + data)
        return "250 2.0.0 OK kept in the local Maildir"


@dataclass
class MailSink:
    server: asyncio.Server
    port: int
    path: Path

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def start_mail_sink(data_dir: Path, port: int) -> MailSink | None:
    """Listen on 127.0.0.1:`port`; None (logged) when the port is taken, e.g. by another `herald serve`."""
    path = maildir_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = MaildirHandler(path)
    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {"hostname": "herald-sink.localhost", "loop": loop}
    try:
        server = await loop.create_server(lambda: SMTP(handler, **kwargs), SINK_HOST, port)
    except OSError as exc:
        logger.warning("local SMTP sink not started on %s:%s: %s", SINK_HOST, port, exc)
        return None
    bound = server.sockets[0].getsockname()[1]
    logger.info("local SMTP sink on %s:%s keeps mail in %s", SINK_HOST, bound, path)
    return MailSink(server, bound, path)
