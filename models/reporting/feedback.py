"""What recipients and providers tell us after a send (DESIGN §3, §6): opens, clicks, unsubscribes, delivery
receipts, bounces and complaints, written to the ledger and the tracking events.

Each action is a few parameterised statements (one per dialect where they differ); once-only events carry a
dedupe key so that a repeated request keeps one row. The callers verify who is asking (signed token, provider
signature, API key) before anything here runs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models.audience.entities import CONSENT_COLUMNS, Consent, ContactChannel, SuppressionReason
from models.audience.suppression import insert_suppressions
from models.campaigns.rules import Channel
from models.campaigns.values import CONTACT_CHANNEL
from models.ledger.delivery import DeliveryReason, DeliveryStatus
from models.ledger.outcomes import mark_bounced, mark_delivered
from models.reporting.tracking import BounceType, TrackingEventKind
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of
from models.tenancy.audit import record_audit

USER_AGENT_MAX = 512
_EVENT_COLUMNS = (
    "sandbox_id, campaign_id, run_id, delivery_id, profile_id, kind, link_id, user_agent, dedupe_key, created_at"
)


def _rowcount(result: Any) -> int:
    return int(result[0]) if isinstance(result, tuple) and result and isinstance(result[0], int) else 0


def dedupe_key(kind: TrackingEventKind, delivery_id: int) -> str:
    return f"{kind.value}:{delivery_id}"


async def _insert_event(
    conn: BaseDBAsyncClient,
    kind: TrackingEventKind,
    delivery_id: int,
    now: datetime,
    *,
    link_id: int | None = None,
    user_agent: str | None = None,
    once: bool = False,
) -> int:
    """One event copied from the delivery row (`INSERT … SELECT`); 0 when the delivery is gone or, for a
    once-only event, already recorded."""
    key = dedupe_key(kind, delivery_id) if once else None
    values = [kind.value, link_id, _agent(user_agent), key, now, delivery_id]
    return len(await conn.execute_query_dict(_event_sql(dialect_of(), once), values))


def _agent(user_agent: str | None) -> str | None:
    return user_agent[:USER_AGENT_MAX] if user_agent else None


@functools.cache
def _event_sql(dialect: Dialect, once: bool, *, returning: bool = True) -> str:
    """The statement text, built once per dialect and kind of event."""
    params = SqlParams(dialect)
    kind, link = params.typed(None, "TEXT"), params.typed(None, "BIGINT")
    agent, key = params.typed(None, "TEXT"), params.typed(None, "TEXT")
    created, delivery = params.typed(None, "TIMESTAMPTZ"), params.typed(None, "BIGINT")
    sql = (
        f"INSERT INTO tracking_event ({_EVENT_COLUMNS}) "
        f"SELECT d.sandbox_id, d.campaign_id, d.run_id, d.id, d.profile_id, {kind}, {link}, {agent}, {key}, "
        f"{created} FROM delivery d WHERE d.id = {delivery}"
    )
    if once:
        sql += " ON CONFLICT (dedupe_key) DO NOTHING"
    # RETURNING tells inserted from skipped on both databases (Tortoise's asyncpg rowcount of an INSERT is its OID).
    return sql + " RETURNING id" if returning else sql


# ---- opens and clicks -----------------------------------------------------------------------------------------


async def record_open(delivery_id: int, user_agent: str | None, now: datetime) -> None:
    """Every open is kept (unique opens are COUNT(DISTINCT delivery_id)); nothing is written for a delivery
    that is gone. The hottest write of all: one statement, prebuilt, no result rows."""
    values = [TrackingEventKind.OPEN.value, None, _agent(user_agent), None, now, delivery_id]
    await connections.get("default").execute_query(_event_sql(dialect_of(), False, returning=False), values)


async def record_click(delivery_id: int, link_id: int, user_agent: str | None, now: datetime) -> str | None:
    """The URL recorded at render time for this link of this delivery's run, after recording the click.

    None (and nothing recorded) when the link does not belong to the delivery's run.
    """
    conn = connections.get("default")
    params = SqlParams(dialect_of())
    link, delivery = params.add(link_id), params.add(delivery_id)
    rows = await conn.execute_query_dict(
        f"SELECT l.url FROM tracked_link l JOIN delivery d ON d.run_id = l.run_id "
        f"WHERE l.id = {link} AND d.id = {delivery}",
        params.values,
    )
    if not rows:
        return None
    await _insert_event(conn, TrackingEventKind.CLICK, delivery_id, now, link_id=link_id, user_agent=user_agent)
    return str(rows[0]["url"])


# ---- unsubscribe ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryRef:
    """The ledger row feedback applies to, with the contact channel of its campaign."""

    id: int
    sandbox_id: int
    run_id: int
    campaign_id: int
    profile_id: int
    address: str | None
    status: DeliveryStatus
    channel: ContactChannel | None
    preset_id: int | None
    provider_message_id: str | None


_REF_SELECT = (
    "SELECT d.id, d.sandbox_id, d.run_id, d.campaign_id, d.profile_id, d.address, d.status, "
    "d.provider_message_id, d.relay_id, c.channel, c.preset_id FROM delivery d JOIN campaign c ON c.id = d.campaign_id"
)


def _ref(row: dict[str, Any]) -> DeliveryRef:
    channel = CONTACT_CHANNEL.get(Channel(row["channel"])) if row["channel"] else None
    return DeliveryRef(
        id=int(row["id"]),
        sandbox_id=int(row["sandbox_id"]),
        run_id=int(row["run_id"]),
        campaign_id=int(row["campaign_id"]),
        profile_id=int(row["profile_id"]),
        address=row["address"],
        status=DeliveryStatus(row["status"]),
        channel=channel,
        preset_id=int(row["preset_id"]) if row["preset_id"] is not None else None,
        provider_message_id=row["provider_message_id"],
    )


async def delivery_ref(delivery_id: int, conn: BaseDBAsyncClient | None = None) -> DeliveryRef | None:
    conn = conn or connections.get("default")
    params = SqlParams(dialect_of())
    rows = await conn.execute_query_dict(f"{_REF_SELECT} WHERE d.id = {params.add(delivery_id)}", params.values)
    return _ref(rows[0]) if rows else None


async def deliveries_by_message_id(sandbox_id: int, message_ids: Sequence[str]) -> dict[str, DeliveryRef]:
    """Deliveries of `sandbox_id` by provider message id (the email Message-ID); others' are never found."""
    found: dict[str, DeliveryRef] = {}
    unique = list(dict.fromkeys(message_ids))
    for start in range(0, len(unique), 500):
        params = SqlParams(dialect_of())
        sandbox = params.add(sandbox_id)
        listed = ", ".join(params.add(m) for m in unique[start : start + 500])
        rows = await connections.get("default").execute_query_dict(
            f"{_REF_SELECT} WHERE d.sandbox_id = {sandbox} AND d.provider_message_id IN ({listed})", params.values
        )
        found.update({row["provider_message_id"]: _ref(row) for row in rows})
    return found


