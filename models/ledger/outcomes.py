"""Writing a batch's send results to the ledger, cancelling the unsent rows of an aborted run, re-queuing
retryable failures, and the provider's receipts and bounces: each a transition of ledger/delivery_rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models import outbox
from models.ledger.claims import Claimed, count_resends, mark_handed, mark_sql
from models.ledger.counts import record_last_error
from models.ledger.delivery_rules import DeliveryStatus, DeliveryTransition, check_target, sources_sql
from models.ledger.vocabulary import DeliveryReason
from models.outbox.payloads import DeliveryOutcomes, DeliveryRef
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of
from models.triggers.progress import recount_run_in
from models.webhooks.subscriptions import emit_subscribed, subscribed_event_types

if TYPE_CHECKING:
    from models.campaigns.campaign import CampaignRun

_Q, _S = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value


@dataclass(frozen=True, slots=True)
class Outcome:
    id: int
    status: DeliveryStatus
    reason: str | None = None
    error: str | None = None
    provider_id: str | None = None
    relay_id: str | None = None
    next_attempt_at: datetime | None = None
    sent: bool = False
    # BOUNCED rows say HARD or SOFT (models.tracking.BounceType): reports count bounces by it.
    bounce_type: str | None = None
    # False for a send held back by a paused run: it goes back to QUEUED as if it had not been tried.
    counts_attempt: bool = True


@dataclass(frozen=True, slots=True)
class BatchFailures:
    latest_reason: str  # the reason of the batch's last failed or postponed send
    latest_error: str | None
    failed: int  # sends of the batch that did not go (failed, bounced or postponed)
    total: int

    @property
    def all_failed(self) -> bool:
        return self.failed == self.total


def batch_failures(outcomes: Sequence[Outcome]) -> BatchFailures | None:
    """What went wrong in a batch; None when every send went."""
    failed = [o for o in outcomes if o.status is not DeliveryStatus.SENT]
    if not failed:
        return None
    last = failed[-1]
    return BatchFailures(last.reason or "UNKNOWN", last.error, len(failed), len(outcomes))


async def record_batch_failures(run_id: int, outcomes: Sequence[Outcome]) -> BatchFailures | None:
    """Keeps the reason of the batch's latest failure on the run (progress and the run show it with its count)."""
    failures = batch_failures(outcomes)
    if failures is not None:
        await record_last_error(run_id, failures.latest_reason)
    return failures


# What else an outcome write does in its transaction: an API campaign's trigger counts (models/triggers/progress).
Recount = Callable[[BaseDBAsyncClient, list[int]], Awaitable[Any]]


async def write_outcomes(
    outcomes: Sequence[Outcome], now: datetime, sandbox_id: int | None = None, recount: Recount | None = None
) -> None:
    """All results of a batch in one UPDATE … FROM (VALUES …), only on rows still SENDING; with them, in the same
    transaction, the delivery events endpoints subscribed to (of the rows this write changed, none other), and
    `recount` of the rows' ids: a worker killed after the commit leaves nothing of it undone.

    `sandbox_id` known, no endpoint of it taking delivery events and no `recount`: the plain UPDATE, no
    transaction (the hot path of a send nobody listens to stays one statement per chunk)."""
    if not outcomes:
        return
    listened = True
    if sandbox_id is not None:
        default = connections.get("default")
        if recount is None and await _write_all(default, outcomes, now, unless_listened_in=sandbox_id):
            return  # one statement: its own check found no endpoint taking delivery events
        listened = await _delivery_events_listened(sandbox_id, default)
        if not listened and recount is None:
            await _write_all(default, outcomes, now)
            return
    async with in_transaction() as conn:
        changed = await _write_all(conn, outcomes, now)
        if listened:
            await _emit_outcome_events(conn, changed, now)
        if recount is not None:
            await recount(conn, [o.id for o in outcomes])
    if recount is not None:
        outbox.committed()


_CHUNK_ROWS = 2000
_EVENT_OUTCOMES = (DeliveryStatus.SENT.value, DeliveryStatus.FAILED.value, DeliveryStatus.BOUNCED.value)


