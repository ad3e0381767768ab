"""Sending one claimed batch: render, send through the adapter, turn results into ledger outcomes; plus the
lease renewal around it and the retried write of its results."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import DBConnectionError

from jobs.channels.base import ChannelAdapter, FailureCode, MessageContent, OutgoingMessage, SendResult, SendStatus
from jobs.pausing import batch_pause, held_back, not_sent
from jobs.rendering import Renderer, RenderFailed
from jobs.tracking import MessageTracker
from models.audience.entities import Profile, SuppressionReason
from models.audience.suppression import insert_suppressions
from models.campaigns.campaign import CampaignRun
from models.campaigns.rules import Channel
from models.campaigns.transitions import extend_run_lease
from models.ledger.claims import Claimed, mark_handed, renew_batch_lease
from models.ledger.delivery import DeliveryStatus, ExclusionReason
from models.ledger.outcomes import Outcome, Recount, record_batch_failures, write_outcomes, write_outcomes_marking
from models.reporting.tracking import BounceType
from models.sql.params import SqlParams
from models.sql.reads import dialect_of, json_column, one_of
from models.triggers.progress import recount_in

logger = logging.getLogger(__name__)
# A run's own warnings keep the run executor's logger name, wherever in the sending path they are raised.
run_logger = logging.getLogger("jobs.runs")


# A connection cut under a statement (PostgreSQL restarted, pg_terminate_backend, a network blip).
TRANSIENT_DB_ERRORS = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    # asyncpg resetting a connection the server terminated, while it is released to the pool.
    asyncpg.exceptions.InternalClientError,
    DBConnectionError,
    OSError,
)


# PostgreSQL rolled the whole transaction back to break a lock cycle or a serialization conflict: running it
# again is what the server asks for. Tortoise wraps asyncpg's error, so the cause is looked at too.
ROLLED_BACK_ERRORS = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


def _rolled_back(exc: BaseException) -> bool:
    return isinstance(exc, ROLLED_BACK_ERRORS) or isinstance(exc.__cause__, ROLLED_BACK_ERRORS)


async def with_db_retry(action: Callable[..., Awaitable[Any]], *args: Any, attempts: int = 6) -> Any:
    """Runs an idempotent write again on a transient connection failure or a transaction the server rolled back
    (deadlock): losing a batch's results after its messages went out would send them all a second time once the
    lease expires."""
    for attempt in range(attempts):
        try:
            return await action(*args)
        except Exception as exc:
            if not (isinstance(exc, TRANSIENT_DB_ERRORS) or _rolled_back(exc)) or attempt == attempts - 1:
                raise
            logger.warning("database write failed (%s), writing again", exc)
            await asyncio.sleep(0.1 * 2**attempt)


def _now() -> datetime:
    return datetime.now(UTC)


# Lease renewals per lease period: the lease is short (RUN_LEASE_SECONDS, 5 s), so a renewal delayed by a busy
# machine or database must not let it lapse while the worker still sends (another would send the rows too).
RENEWALS_PER_LEASE = 5

# Messages sent between two writes of their outcomes: what a worker killed mid-batch sends again (the rows it had
# claimed are claimed again once their lease expires, each sent with its own Message-ID). In-app messages are
# inbox rows written with ON CONFLICT DO NOTHING, so sending one again duplicates nothing: whole batches there.
OUTCOMES_EVERY = 20


def outcome_of(
    claimed: Claimed, result: SendResult, now: datetime, retry_deadline: datetime, unconfirmed_window: float = 1800.0
) -> tuple[Outcome, bool]:
    """The ledger row a send result leads to, and whether the address goes on the suppression list."""
    error = f"{result.provider_code or ''} {result.message}".strip()[:2000] or None
    if result.status is SendStatus.SENT:
        sent = Outcome(
            claimed.id, DeliveryStatus.SENT, provider_id=result.provider_message_id, relay_id=result.relay_id, sent=True
        )
        return sent, False
    reason = result.reason.value if result.reason else None
    if result.status is SendStatus.UNCONFIRMED:
        # next_attempt_at is when the unconfirmed window ends (models/ledger/outcomes.settle_unconfirmed).
        when = now + timedelta(seconds=unconfirmed_window)
        return Outcome(claimed.id, DeliveryStatus.UNCONFIRMED, reason, error, next_attempt_at=when), False
    if result.status is SendStatus.RETRY:
        when = now + timedelta(seconds=result.retry_after or 30.0)
        if when > retry_deadline:
            return Outcome(claimed.id, DeliveryStatus.FAILED, ExclusionReason.RETRY_EXPIRED.value, error), False
        return Outcome(claimed.id, DeliveryStatus.QUEUED, reason, error, next_attempt_at=when), False
    if result.status is SendStatus.SOFT_FAIL:
        return Outcome(claimed.id, DeliveryStatus.BOUNCED, reason, error, bounce_type=BounceType.SOFT.value), False
    return Outcome(claimed.id, DeliveryStatus.FAILED, reason, error), result.suppress_address


@dataclasses.dataclass(slots=True)
class BatchLease:
    """A claimed batch's lease while it is sent: its current token (the lease end the claim or the last renewal
    wrote; models.ledger.claims.Claimed.lease_until), and the lock renewals and the batch's writes take turns
    under (two UPDATEs of the same rows at once may deadlock)."""

    until: datetime | None
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


async def mark_handing(run_id: int, rows: list[Claimed], lease: BatchLease) -> set[int]:
    """The resend marks and count of rows about to go to the provider, for channels whose sends are not
    idempotent; returns the ids of those another worker claimed meanwhile, not to be handed off here. Call it
    under `lease.lock`."""
    if not rows:
        return set()
    held, again = await with_db_retry(mark_handed, run_id, rows, lease.until)
    return _not_held(run_id, rows, held, again)


def _not_held(run_id: int, rows: list[Claimed], held: list[Claimed], again: int) -> set[int]:
    """The rows of `rows` the marks did not find under this worker's lease; the resends and lapses logged."""
    if again:
        logger.warning("run %s: %s messages sent again (their worker died before recording them)", run_id, again,
                       extra={"run_id": run_id})  # fmt: skip
    lost = {c.id for c in rows} - {c.id for c in held}
    if lost:
        # This worker's lease lapsed (a stall longer than the lease) and another claimed the rows: theirs to send.
        logger.warning("run %s: %s rows claimed by another worker after this one's lease lapsed: not sent here",
                       run_id, len(lost), extra={"run_id": run_id})  # fmt: skip
    return lost


