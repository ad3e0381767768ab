"""Leasing due webhook deliveries under each endpoint's limits, across every worker: the endpoints' rows are
locked (PostgreSQL; SQLite has one writer) while their in-flight leases are counted and their rate buckets
spent, so two workers together never exceed `max_in_flight` nor `rate_per_second`."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta

from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from models.sql.params import Dialect
from models.sql.reads import dialect_of
from models.webhooks.model import WebhookDelivery, WebhookEndpoint
from models.webhooks.rules import rate_tokens


async def claim_due(
    now: datetime, limit: int, endpoint_ids: Collection[int] | None, lease: timedelta
) -> list[WebhookDelivery]:
    """Leases up to `limit` due deliveries, each endpoint's share bounded by its free in-flight slots and its
    rate tokens. The lease's end, unique per claim (random microseconds), tells this claim's rows apart."""
    free = Q(leased_until__isnull=True) | Q(leased_until__lte=now)
    due = WebhookDelivery.filter(free, status="PENDING", next_attempt_at__lte=now, endpoint__enabled=True)
    if endpoint_ids is not None:
        due = due.filter(endpoint_id__in=list(endpoint_ids))
    token = now + lease + timedelta(microseconds=secrets.randbelow(1_000_000))
    async with in_transaction() as conn:
        candidates = await due.using_db(conn).distinct().limit(limit).values_list("endpoint_id", flat=True)
        if not candidates:
            return []
        locking = WebhookEndpoint.filter(id__in=set(candidates), enabled=True).order_by("id").using_db(conn)
        if dialect_of() is Dialect.POSTGRES:
            locking = locking.select_for_update()
        endpoints = await locking
        # Read after the lock: another worker's leases, committed while this one waited, are counted.
        in_flight = dict(
            await WebhookDelivery.filter(
                endpoint_id__in=[e.id for e in endpoints], status="PENDING", leased_until__gt=now
            )
            .using_db(conn)
            .annotate(n=Count("id"))
            .group_by("endpoint_id")
            .values_list("endpoint_id", "n")
        )
        rows = (
            await due.filter(endpoint_id__in=[e.id for e in endpoints])
            .using_db(conn)
            .order_by("next_attempt_at", "id")
            .limit(limit)
            .values_list("id", "endpoint_id")
        )
        by_endpoint: dict[int, list[int]] = defaultdict(list)
        for delivery_id, endpoint_id in rows:
            by_endpoint[endpoint_id].append(delivery_id)
        chosen: list[int] = []
        for endpoint in endpoints:
            tokens = rate_tokens(endpoint.rate_tokens, endpoint.rate_tokens_at, endpoint.rate_per_second, now)
            room = max(0, min(endpoint.max_in_flight - in_flight.get(endpoint.id, 0), int(tokens)))
            taken = by_endpoint[endpoint.id][:room]
            chosen += taken
            await (
                WebhookEndpoint.filter(id=endpoint.id)
                .using_db(conn)
                .update(rate_tokens=tokens - len(taken), rate_tokens_at=now)
            )
        if not chosen:
            return []
        await WebhookDelivery.filter(free, id__in=chosen).using_db(conn).update(leased_until=token)
    return await WebhookDelivery.filter(id__in=chosen, leased_until=token).order_by("id")
