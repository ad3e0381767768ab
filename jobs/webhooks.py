"""Sending webhook deliveries: signed per Standard Webhooks (its library), under the egress policy, no
redirects; retries with backoff over ~3 days; 410 or three days of failure disable the endpoint (audited).

A pass (`webhook_pass`, a cron job every few seconds and callable directly) fans out new outbox events, then
leases due deliveries and sends them: per endpoint at most `max_in_flight` at once and `rate_per_second`,
across all workers (models/webhooks/claims.py). A lease outlives a worker killed mid-send, so another worker
sends the delivery again later with the same `webhook-id`: at least once, deduplicated by the receiver.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from arq import cron
from standardwebhooks import Webhook

from jobs.channels.egress import EgressRefused, egress_client
from jobs.context import worker_context
from models.egress_rules import EgressPolicy
from models.presets.secret_box import SecretBox
from models.tenancy.audit import record_audit
from models.webhooks.claims import claim_due
from models.webhooks.fanout import fan_out
from models.webhooks.model import WebhookDelivery, WebhookEndpoint
from models.webhooks.rules import EXCERPT_CHARS, disable_reason, next_attempt_after

logger = logging.getLogger(__name__)

PASS_SECONDS = 2.0
PASS_BUDGET = 30.0


def seal_secret(box: SecretBox, secret: str, *, sandbox_id: int) -> str:
    sealed = box.seal({"secret": secret}, sandbox_id=sandbox_id)
    assert sealed is not None
    return sealed


def signing_secrets(box: SecretBox, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while its overlap lasts (receivers accept either signature)."""
    secrets = [box.open(endpoint.secret_sealed, sandbox_id=endpoint.sandbox_id)["secret"]]
    if endpoint.previous_secret_sealed and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
        secrets.append(box.open(endpoint.previous_secret_sealed, sandbox_id=endpoint.sandbox_id)["secret"])
    return secrets


def signed_headers(secrets: list[str], msg_id: str, body: bytes, sent_at: datetime) -> dict[str, str]:
    signatures = " ".join(Webhook(secret).sign(msg_id, sent_at, body) for secret in secrets)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(sent_at.timestamp())),
        "webhook-signature": signatures,
    }


async def post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """The one outbound request (egress_client: pinned checked addresses, no redirects, no env proxies)."""
    return await client.post(url, content=body, headers=headers)


async def send_due(
    *,
    box: SecretBox,
    policy: EgressPolicy,
    timeout: float,
    now: datetime | None = None,
    limit: int = 500,
    client: httpx.AsyncClient | Callable[[], httpx.AsyncClient] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    endpoint_ids: Collection[int] | None = None,
    lease: timedelta = timedelta(minutes=1),
) -> int:
    """Sends the due deliveries once each; returns how many were attempted. `now` schedules (tests drive it);
    `clock` stamps the signature (receivers check it against their own clock); `endpoint_ids` restricts the
    pass to those endpoints. `client`: a client, or a function making one only when a delivery is due."""
    now = now or clock()
    deliveries = await claim_due(now, limit, endpoint_ids, lease)
    if not deliveries:
        return 0
    # A request must end before its lease does (or another worker may send it too): later ones wait for a
    # later pass. Settings keep the lease at least twice the timeout.
    deadline = time.monotonic() + max(lease.total_seconds() - timeout - 1.0, timeout)
    endpoints = {e.id: e for e in await WebhookEndpoint.filter(id__in={d.endpoint_id for d in deliveries})}
    by_endpoint: dict[int, list[WebhookDelivery]] = defaultdict(list)
    for delivery in deliveries:
        by_endpoint[delivery.endpoint_id].append(delivery)
    own_client = client is None
    if client is None:
        client = egress_client(policy, timeout=timeout, max_connections=50)
    elif not isinstance(client, httpx.AsyncClient):
        client = client()
    try:
        tasks = []
        for endpoint_id, batch in by_endpoint.items():
            # The claim kept the batch within the endpoint's free slots and rate: all of it goes at once.
            endpoint = endpoints[endpoint_id]
            gate = asyncio.Semaphore(endpoint.max_in_flight)
            tasks += [_attempt(gate, client, box, endpoint, d, now, clock, deadline) for d in batch]
        await asyncio.gather(*tasks)
    finally:
        if own_client:
            await client.aclose()
    return len(tasks)