async def write_outcomes_in(
    conn: BaseDBAsyncClient, outcomes: Sequence[Outcome], now: datetime, sandbox_id: int, transition: DeliveryTransition
) -> None:
    """`write_outcomes` inside the caller's transaction `conn`, for `transition`'s from-statuses (an in-app
    delivery's DELIVER: the rows were taken in that transaction, never SENDING), with the subscribed events."""
    if not outcomes:
        return
    changed = await _write_all(conn, outcomes, now, transition)
    if await _delivery_events_listened(sandbox_id, conn):
        await _emit_outcome_events(conn, changed, now)


async def write_sent_in(
    conn: BaseDBAsyncClient, delivery_ids: Sequence[int], now: datetime, sandbox_id: int, transition: DeliveryTransition
) -> None:
    """The rows SENT as `write_outcomes_in` writes `Outcome(id, SENT, provider_id=<its key>, sent=True)`, the key
    read in SQL: one array of ids (PostgreSQL) instead of ten columns of outcome values per row."""
    if not delivery_ids:
        return
    check_target(transition, DeliveryStatus.SENT)
    listened = await _delivery_events_listened(sandbox_id, conn)
    pg = dialect_of() is Dialect.POSTGRES
    # SQLite binds each id (999 placeholders at most before 3.32).
    step = len(delivery_ids) if pg else 500
    for start in range(0, len(delivery_ids), step):
        ids = list(delivery_ids[start : start + step])
        params = SqlParams(dialect_of())
        updated, sent_at = params.typed(now, "TIMESTAMPTZ"), params.typed(now, "TIMESTAMPTZ")
        which = f"id = ANY({params.add(ids)}::BIGINT[])" if pg else f"id IN ({', '.join(params.add(i) for i in ids)})"
        returning = f" {_RETURNING}" if listened else ""
        sql = (
            f"UPDATE delivery SET status = '{DeliveryStatus.SENT.value}', reason = NULL, last_error = NULL, "
            f"provider_message_id = idempotency_key, next_attempt_at = NULL, attempts = attempts + 1, "
            f"lease_until = NULL, updated_at = {updated}, sent_at = {sent_at} "
            f"WHERE {which} AND {sources_sql(transition)}{returning}"
        )
        if listened:
            await _emit_outcome_events(conn, await conn.execute_query_dict(sql, params.values), now)
        else:
            await conn.execute_query(sql, params.values)


async def _write_all(
    conn: BaseDBAsyncClient,
    outcomes: Sequence[Outcome],
    now: datetime,
    transition: DeliveryTransition = DeliveryTransition.OUTCOME,
    unless_listened_in: int | None = None,
) -> list[dict[str, Any]]:
    """Every chunk of the outcomes written; the rows they changed. `unless_listened_in`: a sandbox whose enabled
    endpoints taking delivery events, if any, leave the rows unchanged (checked in each statement itself, which
    spares a round trip before it): nothing changed means someone listens, or no row was still SENDING."""
    changed: list[dict[str, Any]] = []
    for start in range(0, len(outcomes), _CHUNK_ROWS):
        chunk = outcomes[start : start + _CHUNK_ROWS]
        written = await _write_chunk(conn, chunk, now, transition, unless_listened_in)
        if not written and unless_listened_in is not None:
            return changed
        changed += written
    return changed


async def _emit_outcome_events(conn: BaseDBAsyncClient, changed: Sequence[dict[str, Any]], now: datetime) -> None:
    groups: dict[tuple[int, int, int, str], list[DeliveryRef]] = defaultdict(list)
    for row in changed:
        if row["status"] in _EVENT_OUTCOMES:
            key = (int(row["sandbox_id"]), int(row["campaign_id"]), int(row["run_id"]), row["status"])
            groups[key].append(DeliveryRef(int(row["id"]), int(row["profile_id"]), row["reason"]))
    by_sandbox: dict[int, list[DeliveryOutcomes]] = defaultdict(list)
    for (sandbox_id, campaign_id, run_id, status), refs in groups.items():
        by_sandbox[sandbox_id].append(DeliveryOutcomes(status, campaign_id, run_id, now, tuple(refs)))
    for sandbox_id, payloads in by_sandbox.items():
        await emit_subscribed(payloads, sandbox_id=sandbox_id, conn=conn)


_COLUMNS = "id, status, reason, err, pid, relay, next_at, is_sent, bounce, tried"
_ARRAY_TYPES = ("BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TIMESTAMPTZ", "INTEGER", "TEXT", "INTEGER")


