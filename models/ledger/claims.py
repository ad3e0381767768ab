"""Claiming a batch of deliveries to send (QUEUED or expired SENDING → SENDING with a lease) and renewing it."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from models.ledger.delivery_rules import DeliveryStatus, DeliveryTransition, sources_sql
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of, one_of

BATCH_SIZE = 500
_Q, _S = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value
# The two kinds of claimable rows, each taken by a statement of its own (see claim_batch).
_EXPIRED = f"status = '{_S}' AND lease_until < {{now}}"
_DUE = f"status = '{_Q}' AND id > {{after}} AND (next_attempt_at IS NULL OR next_attempt_at <= {{now}})"


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    profile_id: int
    address: str
    key: str
    attempts: int
    treatment: str | None = None  # the experiment treatment whose content the profile gets
    # Hand-offs to the provider by earlier holders of this claim (a killed worker's expired lease): > 0 means
    # the message may already have gone out, so sending it now may be a resend.
    hand_offs: int = 0
    # The claim's lease end, unique per claim: the fencing token. A holder whose lease lapsed (a stalled worker)
    # and was claimed again no longer matches it, so it neither renews nor hands off the rows (mark_handed).
    lease_until: datetime | None = None


async def claim_batch(
    run_id: int, now: datetime, lease: float, size: int = BATCH_SIZE, after_id: int = 0
) -> list[Claimed]:
    """QUEUED (due) or SENDING-with-expired-lease rows → SENDING with a lease.

    `after_id`: only QUEUED rows after it (keyset), so a pass over a large run does not re-read the rows already
    sent. Rows whose lease expired (a killed worker's) are taken wherever they are, first: they wait for no pass.
    A run sent in waves: only rows of its current wave or an earlier one (models.ledger.waves).

    Two statements, as `take_due`: with the two kinds in one statement's OR, PostgreSQL walked the run's rows
    from its first at every batch (the expired rows have no `id` bound), quadratic in the run's size. Each
    statement claims atomically on its own; a worker dying between them leaves leases that expire."""
    # Random microseconds make the lease end this claim's own (see Claimed.lease_until).
    until = now + timedelta(seconds=lease, microseconds=secrets.randbelow(1_000_000))
    expired = await _claim(run_id, _EXPIRED, now, until, size, after_id)
    queued = await _claim(run_id, _DUE, now, until, size - len(expired), after_id) if len(expired) < size else []
    return sorted(expired + queued, key=lambda c: c.id)


async def _claim(
    run_id: int, condition: str, now: datetime, until: datetime, size: int, after_id: int
) -> list[Claimed]:
    conn = connections.get("default")
    params = SqlParams(dialect_of())
    # In the order the placeholders appear in the text (SQLite's `?` are positional).
    lease_until, updated = params.typed(until), params.typed(now)
    rows_sql = _rows_of_run(params, run_id, condition, now, size, after_id)
    # hand_offs is kept only on an expired SENDING row (its holder died): a QUEUED row starts a new attempt.
    sql = (
        f"UPDATE delivery SET status = '{_S}', lease_until = {lease_until}, updated_at = {updated}, "
        f"hand_offs = CASE WHEN status = '{_S}' THEN hand_offs ELSE 0 END "
        f"WHERE id IN (SELECT id FROM delivery WHERE {sources_sql(DeliveryTransition.CLAIM)} AND {rows_sql}) "
        f"RETURNING id, profile_id, address, idempotency_key, attempts, treatment, hand_offs"
    )
    rows = await conn.execute_query_dict(sql, params.values)
    return [
        Claimed(
            int(r["id"]),
            int(r["profile_id"]),
            r["address"],
            r["idempotency_key"],
            int(r["attempts"]),
            r["treatment"],
            int(r["hand_offs"] or 0),
            until,
        )
        for r in rows
    ]


async def take_due(
    conn: BaseDBAsyncClient, run_id: int, now: datetime, size: int, after_id: int = 0
) -> list[tuple[Claimed, object]]:
    """The rows `claim_batch` would claim, with their profile's attributes (JSON), locked in `conn`'s transaction
    (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite's write transactions are serial) and not changed: a sender that
    records their outcomes in the same transaction needs no lease (an in-app delivery, jobs/inapp_direct.py).

    Two statements, not claim_batch's one with an OR: the QUEUED rows' `id > after_id` is then the primary key
    scan's start, where the OR made every batch read the run's rows from the first (quadratic in the run's size)."""
    expired = await _take(conn, run_id, _EXPIRED, now, size, after_id)
    queued = await _take(conn, run_id, _DUE, now, size - len(expired), after_id) if len(expired) < size else []
    return sorted(expired + queued, key=lambda taken: taken[0].id)


async def _take(
    conn: BaseDBAsyncClient, run_id: int, condition: str, now: datetime, size: int, after_id: int
) -> list[tuple[Claimed, object]]:
    params = SqlParams(dialect_of())
    rows_sql = _rows_of_run(params, run_id, condition, now, size, after_id)
    # The CTE is evaluated once (PostgreSQL materializes a locking CTE); each profile read by its key, where a
    # join walked the profiles' primary key from the first up to the batch's.
    sql = (
        f"WITH c AS (SELECT id, profile_id, address, idempotency_key, attempts, treatment FROM delivery "
        f"WHERE {rows_sql}) "
        f"SELECT c.*, (SELECT p.attributes FROM profile p WHERE p.id = c.profile_id) AS attributes FROM c"
    )
    rows = await conn.execute_query_dict(sql, params.values)
    return [
        (
            Claimed(int(r["id"]), int(r["profile_id"]), r["address"], r["idempotency_key"], int(r["attempts"]),
                    r["treatment"]),
            r["attributes"],
        )
        for r in rows
    ]  # fmt: skip


def _rows_of_run(params: SqlParams, run_id: int, condition: str, now: datetime, size: int, after_id: int) -> str:
    """The first `size` rows of the run matching `condition` (_EXPIRED or _DUE) in its open waves, by id, locked
    and skipped when locked on PostgreSQL: a WHERE clause with its ORDER BY, LIMIT and lock."""
    # In the order the placeholders appear in the text (SQLite's `?` are positional).
    run, wave_run = params.add(run_id), params.add(run_id)
    values = {"after": params.add(after_id) if "{after}" in condition else "", "now": params.typed(now)}
    limit = params.add(size)
    lock = " FOR UPDATE SKIP LOCKED" if params.dialect is Dialect.POSTGRES else ""
    return (
        f"run_id = {run} AND (wave IS NULL OR wave <= (SELECT r.wave FROM campaign_run r WHERE r.id = {wave_run})) "
        f"AND {condition.format(**values)} ORDER BY id LIMIT {limit}{lock}"
    )


async def taken_elsewhere(run_id: int, now: datetime) -> bool:
    """Whether due QUEUED rows remain after a pass of `take_due` found none: rows another sender has taken in a
    transaction not yet committed (they look QUEUED until it commits, and SKIP LOCKED passes over them)."""
    params = SqlParams(dialect_of())
    run, wave_run, due = params.add(run_id), params.add(run_id), params.typed(now)
    # What take_due would take but for the locks: of a later wave, or due later, is not taken elsewhere.
    rows = await connections.get("default").execute_query_dict(
        f"SELECT 1 AS one FROM delivery WHERE run_id = {run} AND status = '{_Q}' AND (wave IS NULL OR wave <= "
        f"(SELECT r.wave FROM campaign_run r WHERE r.id = {wave_run})) "
        f"AND (next_attempt_at IS NULL OR next_attempt_at <= {due}) LIMIT 1",
        params.values,
    )
    return bool(rows)


async def renew_batch_lease(run_id: int, ids: Sequence[int], held: datetime | None, until: datetime) -> None:
    """Moves the lease end of the rows still held under `held` (the token) to `until`, the new token."""
    params = SqlParams(dialect_of())
    lease_until, run = params.typed(until), params.add(run_id)
    # One array parameter on PostgreSQL: one prepared statement whatever the batch's size (a new IN list was a
    # new statement to parse, a round trip more for a worker short of CPU).
    rows = one_of(params, "id", ids)
    still_held = f" AND lease_until = {params.typed(held)}" if held is not None else ""
    await connections.get("default").execute_query(
        f"UPDATE delivery SET lease_until = {lease_until} "
        f"WHERE run_id = {run} AND status = '{_S}' AND {rows}{still_held}",
        params.values,
    )


async def mark_handed(run_id: int, batch: Sequence[Claimed], held: datetime | None) -> tuple[list[Claimed], int]:
    """Records that `batch` is about to be handed to the provider, before it is: a worker killed after the hand-off
    leaves the mark, and whoever claims the rows again counts its send as a resend. Adds to the run's `resent`
    the rows an earlier holder had marked. Returns the rows still held under `held` (the lease's token: rows
    claimed again after this holder's lease lapsed are another worker's to send) and how many were resends.

    Counted when marked, not when sent: a worker killed in between sent nothing but is counted (an upper bound).
    """
    if not batch:
        return [], 0
    conn = connections.get("default")
    params = SqlParams(dialect_of())
    marked = await conn.execute_query_dict(mark_sql(params, run_id, batch, held), params.values)
    return await count_resends(conn, run_id, batch, {int(r["id"]) for r in marked})


def mark_sql(params: SqlParams, run_id: int, batch: Sequence[Claimed], held: datetime | None) -> str:
    """mark_handed's UPDATE, returning the ids of the rows marked (a statement of its own, or a CTE)."""
    run = params.add(run_id)
    handed = one_of(params, "id", [c.id for c in batch])
    still_held = f" AND lease_until = {params.typed(held)}" if held is not None else ""
    return (
        f"UPDATE delivery SET hand_offs = hand_offs + 1 "
        f"WHERE run_id = {run} AND status = '{_S}' AND {handed}{still_held} RETURNING id"
    )


async def count_resends(
    conn: BaseDBAsyncClient, run_id: int, batch: Sequence[Claimed], marked: set[int]
) -> tuple[list[Claimed], int]:
    """After the marks (`marked`: the ids changed): mark_handed's answer, the resends added to the run's count."""
    held_rows = [c for c in batch if c.id in marked]
    again = sum(1 for c in held_rows if c.hand_offs > 0)
    if again:
        params = SqlParams(dialect_of())
        added, run = params.add(again), params.add(run_id)
        await conn.execute_query(f"UPDATE campaign_run SET resent = resent + {added} WHERE id = {run}", params.values)
    return held_rows, again
