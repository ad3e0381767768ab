"""The local SMTP sink of a first run: `herald serve` on embedded defaults accepts mail on 127.0.0.1 and keeps
every message in a Maildir (DATA_DIR/mail), so a demo campaign can be sent and read without a mail provider.

`herald serve` runs it on an event loop of its own in a thread (`SinkThread`), before the web server, so a
port already taken stops the start with a clear message (mail would otherwise go to whoever holds it), and
one sink serves any number of web processes. It dies with the process and relays nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import mailbox
import threading
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


class SinkPortTakenError(RuntimeError):
    pass


async def start_mail_sink(data_dir: Path, port: int) -> MailSink:
    """Listen on 127.0.0.1:`port`; SinkPortTakenError when the port is taken, e.g. by another `herald serve`."""
    path = maildir_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = MaildirHandler(path)
    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {"hostname": "herald-sink.localhost", "loop": loop}
    try:
        server = await loop.create_server(lambda: SMTP(handler, **kwargs), SINK_HOST, port)
    except OSError as exc:
        raise SinkPortTakenError(
            f"the local SMTP sink cannot listen on {SINK_HOST}:{port} ({exc.strerror or exc}); something else holds "
            "the port (another `herald serve`?). Stop it, choose a free port with SMTP_SINK_PORT, or run without "
            "the sink with SMTP_SINK=false."
        ) from exc
    bound = server.sockets[0].getsockname()[1]
    logger.info("local SMTP sink on %s:%s keeps mail in %s", SINK_HOST, bound, path)
    return MailSink(server, bound, path)


class SinkThread:
    """The sink on its own event loop in a daemon thread, for a process whose main loop belongs to uvicorn."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> MailSink:
        started: concurrent.futures.Future[MailSink] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                sink = self._loop.run_until_complete(start_mail_sink(self.data_dir, self.port))
            except BaseException as exc:
                started.set_exception(exc)
                self._loop.close()
                return
            started.set_result(sink)
            self._loop.run_forever()
            self._loop.run_until_complete(sink.close())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="smtp-sink", daemon=True)
        self._thread.start()
        return started.result(timeout=timeout)

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