async def _attempt(
    gate: asyncio.Semaphore,
    client: httpx.AsyncClient,
    box: SecretBox,
    endpoint: WebhookEndpoint,
    delivery: WebhookDelivery,
    now: datetime,
    clock: Callable[[], datetime],
    deadline: float,
) -> None:
    async with gate:
        if not endpoint.enabled or time.monotonic() > deadline:
            await WebhookDelivery.filter(id=delivery.id).update(leased_until=None)
            return
        body = orjson.dumps(delivery.payload)
        headers = signed_headers(signing_secrets(box, endpoint, now), delivery.message_id, body, clock())
        entry: dict[str, Any] = {"attempt": delivery.attempts + 1, "at": now.isoformat()}
        started = time.perf_counter()
        status_code = None
        try:
            response = await post(client, endpoint.url, body, headers)
            status_code = response.status_code
            entry["responseExcerpt"] = response.text[:EXCERPT_CHARS]
        except EgressRefused:
            entry["error"] = "EGRESS_REFUSED"
        except httpx.TimeoutException:
            entry["error"] = "TIMEOUT"
        except httpx.HTTPError as exc:
            entry["error"] = f"CONNECTION: {type(exc).__name__}"
        entry["statusCode"] = status_code
        entry["latencyMs"] = round((time.perf_counter() - started) * 1000, 1)
        await _record(endpoint, delivery, entry, status_code, now)


async def _record(
    endpoint: WebhookEndpoint, delivery: WebhookDelivery, entry: dict[str, Any], status_code: int | None, now: datetime
) -> None:
    attempts = delivery.attempts + 1
    log = [*delivery.log, entry]
    if status_code is not None and 200 <= status_code < 300:
        await WebhookDelivery.filter(id=delivery.id).update(
            status="SUCCEEDED", attempts=attempts, delivered_at=now, leased_until=None, log=log
        )
        if endpoint.failing_since is not None:
            await WebhookEndpoint.filter(id=endpoint.id).update(failing_since=None)
            endpoint.failing_since = None
        return
    wait = next_attempt_after(attempts)
    await WebhookDelivery.filter(id=delivery.id).update(
        status="PENDING" if wait else "FAILED",
        attempts=attempts,
        next_attempt_at=now + wait if wait else delivery.next_attempt_at,
        leased_until=None,
        log=log,
    )
    if endpoint.failing_since is None:
        endpoint.failing_since = now
        await WebhookEndpoint.filter(id=endpoint.id, failing_since__isnull=True).update(failing_since=now)
    reason = disable_reason(status_code, endpoint.failing_since, now)
    if reason and endpoint.enabled:
        endpoint.enabled = False
        if await WebhookEndpoint.filter(id=endpoint.id, enabled=True).update(enabled=False, disabled_reason=reason):
            logger.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
            await record_audit(
                sandbox_id=endpoint.sandbox_id,
                actor="system:worker",
                action="webhook_endpoint.disabled",
                object_type="WebhookEndpoint",
                object_id=endpoint.id,
                before={"enabled": True},
                after={"enabled": False, "reason": reason},
            )


async def webhook_pass(ctx: dict[str, Any]) -> int:
    """Fans out, then sends batch after batch for up to PASS_BUDGET (a burst drains in one pass; the cron is
    unique, so the next pass starts after this one). A batch that met an endpoint's rate waits out its second."""
    settings = worker_context(ctx).settings
    if not settings.webhook_delivery:
        return 0
    while await fan_out():
        pass
    box = SecretBox(settings.secret_key.get_secret_value())
    lease = timedelta(seconds=settings.webhook_lease_seconds)
    started = time.monotonic()
    total = 0
    made: list[httpx.AsyncClient] = []

    def client() -> httpx.AsyncClient:
        # Made once a delivery is due: a client builds an SSL context (loads the CA bundle), which every pass paid
        # every PASS_SECONDS with nothing to send (7% of a worker's CPU at 200 triggers/s, py-spy).
        if not made:
            made.append(
                egress_client(settings.egress_policy, timeout=settings.webhook_timeout_seconds, max_connections=100)
            )
        return made[0]

    try:
        while time.monotonic() - started < PASS_BUDGET:
            batch_started = time.monotonic()
            sent = await send_due(
                box=box,
                policy=settings.egress_policy,
                timeout=settings.webhook_timeout_seconds,
                client=client,
                lease=lease,
            )
            total += sent
            if sent == 0:
                break
            # Rates are per PASS_SECONDS of sending: never two batches of one endpoint within it.
            await asyncio.sleep(max(0.0, PASS_SECONDS - (time.monotonic() - batch_started)))
    finally:
        for made_client in made:
            await made_client.aclose()
    return total


WEBHOOK_CRON = cron(
    webhook_pass, name="webhooks", second=set(range(0, 60, int(PASS_SECONDS))), run_at_startup=True, unique=True
)
