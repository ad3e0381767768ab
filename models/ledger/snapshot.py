"""The audience snapshot of a run: one statement giving every member of the segment a ledger row (QUEUED, or
EXCLUDED with its reason), and the throttle cut-off."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models.audience.entities import CONSENT_COLUMNS, ContactChannel, Segment, SuppressionReason
from models.audience.segment_sql import attribute_text
from models.audience.segments import ADDRESS_NAMESPACE_TYPE, segment_predicate
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.rules import Category, Channel
from models.campaigns.run_rules import RunStatus
from models.campaigns.values import CONTACT_CHANNEL
from models.ledger.delivery import DeliveryStatus, ExclusionReason
from models.ledger.delivery_rules import DeliveryTransition, sources_sql
from models.presets.preset import MessagePreset
from models.presets.rules import execution_path
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of
from models.tenancy.identity import IdentityNamespace

# A snapshot this large refreshes the ledger's planner statistics.
ANALYZE_AFTER_ROWS = 50_000
# A run sends for at most this long at its throttle; the rest of its audience is cut at the snapshot.
THROTTLE_WINDOW_SECONDS = 12 * 3600
_Q, _S = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value
# What keeps a TRANSACTIONAL message from an address: it does not bounce, and its owner did not complain.
TRANSACTIONAL_SUPPRESSIONS = (SuppressionReason.HARD_BOUNCE, SuppressionReason.SPAM_COMPLAINT)


async def _audience_reasons(
    params: SqlParams,
    campaign: Campaign,
    segment: Segment,
    namespace: IdentityNamespace,
    preset: MessagePreset | None,
    now: datetime,
    conn: BaseDBAsyncClient,
) -> tuple[str, str]:
    """`WITH x …, y AS (…)`: every member of the segment with its address and its exclusion reason (NULL: to
    send), and the address column of x. Shared by the snapshot and the review plan, so both give the same reasons."""

    async def members(params: SqlParams) -> str:
        return await segment_predicate(segment, params, now=now, using_db=conn)

    return await member_reasons(params, campaign, segment.sandbox_id, namespace, preset, members)


def reads_preset(campaign: Campaign, namespace: IdentityNamespace) -> bool:
    """Whether the address comes from a profile attribute the preset names (not from the identity itself)."""
    contact = CONTACT_CHANNEL.get(Channel(campaign.channel))
    return contact is not None and ADDRESS_NAMESPACE_TYPE.get(contact) != namespace.type


async def member_reasons(
    params: SqlParams,
    campaign: Campaign,
    sandbox_id: int,
    namespace: IdentityNamespace,
    preset: MessagePreset | None,
    members: Callable[[SqlParams], Awaitable[str]],
    prelude: str = "",
    override: str | None = None,
    members_in_sandbox: bool = False,
) -> tuple[str, str]:
    """The CTE of `_audience_reasons` for the profiles `members(params)` selects (a WHERE on `p`): a segment's,
    an API trigger's recipients, or the profiles awaiting a test-then-winner experiment's winner. TRANSACTIONAL
    skips marketing consent, and of the suppression list only hard bounces and complaints apply to it. `prelude`
    (CTEs put first) and `override` (an expression on `p` without placeholders: an address that replaces the
    profile's) serve a trigger's recipient addresses. `members_in_sandbox`: `members` selects only profiles its
    prelude already found in the sandbox, so `p` is not filtered on it again (an index the plan could prefer)."""
    channel = Channel(campaign.channel)
    contact = CONTACT_CHANNEL.get(channel)
    # Placeholders are added in the order they appear in the text (SQLite's `?` are positional).
    ns = params.add(namespace.id)
    ident = f"(SELECT MIN(i.value) FROM profile_identity i WHERE i.profile_id = p.id AND i.namespace_id = {ns})"
    if not reads_preset(campaign, namespace):
        # In-app messages go to the inbox of the identity; otherwise the identity itself is the address.
        address = "ident"
        address_inner = "NULL"
    else:
        path = execution_path(preset.settings if preset else None, channel)
        if path is None:  # push without a device namespace: nowhere to send
            address_inner = "NULL"
        else:
            address_inner = attribute_text(path, params, "p")
            if contact is ContactChannel.EMAIL:
                address_inner = f"lower({address_inner})"
        address = "attr_address"
    consent = f"p.{CONSENT_COLUMNS[contact]}" if contact is not None else "NULL"
    sandbox = None if members_in_sandbox else params.add(sandbox_id)
    predicate = await members(params)
    in_sandbox = f"p.sandbox_id = {sandbox} AND " if sandbox is not None else ""
    # MATERIALIZED: inlined, PostgreSQL re-evaluates the identity subquery at every reference of x.ident in the
    # CASE below (a dozen per profile); evaluated once, the snapshot runs as fast as a hand-written join.
    materialized = " MATERIALIZED" if params.dialect is Dialect.POSTGRES else ""
    lead = f"WITH {prelude}, " if prelude else "WITH "
    extra = f", {override} AS override" if override is not None else ""
    cte = (
        f"{lead}x AS{materialized} (SELECT p.id AS profile_id, {ident} AS ident, {address_inner} AS attr_address, "
        f"{consent} AS consent{extra} FROM profile p WHERE {in_sandbox}{predicate})"
    )
    # A recipient's own address replaces the profile's, and needs no identity in the campaign's namespace.
    to = f"COALESCE(x.override, x.{address})" if override is not None else f"x.{address}"
    no_identity = "x.ident IS NULL AND x.override IS NULL" if override is not None else "x.ident IS NULL"
    checks: list[tuple[str, str]] = [
        (no_identity, ExclusionReason.NO_IDENTITY),
        (f"{to} IS NULL OR {to} = ''", ExclusionReason.NO_ADDRESS),
    ]
    if contact is ContactChannel.EMAIL:
        checks.append((f"{to} NOT LIKE '%_@_%.%' OR {to} LIKE '% %'", ExclusionReason.MALFORMED_ADDRESS))
    elif contact is ContactChannel.SMS:
        checks.append((f"{to} NOT LIKE '+%'", ExclusionReason.MALFORMED_ADDRESS))
    if contact is not None and Category(campaign.category) is Category.MARKETING:
        checks.append(("x.consent = 'n'", ExclusionReason.NO_CONSENT))
    when_parts = [f"WHEN {condition} THEN '{reason.value}'" for condition, reason in checks]
    if contact is not None:
        sb, ch = params.typed(sandbox_id, "BIGINT"), params.typed(contact.value, "TEXT")
        which = ""
        if Category(campaign.category) is Category.TRANSACTIONAL:
            which = " AND s.reason IN (" + ", ".join(f"'{r.value}'" for r in TRANSACTIONAL_SUPPRESSIONS) + ")"
        when_parts.append(
            f"WHEN EXISTS (SELECT 1 FROM suppression_entry s WHERE s.sandbox_id = {sb} AND s.channel = {ch} "
            f"AND s.address = {to}{which}) THEN '{ExclusionReason.SUPPRESSED.value}'"
        )
    reason_case = "CASE " + " ".join(when_parts) + " ELSE NULL END"
    return f"{cte}, y AS (SELECT x.profile_id, {to} AS address, {reason_case} AS reason FROM x)", address


async def snapshot_audience(
    run: CampaignRun,
    campaign: Campaign,
    segment: Segment,
    namespace: IdentityNamespace,
    preset: MessagePreset | None,
    now: datetime,
    conn: BaseDBAsyncClient,
) -> list[dict[str, Any]] | None:
    """One `INSERT … SELECT … ON CONFLICT DO NOTHING`: every member of the segment gets a ledger row, QUEUED
    with its address resolved, or EXCLUDED with a reason code. PostgreSQL: returns the inserted rows' (status,
    reason, n) groups, counted by the same statement (a data-modifying CTE), so the run need not count its ledger
    again; SQLite (no RETURNING in a CTE): None."""
    params = SqlParams(dialect_of())
    audience, _ = await _audience_reasons(params, campaign, segment, namespace, preset, now, conn)
    # The outer SELECT's placeholders come after those of both CTEs.
    select_sandbox = params.typed(run.sandbox_id, "BIGINT")
    select_run = params.typed(run.id, "BIGINT")
    select_campaign = params.typed(campaign.id, "BIGINT")
    prefix = params.typed(f"{run.id}-", "TEXT")
    created = params.typed(now, "TIMESTAMPTZ")
    updated = params.typed(now, "TIMESTAMPTZ")
    insert = (
        f"INSERT INTO delivery (sandbox_id, run_id, campaign_id, profile_id, status, reason, address, "
        f"idempotency_key, attempts, created_at, updated_at) "
        f"SELECT {select_sandbox}, {select_run}, {select_campaign}, y.profile_id, "
        f"CASE WHEN y.reason IS NULL THEN '{DeliveryStatus.QUEUED.value}' "
        f"ELSE '{DeliveryStatus.EXCLUDED.value}' END, y.reason, y.address, "
        f"{prefix} || CAST(y.profile_id AS TEXT), 0, {created}, {updated} FROM y WHERE 1 = 1 "
        f"ON CONFLICT (idempotency_key) DO NOTHING"
    )
    if params.dialect is not Dialect.POSTGRES:
        await conn.execute_query(f"{audience} {insert}", params.values)
        return None
    return await conn.execute_query_dict(
        f"{audience}, ins AS ({insert} RETURNING status, reason) "
        f"SELECT status, reason, COUNT(*) AS n FROM ins GROUP BY status, reason",
        params.values,
    )


class Recipient(NamedTuple):
    """An accepted recipient of an API trigger: its profile, its context and the address it gave (or None)."""

    profile_id: int
    context: dict[str, Any]
    address: str | None = None


async def trigger_audience(
    run_id: int,
    campaign: Campaign,
    namespace: IdentityNamespace,
    preset: MessagePreset | None,
    trigger_id: int,
    recipients: Sequence[Recipient],
    now: datetime,
    conn: BaseDBAsyncClient,
) -> tuple[int, int] | None:
    """An API trigger's recipients (distinct profiles) into the ledger of the campaign's trigger run, in the
    trigger's transaction: QUEUED, or EXCLUDED with the reason a snapshot would give (to the recipient's own address
    when it gave one). The idempotency key (the Message-ID) is "t<trigger>-<profile>": one message per recipient.
    Returns (queued, excluded); None when the run is no longer RUNNING (nothing written)."""
    params = SqlParams(dialect_of())
    pg = params.dialect is Dialect.POSTGRES
    # The VALUES first: their placeholders come first in the text (SQLite's `?` are positional).
    rows = ", ".join(
        f"({params.typed(r.profile_id, 'BIGINT')}, {params.typed(orjson.dumps(r.context).decode(), 'TEXT')}, "
        f"{params.typed(r.address, 'TEXT')})"
        for r in recipients
    )
    prelude = f"c (profile_id, context, address) AS (VALUES {rows})"
    override = None
    if any(r.address is not None for r in recipients):
        override = "(SELECT c.address FROM c WHERE c.profile_id = p.id)"

    async def members(params: SqlParams) -> str:
        return "p.id IN (SELECT c.profile_id FROM c)"

    audience, _ = await member_reasons(
        params, campaign, campaign.sandbox_id, namespace, preset, members, prelude, override
    )
    context_value = "CAST(c.context AS JSONB)" if pg else "c.context"
    select_sandbox = params.typed(campaign.sandbox_id, "BIGINT")
    select_run = params.typed(run_id, "BIGINT")
    select_campaign = params.typed(campaign.id, "BIGINT")
    select_trigger = params.typed(trigger_id, "BIGINT")
    prefix = params.typed(f"t{trigger_id}-", "TEXT")
    created = params.typed(now, "TIMESTAMPTZ")
    updated = params.typed(now, "TIMESTAMPTZ")
    select_run_again = params.typed(run_id, "BIGINT")  # placeholders in text order (SQLite's `?`)
    # PostgreSQL: the run's row held shared until commit, so a finish (transitions.finish_run locks it) waits for
    # this acceptance and then sees its rows, or this one sees the run ended. KEY SHARE: the lock delivery's
    # foreign key takes on the row anyway, so concurrent acceptances add none. SQLite's transactions are serial.
    share = " FOR KEY SHARE" if pg else ""
    sql = (
        f"{audience} "
        f"INSERT INTO delivery (sandbox_id, run_id, campaign_id, trigger_id, context, profile_id, status, reason, "
        f"address, idempotency_key, attempts, created_at, updated_at) "
        f"SELECT {select_sandbox}, {select_run}, {select_campaign}, {select_trigger}, {context_value}, y.profile_id, "
        f"CASE WHEN y.reason IS NULL THEN '{DeliveryStatus.QUEUED.value}' "
        f"ELSE '{DeliveryStatus.EXCLUDED.value}' END, y.reason, y.address, "
        f"{prefix} || CAST(y.profile_id AS TEXT), 0, {created}, {updated} "
        f"FROM y JOIN c ON c.profile_id = y.profile_id WHERE EXISTS (SELECT 1 FROM campaign_run r "
        f"WHERE r.id = {select_run_again} AND r.status = '{RunStatus.RUNNING.value}'{share}) "
        f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING status"
    )
    rows = await conn.execute_query_dict(sql, params.values)
    if not rows:
        return None  # a new trigger's keys are new: no row means the run is not RUNNING
    queued = sum(1 for r in rows if r["status"] == DeliveryStatus.QUEUED.value)
    return queued, len(rows) - queued


def trigger_rows_insert(sandbox: str, run: str, campaign_id: str, now: str) -> str:
    """The one-statement acceptance's ledger rows (models/triggers/accept_pg.py), as the body of its data-modifying
    CTE: one row per recipient of the trigger inserted by its `trig` CTE, from its `y` (member, exclusion reason,
    address) and `c` (recipient, context), QUEUED or EXCLUDED as `trigger_audience` writes them. The arguments
    are the statement's placeholders."""
    return (
        f"INSERT INTO delivery (sandbox_id, run_id, campaign_id, trigger_id, context, profile_id, status, "
        f"reason, address, idempotency_key, attempts, created_at, updated_at) "
        f"SELECT {sandbox}, {run}, {campaign_id}, t.id, CAST(c.context AS JSONB), y.profile_id, "
        f"CASE WHEN y.reason IS NULL THEN '{DeliveryStatus.QUEUED.value}' ELSE '{DeliveryStatus.EXCLUDED.value}' "
        f"END, y.reason, y.address, 't' || t.id || '-' || y.profile_id, 0, {now}, {now} "
        f"FROM trig t CROSS JOIN y JOIN c ON c.profile_id = y.profile_id "
        f"ON CONFLICT (idempotency_key) DO NOTHING"
    )


