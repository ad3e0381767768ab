"""ADMIN actions on webhook endpoints and deliveries, each with its audit event in the same transaction. The
secret leaves only as the return value of create and rotate: it is shown once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from tortoise.transactions import in_transaction

from models.egress_rules import EgressPolicy, host_problem
from models.presets.secret_box import SecretBox
from models.tenancy.audit import record_audit
from models.webhooks.model import WebhookDelivery, WebhookEndpoint
from models.webhooks.rules import EVENT_TYPES, new_secret, url_problem


class WebhookInputError(Exception):
    def __init__(self, errors: list[tuple[str, str, str]]) -> None:  # (field, code, message)
        super().__init__("; ".join(m for _, _, m in errors))
        self.errors = errors


class WebhookNotFoundError(Exception):
    pass


@dataclass(frozen=True)
class EndpointChange:
    url: str | None = None
    events: list[str] | None = None
    enabled: bool | None = None
    max_in_flight: int | None = None
    rate_per_second: float | None = None


def _check(change: EndpointChange, egress: EgressPolicy | None) -> None:
    errors = []
    if change.url is not None:
        problem = url_problem(change.url)
        if problem:
            errors.append(("input.url", "INVALID_URL", f"The URL {problem}."))
        elif egress is not None and (refused := host_problem(urlsplit(change.url).hostname or "", egress)):
            errors.append(("input.url", refused[0], refused[1]))
    if change.events is not None:
        unknown = sorted(set(change.events) - set(EVENT_TYPES))
        if unknown or not change.events:
            errors.append(
                ("input.events", "UNKNOWN_EVENT", f"Choose one or more of {', '.join(EVENT_TYPES)}; not {unknown}.")
            )
    if change.max_in_flight is not None and not 1 <= change.max_in_flight <= 50:
        errors.append(("input.maxInFlight", "OUT_OF_RANGE", "maxInFlight must be between 1 and 50."))
    if change.rate_per_second is not None and not 0.1 <= change.rate_per_second <= 1000:
        errors.append(("input.ratePerSecond", "OUT_OF_RANGE", "ratePerSecond must be between 0.1 and 1000."))
    if errors:
        raise WebhookInputError(errors)


def _view(endpoint: WebhookEndpoint) -> dict:
    return {"url": endpoint.url, "events": endpoint.events, "enabled": endpoint.enabled}


async def create_endpoint(
    *, sandbox_id: int, actor: str, box: SecretBox, change: EndpointChange, egress: EgressPolicy | None
) -> tuple[WebhookEndpoint, str]:
    if change.url is None or change.events is None:
        raise WebhookInputError([("input", "MISSING", "url and events are required.")])
    _check(change, egress)
    secret = new_secret()
    async with in_transaction() as conn:
        endpoint = await WebhookEndpoint.create(
            sandbox_id=sandbox_id,
            url=change.url,
            events=sorted(set(change.events)),
            secret_sealed=_seal(box, secret, sandbox_id),
            max_in_flight=change.max_in_flight or 4,
            rate_per_second=change.rate_per_second or 10.0,
            using_db=conn,
        )
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="webhook_endpoint.created",
            object_type="WebhookEndpoint",
            object_id=endpoint.id,
            after=_view(endpoint),
            using_db=conn,
        )
    return endpoint, secret


async def _get(sandbox_id: int, endpoint_id: int, conn) -> WebhookEndpoint:
    endpoint = await WebhookEndpoint.filter(id=endpoint_id, sandbox_id=sandbox_id).using_db(conn).first()
    if endpoint is None:
        raise WebhookNotFoundError
    return endpoint


async def update_endpoint(
    *, sandbox_id: int, endpoint_id: int, actor: str, change: EndpointChange, egress: EgressPolicy | None
) -> WebhookEndpoint:
    _check(change, egress)
    async with in_transaction() as conn:
        endpoint = await _get(sandbox_id, endpoint_id, conn)
        before = _view(endpoint)
        if change.url is not None:
            endpoint.url = change.url
        if change.events is not None:
            endpoint.events = sorted(set(change.events))
        if change.enabled is not None:
            endpoint.enabled = change.enabled
            if change.enabled:  # switched back on: a fresh start
                endpoint.disabled_reason = None
                endpoint.failing_since = None
        if change.max_in_flight is not None:
            endpoint.max_in_flight = change.max_in_flight
        if change.rate_per_second is not None:
            endpoint.rate_per_second = change.rate_per_second
        await endpoint.save(using_db=conn)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="webhook_endpoint.updated",
            object_type="WebhookEndpoint",
            object_id=endpoint.id,
            before=before,
            after=_view(endpoint),
            using_db=conn,
        )
    return endpoint


async def rotate_secret(
    *, sandbox_id: int, endpoint_id: int, actor: str, box: SecretBox, overlap: timedelta
) -> tuple[WebhookEndpoint, str]:
    """A new secret signs from now on; the current one signs too (a second signature) until the overlap ends."""
    secret = new_secret()
    async with in_transaction() as conn:
        endpoint = await _get(sandbox_id, endpoint_id, conn)
        endpoint.previous_secret_sealed = endpoint.secret_sealed
        endpoint.previous_secret_until = datetime.now(UTC) + overlap
        endpoint.secret_sealed = _seal(box, secret, sandbox_id)
        await endpoint.save(using_db=conn)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="webhook_endpoint.secret_rotated",
            object_type="WebhookEndpoint",
            object_id=endpoint.id,
            after={"previousSecretUntil": endpoint.previous_secret_until.isoformat()},
            using_db=conn,
        )
    return endpoint, secret


async def delete_endpoint(*, sandbox_id: int, endpoint_id: int, actor: str) -> None:
    async with in_transaction() as conn:
        endpoint = await _get(sandbox_id, endpoint_id, conn)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="webhook_endpoint.deleted",
            object_type="WebhookEndpoint",
            object_id=endpoint.id,
            before=_view(endpoint),
            using_db=conn,
        )
        await endpoint.delete(using_db=conn)


async def replay_delivery(*, sandbox_id: int, delivery_id: int, actor: str) -> WebhookDelivery:
    """Sends a delivery again, soon, with the same webhook-id (a receiver that processed it skips it)."""
    async with in_transaction() as conn:
        delivery = await WebhookDelivery.filter(id=delivery_id, sandbox_id=sandbox_id).using_db(conn).first()
        if delivery is None:
            raise WebhookNotFoundError
        delivery.status = "PENDING"
        delivery.next_attempt_at = datetime.now(UTC)
        delivery.leased_until = None
        await delivery.save(using_db=conn)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="webhook_delivery.replayed",
            object_type="WebhookDelivery",
            object_id=delivery.id,
            using_db=conn,
        )
    return delivery


def _seal(box: SecretBox, secret: str, sandbox_id: int) -> str:
    sealed = box.seal({"secret": secret}, sandbox_id=sandbox_id)
    assert sealed is not None
    return sealed
