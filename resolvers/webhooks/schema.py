"""Webhook endpoints and deliveries over GraphQL (ADMIN only: URLs and delivery logs are an integration's
secrets). Rules and writes live in models/webhooks; this module translates."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import strawberry
from strawberry.relay.utils import to_base64

from models.presets.secret_box import SecretBox
from models.webhooks.actions import (
    EndpointChange,
    WebhookInputError,
    WebhookNotFoundError,
    create_endpoint,
    delete_endpoint,
    replay_delivery,
    rotate_secret,
    update_endpoint,
)
from models.webhooks.model import WebhookDelivery as DeliveryRow
from models.webhooks.model import WebhookEndpoint as EndpointRow
from resolvers.context import Info
from resolvers.errors import FieldError, InvalidInputError, NotFoundError, not_found
from resolvers.nodes import pk_of
from resolvers.pagination import check_page_size
from resolvers.permissions import ADMIN
from resolvers.vocabulary import INPUT_ARG


@strawberry.type(description="A receiver of this sandbox's events, signed per Standard Webhooks.")
class WebhookEndpoint:
    id: strawberry.ID = strawberry.field(description="Global id.")
    url: str = strawberry.field(description="Where events are POSTed (public addresses only, no redirects).")
    events: list[str] = strawberry.field(description="Event types sent, e.g. `campaign.status_changed`.")
    enabled: bool = strawberry.field(description="False: nothing is sent (disabled by an ADMIN, 410 or failure).")
    disabled_reason: str | None = strawberry.field(description="GONE, FAILING_FOR_3_DAYS, or null.")
    failing_since: datetime | None = strawberry.field(description="Start of the current run of failed attempts.")
    max_in_flight: int = strawberry.field(description="Requests in flight at most, all workers together.")
    rate_per_second: float = strawberry.field(description="Requests per second at most, all workers together.")
    previous_secret_until: datetime | None = strawberry.field(
        description="Until then the previous secret signs too (a second signature), after a rotation."
    )
    created_at: datetime = strawberry.field(description="When it was created.")

    @classmethod
    def from_row(cls, row: EndpointRow) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(to_base64("WebhookEndpoint", row.id)),
            url=row.url,
            events=list(row.events),
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            failing_since=row.failing_since,
            max_in_flight=row.max_in_flight,
            rate_per_second=row.rate_per_second,
            previous_secret_until=row.previous_secret_until,
            created_at=row.created_at,
        )


@strawberry.type(description="One attempt to send a delivery.")
class WebhookAttempt:
    attempt: int = strawberry.field(description="1 for the first attempt.")
    at: datetime = strawberry.field(description="When it was scheduled to go.")
    status_code: int | None = strawberry.field(description="The receiver's HTTP status; null without an answer.")
    latency_ms: float = strawberry.field(description="Milliseconds until the answer (or the failure).")
    response_excerpt: str | None = strawberry.field(description="The first 500 characters of the answer.")
    error: str | None = strawberry.field(description="TIMEOUT, EGRESS_REFUSED or CONNECTION: …; null on an answer.")


@strawberry.type(description="One event for one endpoint, with its attempts.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="Global id.")
    webhook_id: str = strawberry.field(description="The `webhook-id` header: the same on every attempt and replay.")
    event_type: str = strawberry.field(description="The event type.")
    status: str = strawberry.field(description="PENDING, SUCCEEDED or FAILED (every attempt used).")
    attempts: list[WebhookAttempt] = strawberry.field(description="Attempts so far, oldest first.")
    next_attempt_at: datetime = strawberry.field(description="When a PENDING delivery goes next.")
    delivered_at: datetime | None = strawberry.field(description="When the receiver answered 2xx.")
    created_at: datetime = strawberry.field(description="When the event was made into this delivery.")

    @classmethod
    def from_row(cls, row: DeliveryRow) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(to_base64("WebhookDelivery", row.id)),
            webhook_id=row.message_id,
            event_type=row.event_type,
            status=row.status,
            attempts=[
                WebhookAttempt(
                    attempt=e["attempt"],
                    at=datetime.fromisoformat(e["at"]),
                    status_code=e.get("statusCode"),
                    latency_ms=e.get("latencyMs", 0.0),
                    response_excerpt=e.get("responseExcerpt"),
                    error=e.get("error"),
                )
                for e in row.log
            ],
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
        )


@strawberry.input(description="A new webhook endpoint.")
class WebhookEndpointCreateInput:
    url: str = strawberry.field(description="An http(s) URL at a public address.")
    events: list[str] = strawberry.field(description="Event types to send.")
    max_in_flight: int | None = strawberry.field(default=None, description="Default 4.")
    rate_per_second: float | None = strawberry.field(default=None, description="Default 10.")


@strawberry.input(description="Changes to a webhook endpoint; omitted fields stay.")
class WebhookEndpointUpdateInput:
    id: strawberry.ID = strawberry.field(description="The endpoint.")
    url: str | None = strawberry.field(default=None, description="A new URL.")
    events: list[str] | None = strawberry.field(default=None, description="New event types.")
    enabled: bool | None = strawberry.field(default=None, description="true re-enables a disabled endpoint.")
    max_in_flight: int | None = strawberry.field(default=None, description="1 to 50.")
    rate_per_second: float | None = strawberry.field(default=None, description="0.1 to 1000.")


@strawberry.type(description="The endpoint, and its signing secret: shown this once, never again.")
class WebhookEndpointSecretSuccess:
    endpoint: WebhookEndpoint = strawberry.field(description="The endpoint.")
    secret: str = strawberry.field(description="`whsec_…`, for the receiver's Standard Webhooks library.")


@strawberry.type(description="The endpoint after the change.")
class WebhookEndpointUpdateSuccess:
    endpoint: WebhookEndpoint = strawberry.field(description="The endpoint.")


@strawberry.type(description="The endpoint was deleted, with its deliveries.")
class WebhookEndpointDeleteSuccess:
    deleted_id: strawberry.ID = strawberry.field(description="Global id of the deleted endpoint.")


@strawberry.type(description="The delivery is PENDING again and goes soon, with the same webhook-id.")
class WebhookDeliveryReplaySuccess:
    delivery: WebhookDelivery = strawberry.field(description="The delivery.")


WebhookEndpointCreateResult = Annotated[
    WebhookEndpointSecretSuccess | InvalidInputError,
    strawberry.union("WebhookEndpointCreateResult", description="Result of `webhookEndpointCreate`."),
]
WebhookEndpointUpdateResult = Annotated[
    WebhookEndpointUpdateSuccess | InvalidInputError | NotFoundError,
    strawberry.union("WebhookEndpointUpdateResult", description="Result of `webhookEndpointUpdate`."),
]
WebhookEndpointRotateResult = Annotated[
    WebhookEndpointSecretSuccess | NotFoundError,
    strawberry.union("WebhookEndpointRotateSecretResult", description="Result of `webhookEndpointRotateSecret`."),
]
WebhookEndpointDeleteResult = Annotated[
    WebhookEndpointDeleteSuccess | NotFoundError,
    strawberry.union("WebhookEndpointDeleteResult", description="Result of `webhookEndpointDelete`."),
]
WebhookDeliveryReplayResult = Annotated[
    WebhookDeliveryReplaySuccess | NotFoundError,
    strawberry.union("WebhookDeliveryReplayResult", description="Result of `webhookDeliveryReplay`."),
]


def _invalid(error: WebhookInputError) -> InvalidInputError:
    return InvalidInputError(
        message="The webhook endpoint was refused; nothing was changed.",
        field_errors=[FieldError(field=f, code=c, message=m) for f, c, m in error.errors],
    )


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="This sandbox's webhook endpoints, oldest first.", permission_classes=ADMIN)
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        rows = await EndpointRow.filter(sandbox_id=info.context.require_caller().sandbox_id).order_by("id")
        return [WebhookEndpoint.from_row(r) for r in rows]

    @strawberry.field(description="The delivery log of an endpoint, newest first.", permission_classes=ADMIN)
    async def webhook_deliveries(
        self,
        info: Info,
        endpoint_id: Annotated[strawberry.ID, strawberry.argument(description="The endpoint.")],
        first: Annotated[int | None, strawberry.argument(description="How many (default 20).")] = None,
        status: Annotated[str | None, strawberry.argument(description="PENDING, SUCCEEDED or FAILED.")] = None,
    ) -> list[WebhookDelivery]:
        size = check_page_size(first, info.context.limits.max_page_size)
        pk = pk_of(endpoint_id, "WebhookEndpoint")
        if pk is None:
            return []
        query = DeliveryRow.filter(endpoint_id=pk, sandbox_id=info.context.require_caller().sandbox_id)
        if status is not None:
            query = query.filter(status=status)
        return [WebhookDelivery.from_row(r) for r in await query.order_by("-id").limit(size)]


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description="Register a webhook endpoint; its signing secret is in the answer, once.",
        permission_classes=ADMIN,
    )
    async def webhook_endpoint_create(
        self, info: Info, input: Annotated[WebhookEndpointCreateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> WebhookEndpointCreateResult:
        caller = info.context.require_caller()
        change = EndpointChange(
            url=input.url, events=input.events, max_in_flight=input.max_in_flight, rate_per_second=input.rate_per_second
        )
        try:
            row, secret = await create_endpoint(
                sandbox_id=caller.sandbox_id,
                actor=caller.actor,
                box=SecretBox(info.context.secret_key),
                change=change,
                egress=info.context.egress,
            )
        except WebhookInputError as error:
            return _invalid(error)
        return WebhookEndpointSecretSuccess(endpoint=WebhookEndpoint.from_row(row), secret=secret)

    @strawberry.mutation(description="Change a webhook endpoint.", permission_classes=ADMIN)
    async def webhook_endpoint_update(
        self, info: Info, input: Annotated[WebhookEndpointUpdateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> WebhookEndpointUpdateResult:
        caller = info.context.require_caller()
        pk = pk_of(input.id, "WebhookEndpoint")
        if pk is None:
            return not_found(input.id)
        change = EndpointChange(
            url=input.url,
            events=input.events,
            enabled=input.enabled,
            max_in_flight=input.max_in_flight,
            rate_per_second=input.rate_per_second,
        )
        try:
            row = await update_endpoint(
                sandbox_id=caller.sandbox_id,
                endpoint_id=pk,
                actor=caller.actor,
                change=change,
                egress=info.context.egress,
            )
        except WebhookInputError as error:
            return _invalid(error)
        except WebhookNotFoundError:
            return not_found(input.id)
        return WebhookEndpointUpdateSuccess(endpoint=WebhookEndpoint.from_row(row))

    @strawberry.mutation(
        description="A new signing secret, in the answer once; the current one keeps signing too (a second "
        "signature) for `overlapHours`, so the receiver can switch without losing events.",
        permission_classes=ADMIN,
    )
    async def webhook_endpoint_rotate_secret(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The endpoint.")],
        overlap_hours: Annotated[float, strawberry.argument(description="0 to 168 hours.")] = 24,
    ) -> WebhookEndpointRotateResult:
        caller = info.context.require_caller()
        pk = pk_of(id, "WebhookEndpoint")
        if pk is None:
            return not_found(id)
        try:
            row, secret = await rotate_secret(
                sandbox_id=caller.sandbox_id,
                endpoint_id=pk,
                actor=caller.actor,
                box=SecretBox(info.context.secret_key),
                overlap=timedelta(hours=min(max(overlap_hours, 0.0), 168.0)),
            )
        except WebhookNotFoundError:
            return not_found(id)
        return WebhookEndpointSecretSuccess(endpoint=WebhookEndpoint.from_row(row), secret=secret)

    @strawberry.mutation(description="Delete a webhook endpoint and its deliveries.", permission_classes=ADMIN)
    async def webhook_endpoint_delete(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The endpoint.")]
    ) -> WebhookEndpointDeleteResult:
        caller = info.context.require_caller()
        pk = pk_of(id, "WebhookEndpoint")
        try:
            if pk is None:
                raise WebhookNotFoundError
            await delete_endpoint(sandbox_id=caller.sandbox_id, endpoint_id=pk, actor=caller.actor)
        except WebhookNotFoundError:
            return not_found(id)
        return WebhookEndpointDeleteSuccess(deleted_id=id)

    @strawberry.mutation(description="Send a delivery again soon, with the same webhook-id.", permission_classes=ADMIN)
    async def webhook_delivery_replay(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The delivery.")]
    ) -> WebhookDeliveryReplayResult:
        caller = info.context.require_caller()
        pk = pk_of(id, "WebhookDelivery")
        try:
            if pk is None:
                raise WebhookNotFoundError
            row = await replay_delivery(sandbox_id=caller.sandbox_id, delivery_id=pk, actor=caller.actor)
        except WebhookNotFoundError:
            return not_found(id)
        return WebhookDeliveryReplaySuccess(delivery=WebhookDelivery.from_row(row))