async def estimate_exclusions(
    campaign: Campaign,
    segment: Segment,
    namespace: IdentityNamespace,
    preset: MessagePreset | None,
    now: datetime,
    conn: BaseDBAsyncClient,
) -> tuple[int, dict[str, int]]:
    """(members of the segment now, exclusions by reason) as a snapshot taken now would write them, the throttle
    cut-off included: the review plan's figures, from the snapshot's own SQL."""
    params = SqlParams(dialect_of())
    audience, _ = await _audience_reasons(params, campaign, segment, namespace, preset, now, conn)
    rows = await conn.execute_query_dict(
        f"{audience} SELECT reason, COUNT(*) AS n FROM y GROUP BY reason", params.values
    )
    by_reason = {row["reason"]: int(row["n"]) for row in rows}
    to_send = by_reason.pop(None, 0)
    total = to_send + sum(by_reason.values())
    if campaign.throttle_per_second:
        cut = to_send - int(campaign.throttle_per_second * THROTTLE_WINDOW_SECONDS)
        if cut > 0:
            by_reason[ExclusionReason.THROTTLE_CUTOFF.value] = cut
    return total, by_reason


async def contactable_sample(
    campaign: Campaign,
    segment: Segment,
    namespace: IdentityNamespace,
    preset: MessagePreset | None,
    now: datetime,
    conn: BaseDBAsyncClient,
    limit: int,
) -> list[tuple[int, str | None]]:
    """(profile id, time zone) of up to `limit` members a snapshot taken now would queue, in profile order: the
    sample the review estimates the business rules on."""
    params = SqlParams(dialect_of())
    audience, _ = await _audience_reasons(params, campaign, segment, namespace, preset, now, conn)
    rows = await conn.execute_query_dict(
        f"{audience} SELECT y.profile_id AS pid, pr.time_zone AS tz FROM y JOIN profile pr ON pr.id = y.profile_id "
        f"WHERE y.reason IS NULL ORDER BY y.profile_id LIMIT {params.add(limit)}",
        params.values,
    )
    return [(int(r["pid"]), r["tz"]) for r in rows]