@contextlib.asynccontextmanager
async def keep_leased(
    run: CampaignRun, batch: Sequence[Claimed], lease: float, clock: Callable[[], datetime] = _now
) -> AsyncIterator[BatchLease]:
    """Renews the batch's leases (and the run's) while it is being sent: a batch slower than the lease would
    otherwise be claimed by another job and sent twice. Yields the batch's lease: writes of the batch's outcomes
    and marks hold its lock, as each renewal does."""
    held = BatchLease(batch[0].lease_until if batch else None)

    async def renew() -> None:
        ids = [c.id for c in batch]
        while True:
            await asyncio.sleep(lease / RENEWALS_PER_LEASE)
            until = clock() + timedelta(seconds=lease)
            try:
                async with held.lock:
                    await renew_batch_lease(run.id, ids, held.until, until)
                    held.until = until
                await extend_run_lease(run, until)
            except Exception:  # the batch is being sent: never let a renewal failure lose its results
                # A renewal that committed but did not answer leaves the rows under a token this worker does
                # not know: it hands off none of them, and they are claimed again once that lease ends.
                logger.warning("could not renew a batch lease", exc_info=True)

    task = asyncio.create_task(renew())
    try:
        yield held
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def keep_run_leased(run: CampaignRun, lease: float) -> AsyncIterator[None]:
    """Renews the run's lease while a step other than sending (the audience snapshot) runs."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease / RENEWALS_PER_LEASE)
            try:
                await extend_run_lease(run, _now() + timedelta(seconds=lease))
            except Exception:
                logger.warning("could not renew a run lease", exc_info=True)

    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def trigger_contexts(delivery_ids: Sequence[int]) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """(the trigger call's context, the recipient's) of each row: the rows of one batch come from many triggers."""
    params = SqlParams(dialect_of())
    rows = await connections.get("default").execute_query_dict(
        f"SELECT d.id, t.context AS call, d.context AS recipient FROM delivery d "
        f"LEFT JOIN campaign_trigger t ON t.id = d.trigger_id WHERE {one_of(params, 'd.id', delivery_ids)}",
        params.values,
    )
    return {int(r["id"]): (json_value(r["call"]), json_value(r["recipient"])) for r in rows}


def json_value(value: Any) -> dict[str, Any]:
    """A JSON object column read by raw SQL (models.sql.reads.json_column); {} for NULL."""
    return dict(json_column(value) or {})


@dataclasses.dataclass(slots=True)
class PreparedBatch:
    """A claimed batch rendered and tracked ahead of sending: the rows that could not be rendered (their outcomes,
    written with the first chunk) and the messages of the others, in the batch's order."""

    channel: Channel
    failed: list[Outcome]
    rows: list[Claimed]
    messages: list[OutgoingMessage]
    triggered: bool = False  # an API campaign's rows: their triggers are recounted with the outcomes

    def chunks(self) -> list[tuple[list[Claimed], list[OutgoingMessage]]]:
        """The messages in the chunks whose outcomes are written one after the other."""
        size = max(len(self.rows), 1) if self.channel is Channel.IN_APP else OUTCOMES_EVERY
        return [(self.rows[i : i + size], self.messages[i : i + size]) for i in range(0, len(self.rows), size)]


