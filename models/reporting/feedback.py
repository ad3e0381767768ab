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
from models.outbox.payloads import RECIPIENT_EVENT_TOPIC, DeliveryOutcomes, RecipientEvent
from models.outbox.payloads import DeliveryRef as OutcomeRef
from models.reporting.tracking import BounceType, TrackingEventKind
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of
from models.tenancy.audit import record_audit
from models.webhooks.rules import RECIPIENT_EVENT_TYPES
from models.webhooks.subscriptions import emit_subscribed, subscribed_sql

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
    that is gone. The hottest write of all: on PostgreSQL one prebuilt statement that also writes the webhook
    event when an endpoint takes `tracking.open`; on SQLite the same two writes in one transaction."""
    values = [TrackingEventKind.OPEN.value, None, _agent(user_agent), None, now, delivery_id]
    dialect = dialect_of()
    event = _recipient_event_values("OPEN", delivery_id, now)
    if dialect is Dialect.POSTGRES:
        await connections.get("default").execute_query(_open_with_event_sql(), [*values, *event])
        return
    async with in_transaction() as conn:
        await conn.execute_query(_event_sql(dialect, False, returning=False), values)
        await conn.execute_query(_recipient_event_sql(dialect, "OPEN"), event)


@functools.cache
def _recipient_event_sql(dialect: Dialect, kind: str, first_param: int = 1, *, link: bool = False) -> str:
    """INSERT of a RecipientEvent outbox row built from the delivery row, only when an enabled endpoint of its
    sandbox takes the event (models.webhooks.subscriptions). Its parameters: `_recipient_event_values`."""
    params = SqlParams(dialect, [None] * (first_param - 1))
    # Placeholders in the order they appear in the text (SQLite's `?` are positional).
    at = params.typed(None, "TEXT")
    link_value = params.typed(None, "BIGINT") if link else "NULL"
    created, delivery = params.typed(None, "TIMESTAMPTZ"), params.typed(None, "BIGINT")
    wanted = subscribed_sql(params, "d.sandbox_id", "")
    build = "json_build_object" if dialect is Dialect.POSTGRES else "json_object"
    payload = (
        f"{build}('kind', '{kind}', 'campaignId', d.campaign_id, 'runId', d.run_id, 'deliveryId', d.id, "
        f"'profileId', d.profile_id, 'at', {at}, 'linkId', {link_value})"
    )
    if dialect is Dialect.POSTGRES:
        payload = f"CAST({payload} AS JSONB)"
    return (
        f"INSERT INTO outbox_event (sandbox_id, topic, payload, created_at) "
        f"SELECT d.sandbox_id, '{RECIPIENT_EVENT_TOPIC}', {payload}, {created} FROM delivery d "
        f"WHERE d.id = {delivery} AND {wanted}"
    )


def _recipient_event_values(kind: str, delivery_id: int, now: datetime, link_id: int | None = None) -> list[Any]:
    link = [link_id] if kind == "CLICK" else []
    return [now.isoformat(), *link, now, delivery_id, RECIPIENT_EVENT_TYPES[kind]]


@functools.cache
def _open_with_event_sql() -> str:
    """PostgreSQL: the open's tracking row and its webhook event in one statement (two data-modifying CTEs)."""
    tracking = _event_sql(Dialect.POSTGRES, False, returning=False)
    event = _recipient_event_sql(Dialect.POSTGRES, "OPEN", 7)
    return f"WITH tracked AS ({tracking} RETURNING 1) {event}"


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
    async with in_transaction() as tx:
        await _insert_event(tx, TrackingEventKind.CLICK, delivery_id, now, link_id=link_id, user_agent=user_agent)
        event = _recipient_event_values("CLICK", delivery_id, now, link_id)
        await tx.execute_query(_recipient_event_sql(dialect_of(), "CLICK", link=True), event)
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
        await _emit_recipient_event(conn, ref, "UNSUBSCRIBE", now)
    return True


async def _emit_recipient_event(conn: BaseDBAsyncClient, ref: DeliveryRef, kind: str, now: datetime) -> None:
    event = RecipientEvent(kind, ref.campaign_id, ref.run_id, ref.id, ref.profile_id, now)
    await emit_subscribed([event], sandbox_id=ref.sandbox_id, conn=conn)


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
    """One provider report on one delivery, in one transaction (status, suppression, events together)."""
    async with in_transaction() as conn:
        if feedback.kind is FeedbackKind.COMPLAINT:
            recorded = await _insert_event(conn, TrackingEventKind.COMPLAINT, ref.id, now, once=True)
            await _suppress(conn, ref, SuppressionReason.SPAM_COMPLAINT, now, actor)
            if recorded:
                await _emit_recipient_event(conn, ref, "COMPLAINT", now)
            return FeedbackOutcome.APPLIED if recorded else FeedbackOutcome.IGNORED
        reason: str | None = None
        if feedback.kind is FeedbackKind.DELIVERED:
            outcome = DeliveryStatus.DELIVERED
            applied = await mark_delivered(ref.id, now, conn)
        else:
            outcome = DeliveryStatus.BOUNCED
            bounce = feedback.bounce_type or BounceType.HARD
            reason = (DeliveryReason.HARD_BOUNCE if bounce is BounceType.HARD else DeliveryReason.SOFT_BOUNCE).value
            error = (feedback.reason or "")[:2000] or None
            applied = await mark_bounced(ref.id, bounce.value, reason, error, now, conn)
        if not applied:
            return FeedbackOutcome.IGNORED
        if feedback.kind is FeedbackKind.BOUNCE and (feedback.bounce_type or BounceType.HARD) is BounceType.HARD:
            await _suppress(conn, ref, SuppressionReason.HARD_BOUNCE, now, actor)
        event = DeliveryOutcomes(
            outcome.value, ref.campaign_id, ref.run_id, now, (OutcomeRef(ref.id, ref.profile_id, reason),)
        )
        await emit_subscribed([event], sandbox_id=ref.sandbox_id, conn=conn)
    return FeedbackOutcome.APPLIED