async def deliveries_by_feedback_id(preset_id: int, ids: Sequence[str]) -> dict[str, DeliveryRef]:
    """Deliveries of campaigns using `preset_id`, by our Message-ID or the relay's own id (either may be what a
    provider reports); a preset's webhook never reaches another preset's deliveries."""
    found: dict[str, DeliveryRef] = {}
    unique = list(dict.fromkeys(i for i in ids if i))
    for start in range(0, len(unique), 250):
        chunk = unique[start : start + 250]
        params = SqlParams(dialect_of())
        preset = params.add(preset_id)
        by_message = ", ".join(params.add(i) for i in chunk)
        by_relay = ", ".join(params.add(i) for i in chunk)
        rows = await connections.get("default").execute_query_dict(
            f"{_REF_SELECT} WHERE c.preset_id = {preset} "
            f"AND (d.provider_message_id IN ({by_message}) OR d.relay_id IN ({by_relay}))",
            params.values,
        )
        for row in rows:
            for key in (row["provider_message_id"], row["relay_id"]):
                if key in chunk:
                    found[key] = _ref(row)
    return found


async def deliveries_by_idempotency_key(key: str) -> list[DeliveryRef]:
    """The delivery (any sandbox) with this key, named in its SMS status callback URL: the caller keeps it only
    if its preset signed the callback."""
    params = SqlParams(dialect_of())
    rows = await connections.get("default").execute_query_dict(
        f"{_REF_SELECT} WHERE d.idempotency_key = {params.add(key)}", params.values
    )
    return [_ref(row) for row in rows]