async def prepare_batch(
    batch: list[Claimed],
    renderer: Renderer,
    now: datetime,
    tracker: MessageTracker | None = None,
    triggered: bool = False,
    attributes: dict[int, Any] | None = None,
) -> PreparedBatch:
    """Renders and tracks a whole claimed batch: one profile read and one link lookup per batch, not per chunk.
    `triggered`: an API campaign's rows, each rendered with its trigger's context and its own. `attributes`: the
    profiles' attributes by profile id when the caller read them with the rows (else read here)."""
    if attributes is None:
        attributes = dict(await Profile.filter(id__in=[c.profile_id for c in batch]).values_list("id", "attributes"))
    contexts: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    if triggered:
        contexts = await trigger_contexts([c.id for c in batch])
    failed: list[Outcome] = []
    contents: list[MessageContent] = []
    rows: list[Claimed] = []
    for claimed in batch:
        unsubscribe_url = tracker.unsubscribe_url(claimed.id) if tracker is not None else None
        try:
            content = renderer.variant(claimed.treatment).render(
                attributes.get(claimed.profile_id) or {},
                unsubscribe_url,
                *(contexts.get(claimed.id, ({}, {})) if triggered else (None, None)),
            )
        except RenderFailed as exc:
            failed.append(Outcome(claimed.id, DeliveryStatus.FAILED, ExclusionReason.TEMPLATE_ERROR.value, str(exc)))
            continue
        contents.append(content)
        rows.append(claimed)
    if tracker is not None and tracker.active:
        # Link ids for the whole batch first, so rewriting each message needs no database round trip.
        contents = await tracker.track(contents, [claimed.id for claimed in rows], now)
    messages = [
        OutgoingMessage(claimed.key, claimed.address, content, attempt=claimed.attempts)
        for content, claimed in zip(contents, rows, strict=True)
    ]
    return PreparedBatch(renderer.channel, failed, rows, messages, triggered)


async def send_prepared(
    rows: list[Claimed],
    messages: list[OutgoingMessage],
    adapter: ChannelAdapter | None,
    now: datetime,
    retry_deadline: datetime,
    unconfirmed_window: float = 1800.0,
) -> tuple[list[Outcome], list[str]]:
    """Sends prepared messages (their resend marks already made): their outcomes and the addresses to suppress."""
    outcomes: list[Outcome] = []
    suppressed: list[str] = []
    if not messages:
        return outcomes, suppressed
    if adapter is None:
        no_preset = SendResult.hard_fail(FailureCode.PROVIDER_REJECTED, "the campaign has no preset")
        results = [no_preset] * len(messages)
    else:
        results = await adapter.send_batch(messages)
    for claimed, result in zip(rows, results, strict=True):
        outcome, bad_address = outcome_of(claimed, result, now, retry_deadline, unconfirmed_window)
        outcomes.append(outcome)
        if bad_address:
            suppressed.append(claimed.address)
    return outcomes, suppressed


