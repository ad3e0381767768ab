"""Webhooks from the outbox: fan-out per sandbox, Standard Webhooks signatures verified with the
specification's library, retries on the backoff schedule (the schedule's clock is driven), 410 and three days
of failure disabling with an audit event, and the SSRF table refused before any connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tortoise.transactions import in_transaction

import jobs.webhooks
from jobs.channels.egress import egress_client
from jobs.context import job_ctx
from jobs.webhooks import seal_secret, send_due
from models.campaigns.rules import CampaignStatus
from models.egress_rules import EgressPolicy, parse_allow
from models.outbox.payloads import CampaignStatusChanged, CampaignVersionPublished
from models.outbox.store import emit
from models.presets.secret_box import SecretBox
from models.tenancy.actions import create_sandbox
from models.tenancy.audit import AuditEvent
from models.webhooks.model import WebhookDelivery, WebhookEndpoint
from models.webhooks.rules import RETRY_DELAYS, new_secret
from tests.conftest import TEST_SECRET, RunningServer, free_port
from tests.e2e.polling import wait_until
from tests.jobs.fan_out_drain import drain_fan_out

BOX = SecretBox(TEST_SECRET)
LOOPBACK = parse_allow("127.0.0.0/8")
TIMEOUT = 3.0  # generous for a loaded machine; the "slow" step never answers in time anyway


@dataclass
class Receiver:
    """A partner's endpoint: answers from `script` in order (then 200), deduplicates by webhook-id."""

    secret: str
    url: str = ""
    script: list[Any] = field(default_factory=list)  # an int status, "slow" or ("redirect", url)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    processed: dict[str, Any] = field(default_factory=dict)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        self.requests.append((headers, body))
        step = self.script.pop(0) if self.script else 200
        if step == "slow":
            await self.released.wait()  # answers only at the end of the test: Herald's attempt times out
            return Response(status_code=200)
        if isinstance(step, tuple) and step[0] == "redirect":
            return Response(status_code=302, headers={"location": step[1]})
        if step == 200:
            payload = Webhook(self.secret).verify(body, headers)  # raises on a bad signature
            self.processed.setdefault(headers["webhook-id"], payload)
        return Response(f"answer {step}", status_code=step)