async def exclude_beyond_throttle(run: CampaignRun, throttle: int, conn: BaseDBAsyncClient) -> None:
    """A run must end within THROTTLE_WINDOW_SECONDS at its throttle: the deliveries beyond what that allows
    (in profile order, so a repeated snapshot cuts the same ones) are EXCLUDED with THROTTLE_CUTOFF."""
    allowed = int(throttle * THROTTLE_WINDOW_SECONDS)
    params = SqlParams(dialect_of())
    run_outer, run_inner = params.add(run.id), params.add(run.id)
    offset = params.add(allowed)
    # SQLite needs a LIMIT to take an OFFSET (-1: none).
    limit = " LIMIT -1" if params.dialect is Dialect.SQLITE else ""
    sql = (
        f"UPDATE delivery SET status = '{DeliveryStatus.EXCLUDED.value}', "
        f"reason = '{ExclusionReason.THROTTLE_CUTOFF.value}' "
        f"WHERE run_id = {run_outer} AND id IN (SELECT id FROM delivery WHERE run_id = {run_inner} "
        f"AND {sources_sql(DeliveryTransition.THROTTLE_CUT)} ORDER BY profile_id{limit} OFFSET {offset})"
    )
    await conn.execute_query(sql, params.values)


async def analyze_if_large(total: int) -> None:
    if total >= ANALYZE_AFTER_ROWS and dialect_of() is Dialect.POSTGRES:
        # The planner has no statistics for rows this new: it then claims each batch through the run_id index and
        # sorts the whole run (1.3 s a batch at 1,000,000 rows) instead of walking the primary key from after_id.
        # A sample of 3,000 rows (statistics target 10, against 30,000) tells it as well that the run holds most of
        # the table, in a tenth of the reads: the full ANALYZE was the API's worst moment as a large send began.
        # Autovacuum's next ANALYZE restores the default target's detail.
        async with in_transaction() as conn:
            await conn.execute_script("SET LOCAL default_statistics_target = 10; ANALYZE delivery")
