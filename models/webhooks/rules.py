"""Webhook rules without I/O: event types and which outbox events they come from, the retry schedule, the
endpoint policy (410, three days of failure), secrets in the Standard Webhooks format. No ORM, no network."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from models.outbox.payloads import (
    CAMPAIGN_RUN_PROGRESS_TOPIC,
    CAMPAIGN_STATUS_TOPIC,
    DELIVERY_OUTCOMES_TOPIC,
    RECIPIENT_EVENT_TOPIC,
)

# What an endpoint may subscribe to. Per-recipient events (deliveries, tracking) are written to the outbox only
# while an enabled endpoint of the sandbox takes them: a send nobody listens to costs no extra row.
EVENT_TYPES = (
    "campaign.status_changed",
    "run.finished",
    "delivery.sent",
    "delivery.delivered",
    "delivery.bounced",
    "delivery.failed",
    "tracking.open",
    "tracking.click",
    "profile.unsubscribed",
    "profile.complained",
    "trigger.accepted",
)

# Attempt n (1-based) failed → wait RETRY_DELAYS[n - 1] before the next; after the last, the delivery FAILED.
# 30 s doubling to a 12 h cap: 17 attempts over ~3 days (the sum is ~3.1 days).
RETRY_DELAYS = tuple(timedelta(seconds=min(30 * 2**i, 12 * 3600)) for i in range(16))
FAILING_DISABLES_AFTER = timedelta(days=3)
SECRET_PREFIX = "whsec_"
SECRET_OVERLAP = timedelta(hours=24)
EXCERPT_CHARS = 500
# An endpoint's bucket holds this many seconds of its rate (at least one request): the largest burst.
RATE_BURST_SECONDS = 2.0


OUTCOME_EVENT_TYPES = {
    "SENT": "delivery.sent",
    "DELIVERED": "delivery.delivered",
    "BOUNCED": "delivery.bounced",
    "FAILED": "delivery.failed",
}
RECIPIENT_EVENT_TYPES = {
    "OPEN": "tracking.open",
    "CLICK": "tracking.click",
    "UNSUBSCRIBE": "profile.unsubscribed",
    "COMPLAINT": "profile.complained",
}


def event_type(topic: str, payload: dict[str, Any]) -> str | None:
    """The webhook event an outbox event is, or None when it is none (e.g. a run's intermediate progress)."""
    if topic == CAMPAIGN_STATUS_TOPIC:
        return "campaign.status_changed"
    if topic == CAMPAIGN_RUN_PROGRESS_TOPIC and payload.get("final") is True:
        return "run.finished"
    if topic == DELIVERY_OUTCOMES_TOPIC:
        return OUTCOME_EVENT_TYPES.get(payload.get("outcome"))  # type: ignore[arg-type]
    if topic == RECIPIENT_EVENT_TOPIC:
        return RECIPIENT_EVENT_TYPES.get(payload.get("kind"))  # type: ignore[arg-type]
    return None


def rate_tokens(tokens: float | None, tokens_at: datetime | None, rate: float, now: datetime) -> float:
    """The tokens in an endpoint's bucket at `now` (one per request): refilled at `rate` per second, up to
    RATE_BURST_SECONDS of it. A clock that went back refills nothing."""
    burst = max(1.0, rate * RATE_BURST_SECONDS)
    if tokens is None or tokens_at is None:
        return burst
    elapsed = max(0.0, (now - tokens_at).total_seconds())
    return min(burst, tokens + elapsed * rate)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def next_attempt_after(attempts: int) -> timedelta | None:
    """The wait after `attempts` failed attempts; None when the delivery has used them all."""
    return RETRY_DELAYS[attempts - 1] if attempts <= len(RETRY_DELAYS) else None


def disable_reason(status_code: int | None, failing_since: datetime | None, now: datetime) -> str | None:
    """Why an endpoint is disabled after a failed attempt, or None while it stays enabled."""
    if status_code == 410:
        return "GONE"  # the receiver says the endpoint no longer exists
    if failing_since is not None and now - failing_since >= FAILING_DISABLES_AFTER:
        return "FAILING_FOR_3_DAYS"
    return None


def url_problem(url: str) -> str | None:
    """The URL's shape; where it points is judged by the egress policy (at input and at each connect)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an http(s) URL with a host"
    if parts.username or parts.password:
        return "must not hold credentials"
    if len(url) > 2048:
        return "is longer than 2048 characters"
    return None
