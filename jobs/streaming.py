"""Sending a prepared batch as a stream (issue 22): the channel's connections never wait for a ledger write.

Chunks sent and then recorded one after the other left every connection idle while a chunk's outcomes and the
next chunk's resend marks were written, and while the chunk's slowest message finished. Here the adapter's
`max_concurrency` senders take the batch's messages one by one, and one writer records the outcomes of whatever
has finished each time its previous write is done, while the senders go on.

The crash window stays bounded: a message goes to the provider only once its resend mark is written, and at
most OUTCOMES_EVERY messages are marked and not yet recorded, so a worker killed at any moment sends at most that
many again (each with its own Message-ID), and `resent` counts them. A send that did not go is recorded only once
OUTCOMES_EVERY outcomes since it are in without a pause (decided on them, as on a chunk of that size): a pause
puts it back in the queue instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from jobs.channels.base import ConcurrentAdapter
from jobs.pausing import batch_pause, held_back, not_sent
from jobs.sending import (
    OUTCOMES_EVERY,
    BatchLease,
    PreparedBatch,
    mark_handing,
    outcome_of,
    record_and_mark,
    record_chunk,
    trigger_recount,
    with_db_retry,
)
from models.campaigns.campaign import CampaignRun
from models.ledger.claims import Claimed
from models.ledger.delivery import DeliveryStatus
from models.ledger.outcomes import Outcome, write_outcomes


async def stream_batch(
    run: CampaignRun,
    prepared: PreparedBatch,
    adapter: ConcurrentAdapter,
    lease: BatchLease,
    retry_deadline: datetime,
    clock: Callable[[], datetime],
    unconfirmed_window: float,
    contact: Any,
) -> tuple[Any, ...] | None:
    """Sends and records a prepared batch; returns the pause (jobs/pausing.py) when the provider refused the
    preset, after writing what went and putting the rest back in the queue."""
    rows, messages = prepared.rows, prepared.messages
    total = len(rows)
    window = OUTCOMES_EVERY
    async with lease.lock:  # not beside a renewal of the same rows
        # Rows whose marks found them claimed by another worker (this one's lease lapsed): not sent, not recorded.
        _, lost = await asyncio.gather(
            record_chunk(run, prepared.failed, [], contact, clock(), prepared.triggered),
            mark_handing(run.id, rows[:window], lease),
        )
    if not total:
        return None
    finished: list[tuple[Claimed, Outcome, bool]] = []
    marked, handed, recorded, skipped, in_flight = min(window, total), 0, 0, 0, 0
    stopping = False
    broken: list[BaseException] = []
    # Single-threaded: plain counters, and events to wake the senders (more rows marked, or stop) and the writer.
    more_marked = asyncio.Event()
    worth_writing = asyncio.Event()

    def wake_writer() -> None:
        # Half a window finished, or nothing left in flight: a write now neither stalls the senders nor wastes a
        # statement on one or two rows. Or every marked row was skipped: the writer marks the next window (or ends).
        idle = in_flight == 0 and (bool(finished) or handed >= marked)
        if broken or len(finished) >= window // 2 or idle:
            worth_writing.set()

    async def sender() -> None:
        nonlocal handed, in_flight, skipped
        try:
            while True:
                while handed >= marked and handed < total and not stopping:
                    more_marked.clear()
                    await more_marked.wait()
                if stopping or handed >= total:
                    return
                index = handed
                handed += 1
                if rows[index].id in lost:
                    skipped += 1
                    wake_writer()
                    continue
                in_flight += 1
                result = await adapter.send_guarded(messages[index])
                outcome, bad_address = outcome_of(rows[index], result, clock(), retry_deadline, unconfirmed_window)
                in_flight -= 1
                finished.append((rows[index], outcome, bad_address))
                wake_writer()
        except Exception as exc:  # never leave the writer waiting for a sender that is gone
            broken.append(exc)
            worth_writing.set()
            raise

    async def take_finished() -> list[tuple[Claimed, Outcome, bool]]:
        while True:
            wake_writer()
            if worth_writing.is_set():
                break
            await worth_writing.wait()
        worth_writing.clear()
        if broken:
            raise broken[0]
        group = list(finished)
        finished.clear()
        return group

    senders = [asyncio.create_task(sender()) for _ in range(min(adapter.max_concurrency, total))]
    # Sends that did not go wait for a verdict (a pause puts them back in the queue, not FAILED) until a window of
    # outcomes since the first of them is in, as a chunk of that size waited; sent ones are recorded at once.
    undecided: list[tuple[Claimed, Outcome, bool]] = []
    since: list[Outcome] = []
    try:
        while recorded + skipped < total:
            group = await take_finished()
            if undecided or any(outcome.status is not DeliveryStatus.SENT for _, outcome, _ in group):
                since += [outcome for _, outcome, _ in group]
            undecided += [item for item in group if item[1].status is not DeliveryStatus.SENT]
            ready = [item for item in group if item[1].status is DeliveryStatus.SENT]
            stalled = in_flight == 0 and not finished and (handed >= total or handed >= marked)
            decided = bool(undecided) and (len(since) >= window or stalled)
            paused = batch_pause(since) if decided else None
            if paused is not None:
                stopping = True
                more_marked.set()
                await asyncio.gather(*senders)  # the messages in flight finish
                outcomes = [outcome for _, outcome, _ in ready + undecided + finished]
                unsent = [row for row in rows[handed:] if row.id not in lost]
                async with lease.lock:
                    now = clock()
                    await with_db_retry(write_outcomes, held_back(outcomes) + not_sent(unsent), now, run.sandbox_id,
                                        trigger_recount(run, now, prepared.triggered))  # fmt: skip
                return paused
            if decided:
                ready += undecided  # a whole window without a pause: they are what they are
                undecided, since = [], []
            outcomes = [outcome for _, outcome, _ in ready]
            suppressed = [claimed.address for claimed, _, bad_address in ready if bad_address]
            more = min(total, recorded + skipped + len(ready) + window)
            async with lease.lock:
                taken = await record_and_mark(
                    run, outcomes, suppressed, contact, clock(), prepared.triggered, rows[marked:more], lease
                )
            lost |= taken
            recorded += len(ready)
            marked = more
            more_marked.set()
        await asyncio.gather(*senders)
    finally:
        for task in senders:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(*senders, return_exceptions=True)
    return None