async def send_chunks(
    run: CampaignRun,
    prepared: PreparedBatch,
    adapter: ChannelAdapter | None,
    lease: BatchLease,
    retry_deadline: datetime,
    clock: Callable[[], datetime],
    unconfirmed_window: float,
    contact: Any,
) -> tuple[Any, ...] | None:
    """Sends a prepared batch chunk by chunk, each chunk's outcomes written before the next chunk goes out: a worker
    killed mid-batch sends at most one chunk again (issue 22: the crash window). A chunk's outcomes and the next
    chunk's resend marks are written side by side, one wait instead of two. Returns the pause (jobs/pausing.py)
    when the provider refused the preset."""
    # In-app sends are idempotent inserts (nothing is sent twice): no resend marks for them.
    marks = prepared.channel is not Channel.IN_APP and adapter is not None
    chunks = prepared.chunks()
    now = clock()

    async def mark(rows: list[Claimed]) -> set[int]:
        return await mark_handing(run.id, rows, lease) if marks else set()

    async with lease.lock:  # not beside a renewal of the same rows
        _, lost = await asyncio.gather(
            record_chunk(run, prepared.failed, [], contact, now, prepared.triggered),
            mark(chunks[0][0] if chunks else []),
        )
    for index, (rows, messages) in enumerate(chunks):
        if lost:
            kept = [(row, message) for row, message in zip(rows, messages, strict=True) if row.id not in lost]
            rows, messages = [row for row, _ in kept], [message for _, message in kept]
        outcomes, to_suppress = await send_prepared(rows, messages, adapter, now, retry_deadline, unconfirmed_window)
        now = clock()
        paused = batch_pause(outcomes)
        if paused is not None:
            # The provider refused the preset: nothing here is about the recipients (jobs/pausing.py).
            # The chunks not sent go back to the queue with the chunk's unsent rows.
            unsent = [c for later, _ in chunks[index + 1 :] for c in later]
            async with lease.lock:
                await with_db_retry(
                    write_outcomes,
                    held_back(outcomes) + not_sent(unsent),
                    now,
                    run.sandbox_id,
                    trigger_recount(run, now, prepared.triggered),
                )
            return paused
        following = chunks[index + 1][0] if index + 1 < len(chunks) else []
        async with lease.lock:
            _, lost = await asyncio.gather(
                record_chunk(run, outcomes, to_suppress, contact, now, prepared.triggered),
                mark(following),
            )
    return None


async def record_and_mark(
    run: CampaignRun,
    outcomes: list[Outcome],
    to_suppress: list[str],
    contact: Any,
    now: datetime,
    triggered: bool,
    following: list[Claimed],
    lease: BatchLease,
) -> set[int]:
    """`record_chunk` of a chunk's results and `mark_handing(following)` of the next rows to hand off, in one
    statement when the results need no recount (models.ledger.outcomes.write_outcomes_marking); returns the rows
    not to hand off (mark_handing's answer). Call it under `lease.lock`."""
    recount = trigger_recount(run, now, triggered)
    if recount is not None or not outcomes or not following:
        _, lost = await asyncio.gather(
            record_chunk(run, outcomes, to_suppress, contact, now, triggered), mark_handing(run.id, following, lease)
        )
        return lost
    held, again = await with_db_retry(
        write_outcomes_marking, outcomes, now, run.sandbox_id, run.id, following, lease.until
    )
    await _after_outcomes(run, outcomes, to_suppress, contact, now)
    return _not_held(run.id, following, held, again)


async def record_chunk(
    run: CampaignRun,
    outcomes: list[Outcome],
    to_suppress: list[str],
    contact: Any,
    now: datetime,
    triggered: bool = False,
) -> None:
    """A chunk's results: ledger outcomes, the failure figures, hard-bounced addresses suppressed."""
    await with_db_retry(write_outcomes, outcomes, now, run.sandbox_id, trigger_recount(run, now, triggered))
    await _after_outcomes(run, outcomes, to_suppress, contact, now)


async def _after_outcomes(
    run: CampaignRun, outcomes: list[Outcome], to_suppress: list[str], contact: Any, now: datetime
) -> None:
    """What follows a chunk's written outcomes: the failure figures, hard-bounced addresses suppressed."""
    await note_failures(run, outcomes)
    if contact is not None:
        await with_db_retry(
            insert_suppressions, run.sandbox_id, contact, to_suppress, SuppressionReason.HARD_BOUNCE, now
        )


async def note_failures(run: CampaignRun, outcomes: list[Outcome]) -> None:
    """The latest failure's reason on the run, and a warning when every send of the chunk failed."""
    failures = await with_db_retry(record_batch_failures, run.id, outcomes)
    if failures is not None and failures.all_failed:
        # Once per chunk, not per message: a run whose sends all fail must show in the logs.
        run_logger.warning(
            "run %s: all %s sends of a batch failed, latest %s: %s",
            run.id, failures.total, failures.latest_reason, failures.latest_error,
            extra={"run_id": run.id, "campaign_id": run.campaign_id, "reason": failures.latest_reason},
        )  # fmt: skip


def trigger_recount(run: CampaignRun, now: datetime, triggered: bool = False) -> Recount | None:
    """For an API campaign's run (`triggered`; a shared trigger run is one): its triggers' counts, recounted in
    each outcome write's transaction, so a worker killed after the write leaves no trigger counted pending."""
    if not (run.open_for_triggers or triggered):
        return None

    async def recount(conn: BaseDBAsyncClient, delivery_ids: list[int]) -> None:
        await recount_in(conn, run.sandbox_id, run.campaign_id, run.id, delivery_ids, now)

    return recount