@contextlib.asynccontextmanager
async def receiver(secret: str, script: list[Any]) -> AsyncIterator[Receiver]:
    state = Receiver(secret=secret, script=list(script))
    # Listening before uvicorn starts: connections wait in the backlog, so nothing waits for startup.
    sock = socket.create_server(("127.0.0.1", 0))
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    app = Starlette(routes=[Route("/hook", state.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        # The backlog holds connections, but a slow start under load outlasts the sender's timeout: wait for it.
        await wait_until(lambda: server.started, timeout=30)
        yield state
    finally:
        state.released.set()
        server.should_exit = True
        await task
        sock.close()


async def _endpoint(url: str, secret: str, events: tuple[str, ...] = ("campaign.status_changed",)) -> WebhookEndpoint:
    sandbox = await create_sandbox(f"wh-{uuid.uuid4().hex[:10]}", actor="test")
    return await WebhookEndpoint.create(
        sandbox_id=sandbox.id,
        url=url,
        events=list(events),
        secret_sealed=seal_secret(BOX, secret, sandbox_id=sandbox.id),
    )


async def _status_event(sandbox_id: int, campaign_id: int = 1) -> None:
    payload = CampaignStatusChanged(
        campaign_id=campaign_id,
        status=CampaignStatus.LIVE,
        previous_status=CampaignStatus.DRAFT,
        version=2,
        at=datetime.now(UTC),
    )
    async with in_transaction() as conn:
        await emit(payload, sandbox_id=sandbox_id, conn=conn)


async def _send(policy: EgressPolicy, now: datetime, *endpoints: WebhookEndpoint) -> int:
    # Other tests' deliveries share the database: each test sends its own endpoints' only.
    return await send_due(box=BOX, policy=policy, timeout=TIMEOUT, now=now, endpoint_ids=[e.id for e in endpoints])


async def test_three_failures_and_a_timeout_then_200_arrive_once_with_a_valid_signature(server: RunningServer) -> None:
    secret = new_secret()
    async with receiver(secret, [500, 503, 500, "slow"]) as partner:
        endpoint = await _endpoint(partner.url, secret)
        other = await _endpoint(partner.url, new_secret())  # another sandbox: sees none of these events
        await _status_event(endpoint.sandbox_id)
        now = datetime.now(UTC) + timedelta(days=30)  # the schedule's clock, ahead of any other pass
        await drain_fan_out(now)
        delivery = await WebhookDelivery.get(endpoint_id=endpoint.id)
        assert not await WebhookDelivery.filter(endpoint_id=other.id).exists()

        for attempt in range(5):
            assert await _send(LOOPBACK, now, endpoint, other) == 1, attempt
            assert await _send(LOOPBACK, now, endpoint, other) == 0  # not due again before its backoff
            await delivery.refresh_from_db()
            if attempt < 4:
                assert delivery.status == "PENDING" and delivery.next_attempt_at == now + RETRY_DELAYS[attempt]
                now = delivery.next_attempt_at

    assert delivery.status == "SUCCEEDED" and delivery.attempts == 5
    assert [e["statusCode"] for e in delivery.log] == [500, 503, 500, None, 200]
    assert delivery.log[3]["error"] == "TIMEOUT" and delivery.log[0]["responseExcerpt"] == "answer 500"
    assert all(e["latencyMs"] >= 0 for e in delivery.log)
    # Every attempt carried the same webhook-id and a valid signature; the receiver processed it once.
    ids = {headers["webhook-id"] for headers, _ in partner.requests}
    assert ids == {delivery.message_id} and len(partner.requests) == 5
    for headers, body in partner.requests:
        Webhook(secret).verify(body, headers)
    assert list(partner.processed) == [delivery.message_id]
    event = partner.processed[delivery.message_id]
    assert event["type"] == "campaign.status_changed" and event["data"]["status"] == "LIVE"
    endpoint = await WebhookEndpoint.get(id=endpoint.id)
    assert endpoint.enabled and endpoint.failing_since is None  # the success ended the failing run


async def test_rotation_signs_with_both_secrets_during_the_overlap(server: RunningServer) -> None:
    old, new = new_secret(), new_secret()
    async with receiver(new, []) as partner:
        endpoint = await _endpoint(partner.url, new)
        endpoint.previous_secret_sealed = seal_secret(BOX, old, sandbox_id=endpoint.sandbox_id)
        endpoint.previous_secret_until = datetime.now(UTC) + timedelta(days=60)
        await endpoint.save()
        await _status_event(endpoint.sandbox_id)
        now = datetime.now(UTC) + timedelta(days=30)
        await drain_fan_out(now)
        assert await _send(LOOPBACK, now, endpoint) == 1
    headers, body = partner.requests[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):  # a receiver still on the old secret verifies as well as one on the new
        Webhook(secret).verify(body, headers)


async def test_410_disables_the_endpoint_with_an_audit_event(server: RunningServer) -> None:
    secret = new_secret()
    async with receiver(secret, [410]) as partner:
        endpoint = await _endpoint(partner.url, secret)
        await _status_event(endpoint.sandbox_id)
        await _status_event(endpoint.sandbox_id, campaign_id=2)
        now = datetime.now(UTC) + timedelta(days=30)
        await drain_fan_out(now)
        await send_due(box=BOX, policy=LOOPBACK, timeout=TIMEOUT, now=now, limit=1, endpoint_ids=[endpoint.id])
        assert await _send(LOOPBACK, now + timedelta(days=1), endpoint) == 0
    endpoint = await WebhookEndpoint.get(id=endpoint.id)
    assert not endpoint.enabled and endpoint.disabled_reason == "GONE"
    assert len(partner.requests) == 1  # nothing more is sent to a disabled endpoint
    audit = await AuditEvent.get(sandbox_id=endpoint.sandbox_id, action="webhook_endpoint.disabled")
    assert audit.after == {"enabled": False, "reason": "GONE"}


async def test_three_days_of_failure_disable_the_endpoint(server: RunningServer) -> None:
    endpoint = await _endpoint(f"http://127.0.0.1:{free_port()}/nobody", new_secret())  # refuses connections
    await _status_event(endpoint.sandbox_id)
    now = start = datetime.now(UTC) + timedelta(days=30)
    await drain_fan_out(now)
    while (await WebhookEndpoint.get(id=endpoint.id)).enabled:
        assert await _send(LOOPBACK, now, endpoint) == 1
        delivery = await WebhookDelivery.get(endpoint_id=endpoint.id)
        assert delivery.log[-1]["error"].startswith("CONNECTION")
        now = delivery.next_attempt_at
    assert timedelta(days=3) <= now - start < timedelta(days=4)
    assert (await WebhookEndpoint.get(id=endpoint.id)).disabled_reason == "FAILING_FOR_3_DAYS"
    assert await AuditEvent.exists(sandbox_id=endpoint.sandbox_id, action="webhook_endpoint.disabled")


SSRF_TARGETS = [
    "http://127.0.0.1:{port}/hook",
    "http://[::1]:{port}/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/hook",
    "http://localhost:{port}/hook",  # a name resolving to loopback
]


@pytest.mark.parametrize("target", SSRF_TARGETS)
async def test_internal_targets_are_refused_before_connecting(server: RunningServer, target: str) -> None:
    secret = new_secret()
    async with receiver(secret, []) as partner:
        port = partner.url.split(":")[2].split("/")[0]
        endpoint = await _endpoint(target.format(port=port), secret)
        await _status_event(endpoint.sandbox_id)
        now = datetime.now(UTC) + timedelta(days=30)
        await drain_fan_out(now)
        assert await _send(EgressPolicy(), now, endpoint) == 1  # production: no exception to the public-only rule
    delivery = await WebhookDelivery.get(endpoint_id=endpoint.id)
    assert delivery.log[0]["error"] == "EGRESS_REFUSED" and delivery.status == "PENDING"
    assert partner.requests == []


async def test_a_redirect_to_loopback_is_not_followed(server: RunningServer) -> None:
    secret = new_secret()
    async with receiver(secret, []) as internal, receiver(secret, [("redirect", "")]) as partner:
        partner.script = [("redirect", internal.url)]
        endpoint = await _endpoint(partner.url, secret)
        await _status_event(endpoint.sandbox_id)
        now = datetime.now(UTC) + timedelta(days=30)
        await drain_fan_out(now)
        assert await _send(LOOPBACK, now, endpoint) == 1
    delivery = await WebhookDelivery.get(endpoint_id=endpoint.id)
    assert delivery.log[0]["statusCode"] == 302 and delivery.status == "PENDING"
    assert internal.requests == []
    async with egress_client(LOOPBACK, timeout=1) as client:
        assert client.follow_redirects is False and isinstance(client, httpx.AsyncClient)


async def test_a_version_publication_reaches_endpoints_that_asked_for_it(server: RunningServer) -> None:
    secret = new_secret()
    async with receiver(secret, []) as partner:
        wanted = await _endpoint(partner.url, secret, events=("campaign.version_published",))
        published = CampaignVersionPublished(
            campaign_id=7, number=3, previous_number=2, restores=1, campaign_version=9, at=datetime.now(UTC)
        )
        async with in_transaction() as conn:
            await emit(published, sandbox_id=wanted.sandbox_id, conn=conn)
        await _status_event(wanted.sandbox_id)  # not asked for by this endpoint
        now = datetime.now(UTC) + timedelta(days=30)
        await drain_fan_out(now)
        assert await _send(LOOPBACK, now, wanted) == 1
    (event,) = partner.processed.values()
    assert event["type"] == "campaign.version_published"
    assert (event["data"]["number"], event["data"]["restores"]) == (3, 1)


async def test_a_pass_with_nothing_due_builds_no_http_client(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's SSL context loads the CA bundle: a pass makes one only when it has a delivery to send."""
    built: list[httpx.AsyncClient] = []

    def counted(*args: Any, **kwargs: Any) -> httpx.AsyncClient:
        built.append(egress_client(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(jobs.webhooks, "egress_client", counted)
    # The suite's settings turn the pass off (its tests send by hand): on here.
    settings = server.settings.model_copy(update={"webhook_delivery": True})
    sent = await jobs.webhooks.webhook_pass(job_ctx(settings))
    assert len(built) == (1 if sent else 0), (sent, built)