def _fields(o: Outcome, transition: DeliveryTransition) -> tuple[Any, ...]:
    check_target(transition, o.status)
    return (o.id, o.status.value, o.reason, o.error, o.provider_id, o.relay_id, o.next_attempt_at,
            1 if o.sent else 0, o.bounce_type, 1 if o.counts_attempt else 0)  # fmt: skip


def _values_source(params: SqlParams, outcomes: Sequence[Outcome], transition: DeliveryTransition) -> str:
    """The outcomes as the rows of `v`: on PostgreSQL one array per column through `unnest` (ten parameters
    whatever the count, cheap to bind); on SQLite a VALUES list."""
    rows = [_fields(o, transition) for o in outcomes]
    if params.dialect is Dialect.POSTGRES:
        arrays = ", ".join(
            f"{params.add(list(column))}::{pg_type}[]"
            for column, pg_type in zip(zip(*rows, strict=True), _ARRAY_TYPES, strict=True)
        )
        return f"SELECT * FROM unnest({arrays})"
    groups = ("(" + ", ".join(params.add(value) for value in row) + ")" for row in rows)
    return f"VALUES {', '.join(groups)}"


async def _delivery_events_listened(sandbox_id: int, conn: BaseDBAsyncClient) -> bool:
    """Whether an enabled endpoint of the sandbox takes a `delivery.*` event (read in `conn`'s transaction)."""
    return any(t.startswith("delivery.") for t in await subscribed_event_types(sandbox_id, conn))


def _nobody_listens(params: SqlParams, sandbox_id: int) -> str:
    """True when no enabled endpoint of the sandbox takes a `delivery.*` event (subscribed_event_types' test)."""
    sandbox = params.typed(sandbox_id, "BIGINT")
    if params.dialect is Dialect.POSTGRES:
        events = "jsonb_array_elements_text(w.events) AS e(value)"
    else:
        events = "json_each(w.events) AS e"
    return (
        f"NOT EXISTS (SELECT 1 FROM webhook_endpoint w, {events} WHERE w.sandbox_id = {sandbox} AND w.enabled "
        f"AND substr(e.value, 1, 9) = 'delivery.')"
    )


async def _write_chunk(
    conn: BaseDBAsyncClient,
    outcomes: Sequence[Outcome],
    now: datetime,
    transition: DeliveryTransition,
    unless_listened_in: int | None = None,
) -> list[dict[str, Any]]:
    params = SqlParams(dialect_of())
    source, update = _outcomes_update(params, outcomes, now, transition, unless_listened_in)
    return await conn.execute_query_dict(f"WITH v({_COLUMNS}) AS ({source}) {update}", params.values)


def _outcomes_update(
    params: SqlParams,
    outcomes: Sequence[Outcome],
    now: datetime,
    transition: DeliveryTransition,
    unless_listened_in: int | None = None,
) -> tuple[str, str]:
    """The outcomes' rows (the source of a CTE `v`) and the UPDATE … FROM v writing them."""
    source = _values_source(params, outcomes, transition)
    updated, sent_at = params.typed(now, "TIMESTAMPTZ"), params.typed(now, "TIMESTAMPTZ")
    unheard = "" if unless_listened_in is None else f" AND {_nobody_listens(params, unless_listened_in)}"
    update = (
        f"UPDATE delivery SET status = v.status, reason = v.reason, last_error = v.err, "
        f"provider_message_id = COALESCE(v.pid, delivery.provider_message_id), "
        f"relay_id = COALESCE(v.relay, delivery.relay_id), next_attempt_at = v.next_at, "
        f"attempts = delivery.attempts + v.tried, lease_until = NULL, updated_at = {updated}, "
        f"sent_at = CASE WHEN v.is_sent = 1 THEN {sent_at} ELSE delivery.sent_at END, "
        f"bounce_type = COALESCE(v.bounce, delivery.bounce_type) "
        f"FROM v WHERE delivery.id = v.id AND {sources_sql(transition, 'delivery.status')}{unheard} "
        f"RETURNING delivery.id, delivery.status, delivery.reason, delivery.sandbox_id, delivery.campaign_id, "
        f"delivery.run_id, delivery.profile_id"
    )
    return source, update


