"""EmailAdapter against a real aiosmtpd server: headers, pooling, reconnects, and the SMTP reply → result map."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from jobs.channels.base import Backoff, EmailContent, FailureCode, OutgoingMessage, SendStatus
from jobs.channels.email import EmailAdapter, SmtpTransport, TlsMode
from jobs.channels.email_message import EmailSender
from tests.conftest import free_port
from tests.jobs.smtp_sink import SinkHandler, self_signed_certificate, server_tls_context, smtp_sink

SENDER = EmailSender(
    from_address="news@shop.example",
    from_name="Shop News",
    reply_to_address="help@shop.example",
    unsubscribe_mailto="unsubscribe@shop.example",
)
FIXED_BACKOFF = Backoff(base=60, jitter=0)
# AUTH over plain loopback is deliberate in some tests (TLS has its own test).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def outgoing(n: int, *, prefix: str = "run1", domain: str = "example.com", attempt: int = 0) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(
            idempotency_key=f"{prefix}-{i}",
            address=f"user{i}@{domain}",
            content=EmailContent(
                subject=f"Hello {i}",
                html=f"<p>Hi user {i}</p>",
                text=f"Hi user {i}",
                unsubscribe_url=f"https://shop.example/u/{prefix}-{i}",
            ),
            attempt=attempt,
        )
        for i in range(n)
    ]


def adapter_for(sink, *, max_connections: int = 3, sender: EmailSender = SENDER, **transport) -> EmailAdapter:
    return EmailAdapter(
        SmtpTransport(host=sink.host, port=sink.port, max_connections=max_connections, timeout=5, **transport),
        sender,
        backoff=FIXED_BACKOFF,
    )


async def test_sends_a_batch_with_headers_and_reuses_pooled_connections():
    async with smtp_sink() as sink:
        adapter = adapter_for(sink, max_connections=3)
        try:
            results = await adapter.send_batch(outgoing(30))
            results += await adapter.send_batch(outgoing(10, prefix="run2"))
        finally:
            await adapter.close()

    assert [r.status for r in results] == [SendStatus.SENT] * 40
    assert results[0].provider_message_id == "<run1-0@shop.example>"
    received = sink.handler.received
    assert sorted(r.message_id for r in received) == sorted(r.provider_message_id for r in results)
    # Two batches, 40 messages, at most three sessions ever opened.
    assert sink.handler.connections <= 3
    assert adapter.pool.connections_opened == sink.handler.connections

    by_id = {r.message_id: r for r in received}
    first = by_id["<run1-0@shop.example>"]
    assert first.recipients == ["user0@example.com"]
    assert first.mail_from == "news@shop.example"
    parsed = first.parsed
    assert parsed["From"] == "Shop News <news@shop.example>"
    assert parsed["To"] == "user0@example.com"
    assert parsed["Reply-To"] == "help@shop.example"
    assert parsed["Subject"] == "Hello 0"
    assert parsed["Date"] is not None
    assert parsed["List-Unsubscribe"] == (
        "<https://shop.example/u/run1-0>, <mailto:unsubscribe@shop.example?subject=unsubscribe%20run1-0>"
    )
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content().strip() == "Hi user 0"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Hi user 0</p>"


async def test_transactional_mail_has_no_list_unsubscribe_and_bcc_only_in_the_envelope():
    sender = EmailSender(from_address="receipts@shop.example", marketing=False, bcc_address="archive@shop.example")
    async with smtp_sink() as sink:
        adapter = adapter_for(sink, sender=sender)
        try:
            [result] = await adapter.send_batch(outgoing(1))
        finally:
            await adapter.close()
    assert result.status is SendStatus.SENT
    [received] = sink.handler.received
    assert received.recipients == ["user0@example.com", "archive@shop.example"]
    parsed = received.parsed
    assert parsed["List-Unsubscribe"] is None and parsed["List-Unsubscribe-Post"] is None
    assert parsed["Bcc"] is None and b"archive@" not in received.data


async def test_recipient_refusals_map_to_bounce_kinds_and_the_session_carries_on():
    handler = SinkHandler(
        rcpt_replies={
            "user1@example.com": "550 5.1.1 No such user",
            "user2@example.com": "450 4.2.0 Greylisted, try later",
            "user3@example.com": "552 5.2.2 Mailbox full",
        }
    )
    async with smtp_sink(handler) as sink:
        adapter = adapter_for(sink, max_connections=1)
        try:
            results = await adapter.send_batch(outgoing(5, attempt=1))
        finally:
            await adapter.close()

    ok, bounced, greylisted, full, ok2 = results
    assert ok.status is SendStatus.SENT and ok2.status is SendStatus.SENT
    assert (bounced.status, bounced.reason, bounced.suppress_address, bounced.provider_code) == (
        SendStatus.HARD_FAIL,
        FailureCode.HARD_BOUNCE,
        True,
        "550",
    )
    assert (greylisted.status, greylisted.reason, greylisted.provider_code) == (
        SendStatus.RETRY,
        FailureCode.TEMPORARY,
        "450",
    )
    assert greylisted.retry_after == 120  # base 60 * 2^attempt(1)
    assert (full.status, full.reason, full.suppress_address) == (SendStatus.SOFT_FAIL, FailureCode.MAILBOX_FULL, False)
    assert sorted(sink.handler.message_ids) == ["<run1-0@shop.example>", "<run1-4@shop.example>"]
    assert sink.handler.connections == 1  # RSET after each refusal kept the one session usable


@pytest.mark.parametrize(
    ("reply", "status", "reason"),
    [
        ("421 4.3.2 Service shutting down", SendStatus.RETRY, FailureCode.TEMPORARY),
        ("451 4.3.0 Local error", SendStatus.RETRY, FailureCode.TEMPORARY),
        ("554 5.7.1 Message rejected as spam", SendStatus.HARD_FAIL, FailureCode.MESSAGE_REJECTED),
    ],
)
async def test_data_refusals_for_the_first_messages_then_acceptance(reply, status, reason):
    handler = SinkHandler(fail_data_reply=reply, fail_data_count=2)
    async with smtp_sink(handler) as sink:
        adapter = adapter_for(sink, max_connections=1)
        try:
            results = await adapter.send_batch(outgoing(4))
        finally:
            await adapter.close()
    assert [(r.status, r.reason) for r in results[:2]] == [(status, reason)] * 2
    assert results[0].provider_code == reply[:3]
    assert not results[0].suppress_address
    assert [r.status for r in results[2:]] == [SendStatus.SENT] * 2
    assert sink.handler.message_ids == ["<run1-2@shop.example>", "<run1-3@shop.example>"]
    if reply.startswith("421"):
        # 421 ends the session (aiosmtplib hangs up); the adapter opened a new one for each next message.
        assert sink.handler.connections == 3
    else:
        assert sink.handler.connections == 1


async def test_a_session_the_server_expired_is_replaced_without_failing_the_message():
    async with smtp_sink() as sink:
        adapter = adapter_for(sink, max_connections=2)
        try:
            first = await adapter.send_batch(outgoing(4))
            opened = sink.handler.connections
            sink.handler.expire_all()  # next MAIL on each pooled session: "421 idle timeout" and hang-up
            second = await adapter.send_batch(outgoing(4, prefix="run2"))
        finally:
            await adapter.close()
    assert [r.status for r in first + second] == [SendStatus.SENT] * 8
    assert sink.handler.connections > opened
    assert len(sink.handler.received) == 8


async def test_connections_dropped_between_batches_are_reestablished():
    async with smtp_sink() as sink:
        adapter = adapter_for(sink, max_connections=2)
        try:
            assert all(r.status is SendStatus.SENT for r in await adapter.send_batch(outgoing(4)))
            opened = sink.handler.connections
            await sink.handler.drop_all()
            results = await adapter.send_batch(outgoing(4, prefix="run2"))
        finally:
            await adapter.close()
    assert [r.status for r in results] == [SendStatus.SENT] * 4
    assert sink.handler.connections > opened


async def test_auth_required_and_wrong_password_is_a_hard_config_failure():
    handler = SinkHandler(credentials=("mailer", "s3cret"))
    async with smtp_sink(handler, require_auth=True) as sink:
        good = adapter_for(sink, username="mailer", password="s3cret")
        bad = adapter_for(sink, username="mailer", password="wrong")
        anonymous = adapter_for(sink)
        try:
            ok = await good.send_batch(outgoing(2))
            refused = await bad.send_batch(outgoing(2, prefix="bad"))
            unauthenticated = await anonymous.send_batch(outgoing(1, prefix="anon"))
        finally:
            for adapter in (good, bad, anonymous):
                await adapter.close()
    assert [r.status for r in ok] == [SendStatus.SENT] * 2
    assert [(r.status, r.reason, r.suppress_address) for r in refused] == [
        (SendStatus.HARD_FAIL, FailureCode.AUTH_FAILED, False)
    ] * 2
    # The server refuses MAIL without AUTH (530): the sender is refused, nothing reached the sink.
    assert unauthenticated[0].status is SendStatus.HARD_FAIL
    assert unauthenticated[0].reason is FailureCode.SENDER_REJECTED
    assert sorted(sink.handler.message_ids) == ["<run1-0@shop.example>", "<run1-1@shop.example>"]


@pytest.mark.parametrize("mode", [TlsMode.STARTTLS, TlsMode.TLS])
async def test_tls_modes_with_auth(tmp_path: Path, mode: TlsMode):
    cert, key = self_signed_certificate(tmp_path)
    context = server_tls_context(cert, key)
    handler = SinkHandler(credentials=("mailer", "s3cret"))
    tls_kwargs = {"starttls": context} if mode is TlsMode.STARTTLS else {"implicit_tls": context}
    async with smtp_sink(handler, require_auth=True, **tls_kwargs) as sink:
        adapter = adapter_for(sink, tls=mode, ca_file=str(cert), username="mailer", password="s3cret")
        try:
            results = await adapter.send_batch(outgoing(3))
        finally:
            await adapter.close()
    assert [r.status for r in results] == [SendStatus.SENT] * 3
    assert len(sink.handler.received) == 3


async def test_unreachable_server_is_a_retry_and_fails_fast():
    adapter = EmailAdapter(
        SmtpTransport(host="127.0.0.1", port=free_port(), max_connections=2, timeout=2), SENDER, backoff=FIXED_BACKOFF
    )
    try:
        results = await adapter.send_batch(outgoing(20))
    finally:
        await adapter.close()
    assert {(r.status, r.reason) for r in results} == {(SendStatus.RETRY, FailureCode.CONNECTION)}
    assert all(r.retry_after == 60 for r in results)


async def test_unusable_addresses_and_content_fail_without_touching_the_server():
    async with smtp_sink() as sink:
        adapter = adapter_for(sink)
        bad_address = OutgoingMessage("k1", "jösé@example.com", EmailContent("s", "<p>x</p>", None))
        no_body = OutgoingMessage("k2", "a@example.com", EmailContent("s", None, None))
        bad_header = OutgoingMessage("k3", "a@example.com", EmailContent("s", None, "x", headers=(("Bcc", "x@y"),)))
        idn = OutgoingMessage("k4", "a@bücher.example", EmailContent("s", None, "x"))
        try:
            results = await adapter.send_batch([bad_address, no_body, bad_header, idn])
        finally:
            await adapter.close()
    assert [(r.status, r.reason) for r in results[:3]] == [
        (SendStatus.HARD_FAIL, FailureCode.INVALID_ADDRESS),
        (SendStatus.HARD_FAIL, FailureCode.INVALID_MESSAGE),
        (SendStatus.HARD_FAIL, FailureCode.INVALID_MESSAGE),
    ]
    assert results[3].status is SendStatus.SENT
    assert sink.handler.received[0].recipients == ["a@xn--bcher-kva.example"]


async def test_adapters_for_one_transport_share_the_pool():
    from jobs.channels.email import SmtpPools

    async with smtp_sink() as sink:
        transport = SmtpTransport(host=sink.host, port=sink.port, max_connections=2, timeout=5)
        pools = SmtpPools()
        marketing = EmailAdapter(transport, SENDER, pool=pools.get(transport))
        receipts = EmailAdapter(
            transport, EmailSender("receipts@shop.example", marketing=False), pool=pools.get(transport)
        )
        try:
            results = await asyncio.gather(
                marketing.send_batch(outgoing(10)), receipts.send_batch(outgoing(10, prefix="rcpt"))
            )
            await marketing.close()  # the shared pool stays open for the other adapter
            results.append(await receipts.send_batch(outgoing(2, prefix="after")))
        finally:
            await pools.close()
    assert [r.status for batch in results for r in batch] == [SendStatus.SENT] * 22
    assert pools.get(transport) is not marketing.pool  # closed registry starts afresh
    assert sink.handler.connections <= 2


async def test_a_hang_up_after_data_is_a_retry_and_the_next_message_reconnects():
    handler = SinkHandler(hang_up_on_data_count=1)
    async with smtp_sink(handler) as sink:
        adapter = adapter_for(sink, max_connections=1)
        try:
            lost, ok = await adapter.send_batch(outgoing(2))
        finally:
            await adapter.close()
    # The server may or may not have kept it: retried later with the same Message-ID.
    assert (lost.status, lost.reason) == (SendStatus.RETRY, FailureCode.CONNECTION)
    assert ok.status is SendStatus.SENT
    assert sink.handler.connections == 2


async def test_the_relays_id_from_its_250_reply_is_kept_beside_the_message_id():
    handler = SinkHandler(data_accept_reply="250 Ok: queued as 14c5d75ce93dfd64b469")
    async with smtp_sink(handler) as sink:
        adapter = adapter_for(sink)
        try:
            [result] = await adapter.send_batch(outgoing(1))
        finally:
            await adapter.close()
    assert (result.provider_message_id, result.relay_id) == ("<run1-0@shop.example>", "14c5d75ce93dfd64b469")


class ClosingFirstSession(SinkHandler):
    """Closes the first session at its first MAIL with 421, as a server does to sessions opened before a password
    change or a restart: nothing was accepted on it."""

    closed_one: bool = False

    async def handle_MAIL(self, server, session, envelope, address, options):
        if not self.closed_one:
            self.closed_one = True
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.4.2 Closing connection"
        return await super().handle_MAIL(server, session, envelope, address, options)


async def test_a_new_session_closed_at_its_first_mail_is_sent_again_on_a_fresh_one_at_once():
    # Before, only a reused session was: a new one closed so made the message a retry an hour of backoff away, and
    # a password change mid-run could end a batch with retries instead of the pause its next login would show.
    handler = ClosingFirstSession()
    async with smtp_sink(handler) as sink:
        adapter = adapter_for(sink, max_connections=1)
        try:
            results = await adapter.send_batch(outgoing(1))
        finally:
            await adapter.close()
    assert [r.status for r in results] == [SendStatus.SENT]
    assert handler.closed_one and handler.connections == 2


async def test_the_server_gets_the_composed_bytes_as_they_are_with_leading_dots_doubled_on_the_wire():
    # The composer's bytes go out without aiosmtplib's normalising pass (email._data): lines starting with a dot
    # must still be doubled on the wire, else the server reads "." alone as the end of the message.
    text = ".\n.hidden\n..two\nplain . line\n"
    html = "<p>a</p>\n.<p>b</p>"
    message = OutgoingMessage("dots-1", "user1@example.com", EmailContent("Dots", html, text))
    adapter = None
    async with smtp_sink() as sink:
        adapter = adapter_for(sink, max_connections=1)
        try:
            [result] = await adapter.send_batch([message])
            [again] = await adapter.send_batch([dataclasses.replace(message, idempotency_key="dots-2")])
        finally:
            await adapter.close()
    assert (result.status, again.status) == (SendStatus.SENT, SendStatus.SENT)
    [first, second] = sink.handler.received
    composed = adapter.composer.compose(message.content, message.address, "dots-1")  # type: ignore[arg-type]
    assert composed.canonical
    # The Date header may differ by a second: everything else byte for byte.
    assert _without_date(first.data) == _without_date(composed.data)
    parsed = first.parsed
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert parsed.get_body(("html",)).get_content().replace("\r\n", "\n") == html
    assert second.message_id == "<dots-2@shop.example>"


def _without_date(data: bytes) -> bytes:
    return b"\r\n".join(line for line in data.split(b"\r\n") if not line.startswith(b"Date: "))


@pytest.mark.parametrize(
    "address",
    ["user@example.com", "first.last+tag@mail.example.org", "o'brien@example.ie", "a!#$%&*/=?^_`{|}~-@x-y.example"],
)
def test_plain_addresses_go_on_the_command_line_as_aiosmtplib_quotes_them(address: str) -> None:
    from aiosmtplib.email import quote_address

    from jobs.channels.email import _PLAIN_ADDRESS

    assert _PLAIN_ADDRESS.fullmatch(address)
    assert quote_address(address) == f"<{address}>"


@pytest.mark.parametrize("address", ['"quoted local"@example.com', "a@b (comment)", "<a@b.example>", "a b@c.example"])
def test_other_addresses_take_aiosmtplib_path(address: str) -> None:
    from jobs.channels.email import _PLAIN_ADDRESS

    assert _PLAIN_ADDRESS.fullmatch(address) is None


async def test_every_message_of_a_session_names_its_sender_and_recipients():
    bcc = dataclasses.replace(SENDER, bcc_address="archive@shop.example", error_address="bounces@shop.example")
    async with smtp_sink(SinkHandler()) as sink:
        adapter = adapter_for(sink, max_connections=1, sender=bcc)
        try:
            results = await adapter.send_batch(outgoing(3))
        finally:
            await adapter.close()
    assert [r.status for r in results] == [SendStatus.SENT] * 3
    assert sink.handler.connections == 1  # the 2nd and 3rd messages went on the greeted session
    for i, received in enumerate(sorted(sink.handler.received, key=lambda r: r.message_id or "")):
        assert received.mail_from == "bounces@shop.example"
        assert received.recipients == [f"user{i}@example.com", "archive@shop.example"]
