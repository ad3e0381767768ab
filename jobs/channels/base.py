"""What every channel adapter takes and returns.

Adapters are transport code only: they get plain, already-rendered messages and return one result per
message, in order. The run executor maps ledger rows and presets onto these dataclasses and decides what a
result means for the ledger (status, suppression, next attempt).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

logger = logging.getLogger(__name__)


class SendStatus(StrEnum):
    SENT = "SENT"
    # Temporary: try again after `retry_after` seconds, within the preset's retry period.
    RETRY = "RETRY"
    # Permanent for this message; `suppress_address` says whether the address itself is bad.
    HARD_FAIL = "HARD_FAIL"
    # Soft bounce (e.g. mailbox full): not delivered, not retried by this run, address kept.
    SOFT_FAIL = "SOFT_FAIL"
    # The request went and no answer came (a timeout while waiting for it): the provider may have the message.
    # Not resent blindly: held until its status callback or the unconfirmed window settles it.
    UNCONFIRMED = "UNCONFIRMED"


class FailureCode(StrEnum):
    """Reason codes an adapter reports; provider-specific codes travel in `SendResult.provider_code`."""

    HARD_BOUNCE = "HARD_BOUNCE"  # the recipient address does not exist / is refused for good
    MAILBOX_FULL = "MAILBOX_FULL"
    MESSAGE_REJECTED = "MESSAGE_REJECTED"  # the content was refused (e.g. SMTP DATA 5xx)
    SENDER_REJECTED = "SENDER_REJECTED"  # the envelope sender / From number was refused
    AUTH_FAILED = "AUTH_FAILED"  # provider credentials refused
    CONFIGURATION = "CONFIGURATION"  # the connection setup refused: STARTTLS missing, an untrusted certificate
    INVALID_ADDRESS = "INVALID_ADDRESS"  # cannot be expressed on this channel (bad characters, bad number)
    INVALID_MESSAGE = "INVALID_MESSAGE"  # the rendered message cannot be encoded / sent as given
    UNREGISTERED = "UNREGISTERED"  # push token no longer valid
    PROVIDER_REJECTED = "PROVIDER_REJECTED"  # any other permanent provider refusal
    ADDRESS_NOT_ALLOWED = "ADDRESS_NOT_ALLOWED"  # the provider's host is refused by the egress policy
    # RETRY reasons
    CONNECTION = "CONNECTION"
    TIMEOUT = "TIMEOUT"
    THROTTLED = "THROTTLED"
    TEMPORARY = "TEMPORARY"  # SMTP 4xx, HTTP 5xx


@dataclass(frozen=True, slots=True)
class SendResult:
    status: SendStatus
    provider_message_id: str | None = None
    reason: FailureCode | None = None
    message: str = ""
    # Seconds to wait before the next attempt (RETRY only).
    retry_after: float | None = None
    # True when the address should go on the suppression list (hard bounce, unregistered token, …).
    suppress_address: bool = False
    # The provider's own code (SMTP reply code, Twilio error code, FCM error status), for the ledger's last error.
    provider_code: str | None = None
    # The relay's own id for an accepted email (from its SMTP 250 reply), beside our Message-ID.
    relay_id: str | None = None

    @classmethod
    def sent(cls, provider_message_id: str | None, *, relay_id: str | None = None) -> SendResult:
        return cls(SendStatus.SENT, provider_message_id=provider_message_id, relay_id=relay_id)

    @classmethod
    def retry(
        cls, after: float, reason: FailureCode, message: str = "", *, provider_code: str | None = None
    ) -> SendResult:
        return cls(SendStatus.RETRY, reason=reason, message=message, retry_after=after, provider_code=provider_code)

    @classmethod
    def hard_fail(
        cls, reason: FailureCode, message: str = "", *, suppress: bool = False, provider_code: str | None = None
    ) -> SendResult:
        return cls(
            SendStatus.HARD_FAIL, reason=reason, message=message, suppress_address=suppress, provider_code=provider_code
        )

    @classmethod
    def unconfirmed(cls, message: str) -> SendResult:
        return cls(SendStatus.UNCONFIRMED, reason=FailureCode.TIMEOUT, message=message)

    @classmethod
    def soft_fail(cls, reason: FailureCode, message: str = "", *, provider_code: str | None = None) -> SendResult:
        return cls(SendStatus.SOFT_FAIL, reason=reason, message=message, provider_code=provider_code)


# --- rendered content, one dataclass per channel -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    html: str | None
    text: str | None
    # Per-recipient one-click unsubscribe URL (https); marketing senders add List-Unsubscribe headers from it.
    unsubscribe_url: str | None = None
    # Extra headers from the message (name, value); names must be plain header names.
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class SmsContent:
    body: str


@dataclass(frozen=True, slots=True)
class PushContent:
    title: str
    body: str
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InAppContent:
    title: str
    body: str
    data: Mapping[str, object] = field(default_factory=dict)


MessageContent = EmailContent | SmsContent | PushContent | InAppContent


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    # The delivery's idempotency key: stable across attempts (the email Message-ID is derived from it).
    idempotency_key: str
    # Email address, E.164 phone number, push token, or the inbox owner for in-app.
    address: str
    content: MessageContent
    # Attempts already made for this delivery; drives the backoff when the provider gives no Retry-After.
    attempt: int = 0


# --- backoff ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter; a provider's Retry-After wins, bounded by `cap`."""

    base: float = 30.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.1

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        raw = min(self.base * self.factor ** max(attempt, 0), self.cap)
        return raw * (1 + random.uniform(-self.jitter, self.jitter))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from an HTTP Retry-After header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


# --- the adapter interface -------------------------------------------------------------------------------------


class ChannelAdapter(Protocol):
    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """One result per message, in the same order. Never raises for a per-message failure."""
        ...

    async def close(self) -> None: ...


class ConcurrentAdapter:
    """Runs `send_one` over a batch with at most `max_concurrency` messages in flight.

    A bug in `send_one` must not lose the batch's other results: an unexpected exception becomes a RETRY for
    that message (logged in full), so the ledger never records a silent success or a lost row.
    """

    def __init__(self, *, max_concurrency: int, backoff: Backoff | None = None) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.max_concurrency = max_concurrency
        self.backoff = backoff or Backoff()

    async def send_one(self, message: OutgoingMessage) -> SendResult:
        raise NotImplementedError

    async def send_guarded(self, message: OutgoingMessage) -> SendResult:
        """`send_one`, an unexpected exception turned into a RETRY (logged in full)."""
        try:
            return await self.send_one(message)
        except Exception as exc:
            logger.exception("channel adapter failed on %s", message.idempotency_key)
            return SendResult.retry(
                self.backoff.delay(message.attempt), FailureCode.TEMPORARY, f"internal error: {exc!r}"
            )

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(messages)
        queue = iter(enumerate(messages))

        # A fixed set of workers pulling from one iterator: no task per message, bounded in-flight work.
        async def worker() -> None:
            for index, message in queue:
                results[index] = await self.send_guarded(message)

        workers = min(self.max_concurrency, len(messages))
        if workers == 1:
            await worker()
        elif workers:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        return results  # type: ignore[return-value]

    async def close(self) -> None:
        return None