async def write_outcomes_marking(
    outcomes: Sequence[Outcome], now: datetime, sandbox_id: int, run_id: int, batch: Sequence[Claimed],
    held: datetime | None,
) -> tuple[list[Claimed], int]:  # fmt: skip
    """`write_outcomes` (no recount) and `mark_handed(run_id, batch, held)` in one statement on PostgreSQL: one
    commit, one WAL flush to wait for, where the two side by side were two. The outcomes are written only if no
    endpoint of the sandbox takes delivery events (as write_outcomes' one-statement path); when one does, the
    marks stand and the outcomes are written again with their events. Returns mark_handed's answer."""
    if dialect_of() is not Dialect.POSTGRES or len(outcomes) > _CHUNK_ROWS or not (outcomes and batch):
        await write_outcomes(outcomes, now, sandbox_id)
        return await mark_handed(run_id, batch, held)
    params = SqlParams(Dialect.POSTGRES)
    source, update = _outcomes_update(params, outcomes, now, DeliveryTransition.OUTCOME, sandbox_id)
    sql = (
        f"WITH marked AS ({mark_sql(params, run_id, batch, held)}), v({_COLUMNS}) AS ({source}), "
        f"written AS ({update}) "
        f"SELECT id, TRUE AS mark FROM marked UNION ALL SELECT id, FALSE AS mark FROM written"
    )
    default = connections.get("default")
    rows = await default.execute_query_dict(sql, params.values)
    if not any(not r["mark"] for r in rows):  # someone listens, or no row was still SENDING
        await write_outcomes(outcomes, now)
    return await count_resends(default, run_id, batch, {int(r["id"]) for r in rows if r["mark"]})


async def cancel_unsent(run: CampaignRun, now: datetime) -> int:
    """Unsent deliveries of an aborted run → CANCELLED. Rows of a batch still in flight (live lease) are left to
    the job sending them, which writes what it sent; the dispatcher cancels them if that job died. In the same
    transaction, the run's triggers still counting pending rows are recounted (with their trigger.progress
    event): a `campaignTriggerStatus` subscriber gets the final figures of an aborting stop."""
    params = SqlParams(dialect_of())
    updated, run_id, expired = params.typed(now), params.add(run.id), params.typed(now)
    sql = (
        f"UPDATE delivery SET status = '{DeliveryStatus.CANCELLED.value}', lease_until = NULL, updated_at = {updated} "
        f"WHERE run_id = {run_id} AND {sources_sql(DeliveryTransition.CANCEL)} "
        f"AND (status IN ('{_Q}', '{DeliveryStatus.TARGETED.value}') "
        f"OR (status = '{_S}' AND (lease_until IS NULL OR lease_until < {expired})))"
    )
    async with in_transaction() as conn:
        cancelled = _rowcount(await conn.execute_query(sql, params.values))
        recounted = await recount_run_in(conn, run.sandbox_id, run.campaign_id, run.id, now) if cancelled else []
    if recounted:
        outbox.committed()
    return cancelled


async def requeue_failed(run_id: int, reasons: Sequence[str], now: datetime, conn: BaseDBAsyncClient) -> int:
    """FAILED rows of the run with one of `reasons` → QUEUED, attempts reset, no lease, no next attempt."""
    params = SqlParams(dialect_of())
    updated, run = params.typed(now), params.add(run_id)
    in_list = ", ".join(params.add(r) for r in reasons) or "NULL"
    sql = (
        f"UPDATE delivery SET status = '{DeliveryStatus.QUEUED.value}', attempts = 0, next_attempt_at = NULL, "
        f"lease_until = NULL, updated_at = {updated} "
        f"WHERE run_id = {run} AND {sources_sql(DeliveryTransition.RESEND)} AND reason IN ({in_list})"
    )
    return _rowcount(await conn.execute_query(sql, params.values))


_RETURNING = "RETURNING id, status, reason, sandbox_id, campaign_id, run_id, profile_id"


async def settle_unconfirmed(run_id: int, now: datetime, *, resend: bool) -> int:
    """UNCONFIRMED rows of the run whose window ended (next_attempt_at) without a status callback: FAILED with
    UNCONFIRMED_TIMEOUT (at most once), or with `resend` QUEUED again, due now (at least once). A FAILED row's
    `delivery.failed` event is written with it, as for any send's outcome."""
    params = SqlParams(dialect_of())
    if resend:
        change = f"status = '{_Q}', reason = NULL, next_attempt_at = NULL"
    else:
        failed, why = DeliveryStatus.FAILED.value, DeliveryReason.UNCONFIRMED_TIMEOUT.value
        change = f"status = '{failed}', reason = '{why}', next_attempt_at = NULL"
    updated, run, due = params.typed(now, "TIMESTAMPTZ"), params.add(run_id), params.typed(now, "TIMESTAMPTZ")
    sql = (
        f"UPDATE delivery SET {change}, updated_at = {updated} "
        f"WHERE run_id = {run} AND {sources_sql(DeliveryTransition.SETTLE)} AND next_attempt_at <= {due} {_RETURNING}"
    )
    async with in_transaction() as conn:
        changed = await conn.execute_query_dict(sql, params.values)
        await _emit_outcome_events(conn, changed, now)
    return len(changed)


