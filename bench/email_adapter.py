"""EmailAdapter msgs/s vs the same pre-rendered bytes through the same aiosmtplib pool (DESIGN §10: ≥ 0.7).

The SMTP sink (aiosmtpd's Sink handler) runs in another process. Both sides use an `SmtpPool` of the same
size; the reference sends bytes composed beforehand with plain `sendmail`, the adapter composes each message
from its rendered parts and runs its own MAIL/RCPT/DATA transaction. Rounds alternate so drift hits both.

    python bench/email_adapter.py [--messages 1000] [--connections 10] [--rounds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.channels.base import EmailContent, OutgoingMessage, SendStatus
from jobs.channels.email import EmailAdapter, SmtpPool, SmtpTransport
from jobs.channels.email_message import ComposedEmail, EmailComposer, EmailSender

SENDER = EmailSender("news@shop.example", "Shop News", "help@shop.example", unsubscribe_mailto="u@shop.example")
HTML = "<html><body>" + "<p>Hello {name}, here is this week's selection for you. Grüße!</p>\n" * 25 + "</body></html>"
TEXT = "Hello {name}, here is this week's selection for you. Grüße!\n" * 25


def messages(n: int, round_no: int) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(
            f"bench-{round_no}-{i}",
            f"user{i}@example.com",
            EmailContent(
                f"Your picks, user {i}",
                HTML.replace("{name}", f"user {i}"),
                TEXT.replace("{name}", f"user {i}"),
                unsubscribe_url=f"https://shop.example/u/{round_no}-{i}",
            ),
        )
        for i in range(n)
    ]


def start_sink() -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("SMTP sink did not start")


async def reference(pool: SmtpPool, prebuilt: list[ComposedEmail]) -> float:
    n = pool.transport.max_connections

    async def worker(items: list[ComposedEmail]) -> None:
        for item in items:
            conn, _ = await pool.acquire()
            try:
                await conn.smtp.sendmail(item.envelope_from, list(item.recipients), item.data)
                conn.messages += 1
            finally:
                pool.release(conn)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for i in range(n):
            group.create_task(worker(prebuilt[i::n]))
    return len(prebuilt) / (time.perf_counter() - started)


async def adapter_rate(adapter: EmailAdapter, batch: list[OutgoingMessage]) -> float:
    started = time.perf_counter()
    results = await adapter.send_batch(batch)
    elapsed = time.perf_counter() - started
    assert all(r.status is SendStatus.SENT for r in results), {r.status for r in results}
    return len(batch) / elapsed


def compose_costs(sample: list[OutgoingMessage]) -> tuple[float, float]:
    composer = EmailComposer(SENDER)
    started = time.perf_counter()
    for m in sample:
        composer.compose(m.content, m.address, m.idempotency_key)  # type: ignore[arg-type]
    ours = (time.perf_counter() - started) / len(sample)
    started = time.perf_counter()
    for m in sample:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "Shop News <news@shop.example>", m.address, m.content.subject  # type: ignore[union-attr]
        msg["Message-ID"] = f"<{m.idempotency_key}@shop.example>"
        msg.set_content(m.content.text)  # type: ignore[union-attr]
        msg.add_alternative(m.content.html, subtype="html")  # type: ignore[union-attr]
        msg.as_bytes(policy=policy.SMTP)
    return ours, (time.perf_counter() - started) / len(sample)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()

    process, port = start_sink()
    try:
        # Sessions are never recycled here, so neither path pays for reconnects the other did not.
        transport = SmtpTransport(
            "127.0.0.1", port, max_connections=args.connections, max_messages_per_connection=10**9
        )
        pool = SmtpPool(transport)
        adapter = EmailAdapter(transport, SENDER, pool=pool)  # the same pool for both paths
        composer = EmailComposer(SENDER)
        await adapter.send_batch(messages(args.connections * 5, -1))  # warm up: open every connection

        ref_rates, adapter_rates = [], []
        for round_no in range(args.rounds):
            batch = messages(args.messages, round_no)
            prebuilt = [composer.compose(m.content, m.address, m.idempotency_key) for m in batch]  # type: ignore[arg-type]
            fresh = messages(args.messages, round_no + 100)
            # ABBA order, so a load change on a shared machine hits both paths alike.
            if round_no % 2 == 0:
                ref_rates.append(await reference(pool, prebuilt))
                adapter_rates.append(await adapter_rate(adapter, fresh))
            else:
                adapter_rates.append(await adapter_rate(adapter, fresh))
                ref_rates.append(await reference(pool, prebuilt))
        await adapter.close()
        pair_ratios = [a / r for a, r in zip(adapter_rates, ref_rates, strict=True)]

        ours, stdlib = compose_costs(messages(500, 999))
        ref, ada = statistics.median(ref_rates), statistics.median(adapter_rates)
        print(f"messages per round: {args.messages}, connections: {args.connections}, rounds: {args.rounds}")
        print(f"size of one message: {len(prebuilt[0].data)} bytes")
        print(f"reference (pre-rendered bytes, sendmail): {ref:8.0f} msg/s  rounds {[round(r) for r in ref_rates]}")
        print(f"EmailAdapter.send_batch:                  {ada:8.0f} msg/s  rounds {[round(r) for r in adapter_rates]}")
        print(
            f"ratio adapter / reference: {ada / ref:.2f} (medians); per round pair: median "
            f"{statistics.median(pair_ratios):.2f}, {[round(x, 2) for x in pair_ratios]}  (target >= 0.7)"
        )
        print(f"compose: {ours * 1e6:.0f} us/message; EmailMessage + as_bytes: {stdlib * 1e6:.0f} us/message")
        print(f"connections opened by the pool: {pool.connections_opened}")
    finally:
        process.terminate()
        process.wait(5)


if __name__ == "__main__":
    asyncio.run(main())
