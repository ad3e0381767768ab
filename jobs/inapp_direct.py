"""In-app runs without leases (issue 22). An in-app delivery is a database write, so a batch is taken, rendered,
written to the inbox and recorded SENT in one transaction: a worker killed (or cut off) anywhere before the commit
leaves nothing of the batch, its rows still QUEUED for the next taker; after the commit, all of it. Nothing can be
written twice, so no row lease, no renewal task, no resend marks, and one ledger write per row instead of two.

For in-app runs that the leased path (jobs/sending.py) would send through `InAppAdapter` with no business rules,
throttle or trigger contexts; every other run, and an in-app run whose inbox write fails, goes the leased way."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from jobs.channels.inapp import InAppAdapter, insert_messages
from jobs.rendering import Renderer
from jobs.send_pacing import BUSY_BATCH_SIZE, SendPacer
from jobs.sending import json_value, note_failures, prepare_batch, with_db_retry
from jobs.tracking import MessageTracker
from models.campaigns.campaign import CampaignRun
from models.ledger.claims import Claimed, take_due
from models.ledger.delivery import DeliveryStatus
from models.ledger.delivery_rules import DeliveryTransition
from models.ledger.outcomes import Outcome, write_outcomes_in, write_sent_in
from models.sql.params import Dialect
from models.sql.reads import dialect_of

logger = logging.getLogger("jobs.runs")

# Rows per transaction. No provider to wait for and no lease to outlast: larger batches mean fewer commits and
# statements per row (measured in docs/performance.md, issue 22's sending path).
IN_APP_BATCH_SIZE = 4000
# Transactions at once (PostgreSQL), each taking its share of the batch (SKIP LOCKED keeps them apart): one
# renders while the database writes the other's rows.
LANES = 2


class DirectInApp:
    """Sends a run's in-app batches each in one transaction (module docstring)."""

    def __init__(
        self,
        run: CampaignRun,
        adapter: InAppAdapter,
        renderer: Renderer,
        tracker: MessageTracker,
        pacer: SendPacer | None = None,
    ) -> None:
        self.run = run
        self.adapter = adapter
        self.renderer = renderer
        self.tracker = tracker
        self.pacer = pacer
        self.asked = 0  # rows the last batch asked for: fewer than given while the API is busy
        self.share = 1.0  # of the time the last batch's sender could work: below 1 while the API is busy

    async def close(self) -> None:
        if self.pacer is not None:
            await self.pacer.aclose()

    @staticmethod
    def fits(adapter: Any, send_rules: Any, throttle: Any, triggered: bool) -> bool:
        return isinstance(adapter, InAppAdapter) and send_rules is None and throttle is None and not triggered

    async def deliver(self, now: datetime, size: int, after_id: int) -> list[Claimed] | None:
        """The rows taken and delivered (empty: none due); None when the batch could not be written for a reason
        other than a dropped connection or a deadlock (retried): the run then goes on the leased path, whose
        adapter records the failure as a retry. While the API is busy, a small batch on one connection, then a rest
        (jobs/send_pacing.py)."""
        busy = self.pacer is not None and await self.pacer.api_busy()
        lanes = LANES if dialect_of() is Dialect.POSTGRES and not busy else 1
        self.asked = min(size, BUSY_BATCH_SIZE) if busy else size
        self.share = self.pacer.share if busy and self.pacer is not None else 1.0
        started = time.monotonic()
        done = await asyncio.gather(
            *(with_db_retry(self._deliver, now, self.asked // lanes, after_id) for _ in range(lanes)),
            return_exceptions=True,
        )
        batch: list[Claimed] = []
        for lane in done:
            if isinstance(lane, BaseException):
                logger.warning("run %s: in-app batch not written in one transaction, sending it the leased way",
                               self.run.id, exc_info=lane, extra={"run_id": self.run.id})  # fmt: skip
                return None
            taken, outcomes = lane
            batch += taken
            if outcomes:
                await note_failures(self.run, outcomes)
        if busy and batch and self.pacer is not None:
            await self.pacer.rest(time.monotonic() - started)
        return sorted(batch, key=lambda c: c.id)

    async def _deliver(self, now: datetime, size: int, after_id: int) -> tuple[list[Claimed], list[Outcome]]:
        adapter = self.adapter
        async with in_transaction() as conn:
            taken = await take_due(conn, self.run.id, now, size, after_id)
            if not taken:
                return [], []
            batch = [claimed for claimed, _ in taken]
            attributes = {claimed.profile_id: json_value(values) for claimed, values in taken}
            prepared = await prepare_batch(batch, self.renderer, now, self.tracker, attributes=attributes)
            statements = insert_messages(
                prepared.messages,
                adapter.dialect,
                sandbox_id=adapter.sandbox_id,
                namespace=adapter.namespace,
                campaign_id=adapter.campaign_id,
                now=now,
            )
            for sql, params in statements:
                await conn.execute_query(sql, params)
            sandbox_id, deliver = self.run.sandbox_id, DeliveryTransition.DELIVER
            await write_outcomes_in(conn, prepared.failed, now, sandbox_id, deliver)
            # What the adapter's SendResult.sent(key) becomes through outcome_of, the key being the provider's id.
            await write_sent_in(conn, [c.id for c in prepared.rows], now, sandbox_id, deliver)
        # The batch's failure figures (rare: a template error) count its sent rows too.
        sent = [Outcome(c.id, DeliveryStatus.SENT, sent=True) for c in prepared.rows] if prepared.failed else []
        return batch, prepared.failed + sent