async def confirm_unconfirmed(
    delivery_id: int, provider_message_id: str, now: datetime, conn: BaseDBAsyncClient
) -> bool:
    """A status callback for an UNCONFIRMED send (found by the key in its callback URL): the provider has the
    message, so it is SENT with the provider's id (and its `delivery.sent` event, in `conn`'s transaction); the
    callback's own status then applies as for any SENT row."""
    params = SqlParams(dialect_of())
    pid, sent_at = params.typed(provider_message_id, "TEXT"), params.typed(now, "TIMESTAMPTZ")
    updated, delivery = params.typed(now, "TIMESTAMPTZ"), params.typed(delivery_id, "BIGINT")
    sql = (
        f"UPDATE delivery SET status = '{DeliveryStatus.SENT.value}', reason = NULL, next_attempt_at = NULL, "
        f"provider_message_id = COALESCE(provider_message_id, {pid}), sent_at = COALESCE(sent_at, {sent_at}), "
        f"updated_at = {updated} WHERE id = {delivery} AND {sources_sql(DeliveryTransition.CONFIRM)} {_RETURNING}"
    )
    changed = await conn.execute_query_dict(sql, params.values)
    await _emit_outcome_events(conn, changed, now)
    return len(changed) == 1


async def mark_delivered(delivery_id: int, now: datetime, conn: BaseDBAsyncClient) -> bool:
    """A provider's delivery receipt: SENT → DELIVERED. False when the delivery is past it (e.g. bounced)."""
    params = SqlParams(dialect_of())
    delivered, updated = params.typed(now, "TIMESTAMPTZ"), params.typed(now, "TIMESTAMPTZ")
    delivery = params.typed(delivery_id, "BIGINT")
    sql = (
        f"UPDATE delivery SET status = '{DeliveryStatus.DELIVERED.value}', delivered_at = {delivered}, "
        f"updated_at = {updated} WHERE id = {delivery} AND {sources_sql(DeliveryTransition.RECEIPT)}"
    )
    return _rowcount(await conn.execute_query(sql, params.values)) == 1


async def mark_bounced(
    delivery_id: int, bounce_type: str, reason: str, error: str | None, now: datetime, conn: BaseDBAsyncClient
) -> bool:
    """A provider's bounce: SENT or DELIVERED → BOUNCED with its type and reason. False when already past it."""
    params = SqlParams(dialect_of())
    bounce, why, err = params.typed(bounce_type, "TEXT"), params.typed(reason, "TEXT"), params.typed(error, "TEXT")
    updated, delivery = params.typed(now, "TIMESTAMPTZ"), params.typed(delivery_id, "BIGINT")
    sql = (
        f"UPDATE delivery SET status = '{DeliveryStatus.BOUNCED.value}', bounce_type = {bounce}, reason = {why}, "
        f"last_error = {err}, updated_at = {updated} WHERE id = {delivery} AND {sources_sql(DeliveryTransition.BOUNCE)}"
    )
    return _rowcount(await conn.execute_query(sql, params.values)) == 1


def _rowcount(result: object) -> int:
    # Tortoise returns (rowcount, rows) from execute_query on both backends.
    return int(result[0]) if isinstance(result, tuple) and result and isinstance(result[0], int) else 0


async def main_failure_reason(run_id: int) -> str:
    """The most frequent reason of the run's FAILED deliveries (what a run that sent nothing says it died of)."""
    params = SqlParams(dialect_of())
    rows = await connections.get("default").execute_query_dict(
        f"SELECT reason, COUNT(*) AS n FROM delivery WHERE run_id = {params.add(run_id)} "
        f"AND status = '{DeliveryStatus.FAILED.value}' GROUP BY reason ORDER BY n DESC",
        params.values,
    )
    return str(rows[0]["reason"]) if rows else "unknown"