async def deliveries_by_provider_id(provider_message_id: str) -> list[DeliveryRef]:
    """Every delivery (any sandbox) carrying this provider id: the caller keeps those whose preset signed it."""
    params = SqlParams(dialect_of())
    rows = await connections.get("default").execute_query_dict(
        f"{_REF_SELECT} WHERE d.provider_message_id = {params.add(provider_message_id)}", params.values
    )
    return [_ref(row) for row in rows]


async def _suppress(
    conn: BaseDBAsyncClient, ref: DeliveryRef, reason: SuppressionReason, now: datetime, actor: str
) -> bool:
    if ref.channel is None or not ref.address:
        return False
    inserted = await insert_suppressions(ref.sandbox_id, ref.channel, [ref.address], reason, now, conn)
    created = ref.address in inserted
    if created:
        await record_audit(
            sandbox_id=ref.sandbox_id,
            actor=actor,
            action="CREATE",
            object_type="SuppressionEntry",
            object_id=inserted[ref.address],
            after={"channel": ref.channel.value, "address": ref.address, "reason": reason.value},
            using_db=conn,
        )
    return created


async def unsubscribe(delivery_id: int, now: datetime) -> bool | None:
    """UNSUBSCRIBE event, consent `n` on the campaign's channel, suppression entry — in one transaction.

    True when recorded now, False when it already was (nothing changes twice), None for an unknown delivery.
    """
    async with in_transaction() as conn:
        ref = await delivery_ref(delivery_id, conn)
        if ref is None:
            return None
        if not await _insert_event(conn, TrackingEventKind.UNSUBSCRIBE, delivery_id, now, once=True):
            return False
        if ref.channel is not None:
            params = SqlParams(dialect_of())
            column = CONSENT_COLUMNS[ref.channel]  # a fixed column name, never input
            consent, updated, profile = params.add(Consent.N.value), params.add(now), params.add(ref.profile_id)
            await conn.execute_query(
                f"UPDATE profile SET {column} = {consent}, updated_at = {updated} WHERE id = {profile}",
                params.values,
            )
            await record_audit(
                sandbox_id=ref.sandbox_id,
                actor="recipient:unsubscribe",
                action="UPDATE",
                object_type="Profile",
                object_id=ref.profile_id,
                after={"consent": {ref.channel.value.lower(): Consent.N.value}, "deliveryId": ref.id},
                using_db=conn,
            )
        await _suppress(conn, ref, SuppressionReason.UNSUBSCRIBE, now, "recipient:unsubscribe")
    return True


# ---- provider feedback ----------------------------------------------------------------------------------------


class FeedbackKind(StrEnum):
    DELIVERED = "DELIVERED"
    BOUNCE = "BOUNCE"
    COMPLAINT = "COMPLAINT"


class FeedbackOutcome(StrEnum):
    APPLIED = "APPLIED"
    # Valid, but the delivery is past it (e.g. a receipt after a bounce, a repeated complaint).
    IGNORED = "IGNORED"


@dataclass(frozen=True, slots=True)
class Feedback:
    kind: FeedbackKind
    bounce_type: BounceType | None = None
    reason: str | None = None


async def apply_feedback(ref: DeliveryRef, feedback: Feedback, now: datetime, *, actor: str) -> FeedbackOutcome:
    """One provider report on one delivery, in one transaction (status, suppression, event together)."""
    async with in_transaction() as conn:
        if feedback.kind is FeedbackKind.COMPLAINT:
            recorded = await _insert_event(conn, TrackingEventKind.COMPLAINT, ref.id, now, once=True)
            await _suppress(conn, ref, SuppressionReason.SPAM_COMPLAINT, now, actor)
            return FeedbackOutcome.APPLIED if recorded else FeedbackOutcome.IGNORED
        if feedback.kind is FeedbackKind.DELIVERED:
            applied = await mark_delivered(ref.id, now, conn)
        else:
            bounce = feedback.bounce_type or BounceType.HARD
            reason = (DeliveryReason.HARD_BOUNCE if bounce is BounceType.HARD else DeliveryReason.SOFT_BOUNCE).value
            error = (feedback.reason or "")[:2000] or None
            applied = await mark_bounced(ref.id, bounce.value, reason, error, now, conn)
        if not applied:
            return FeedbackOutcome.IGNORED
        if feedback.kind is FeedbackKind.BOUNCE and (feedback.bounce_type or BounceType.HARD) is BounceType.HARD:
            await _suppress(conn, ref, SuppressionReason.HARD_BOUNCE, now, actor)
    return FeedbackOutcome.APPLIED
