"""The shared adapter machinery: bounded concurrency, result order, backoff, Retry-After."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from jobs.channels.base import (
    Backoff,
    ConcurrentAdapter,
    FailureCode,
    OutgoingMessage,
    SendResult,
    SendStatus,
    SmsContent,
    parse_retry_after,
)


class RecordingAdapter(ConcurrentAdapter):
    def __init__(self, max_concurrency: int) -> None:
        super().__init__(max_concurrency=max_concurrency, backoff=Backoff(base=10, jitter=0))
        self.in_flight = 0
        self.peak = 0

    async def send_one(self, message: OutgoingMessage) -> SendResult:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            # Later messages finish first, so order must come from the index, not completion.
            await asyncio.sleep(0.001 * (10 - int(message.idempotency_key) % 10))
            if message.address == "boom":
                raise RuntimeError("adapter bug")
            return SendResult.sent(f"id-{message.idempotency_key}")
        finally:
            self.in_flight -= 1


def messages(n: int, boom: set[int] = frozenset()) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(str(i), "boom" if i in boom else f"+1555000{i:04d}", SmsContent("hi"), attempt=2)
        for i in range(n)
    ]


async def test_results_keep_input_order_and_concurrency_stays_bounded():
    adapter = RecordingAdapter(max_concurrency=4)
    results = await adapter.send_batch(messages(25))
    assert [r.provider_message_id for r in results] == [f"id-{i}" for i in range(25)]
    assert adapter.peak == 4
    assert await adapter.send_batch([]) == []


async def test_an_adapter_bug_becomes_a_retry_for_that_message_only():
    adapter = RecordingAdapter(max_concurrency=3)
    results = await adapter.send_batch(messages(6, boom={2}))
    assert [r.status for r in results] == [SendStatus.SENT] * 2 + [SendStatus.RETRY] + [SendStatus.SENT] * 3
    assert results[2].reason is FailureCode.TEMPORARY and results[2].retry_after == 40  # 10 * 2^2


def test_backoff_grows_caps_and_prefers_retry_after():
    backoff = Backoff(base=30, factor=2, cap=600, jitter=0.1)
    assert 27 <= backoff.delay(0) <= 33
    assert 108 <= backoff.delay(2) <= 132
    assert backoff.delay(20) <= 660
    assert backoff.delay(3, retry_after=7) == 7
    assert backoff.delay(0, retry_after=10_000) == 600


def test_parse_retry_after():
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Sat, 28 Nov 2026 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Sat, 28 Nov 2026 11:00:00 GMT", now=now) == 0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
