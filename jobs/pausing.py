"""A run that pauses: the provider refused the preset (credentials, connection setup, or the sender for most of a
batch), so every further send would fail the same way and say nothing about the recipients.

The batch's unsent rows go back to QUEUED without counting an attempt and nobody is suppressed; the run goes
RUNNING → PAUSED (models/campaigns/transitions.pause_run, with its audit and outbox rows); the preset goes
ACTIVE → FAILED with the refusal as its failed check (models/presets/lifecycle.record_sending_failure), so it must
be fixed and pass `messagePresetValidate` before `campaignRunResume` takes the run up again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from jobs.events import publish
from jobs.progress import Progress
from models import outbox
from models.campaigns.campaign import CampaignRun
from models.campaigns.run_rules import RunPauseReason, RunStatus, pause_reason_of
from models.campaigns.transitions import pause_run
from models.ledger.claims import Claimed
from models.ledger.counts import ledger_counts, store_counters
from models.ledger.delivery import DeliveryStatus
from models.ledger.outcomes import Outcome
from models.presets.lifecycle import record_sending_failure
from models.presets.preset import PRESET_STATUS_TOPIC
from models.presets.rules import CheckCode

logger = logging.getLogger(__name__)

PRESET_CHECK_CODES = {
    RunPauseReason.CREDENTIALS_REFUSED: CheckCode.AUTH_FAILED,
    RunPauseReason.PROVIDER_CONFIGURATION: CheckCode.PROVIDER_CONFIGURATION,
    RunPauseReason.SENDER_REFUSED: CheckCode.SENDER_REFUSED,
}


def batch_pause(outcomes: Sequence[Outcome]) -> tuple[RunPauseReason, str] | None:
    """Whether the batch pauses the run: its reason and the provider's answer that shows it."""
    reasons = [None if o.status is DeliveryStatus.SENT else o.reason for o in outcomes]
    reason = pause_reason_of(reasons)
    if reason is None:
        return None
    detail = next((o.error for o in outcomes if o.status is not DeliveryStatus.SENT and o.error), None)
    return reason, detail or reason.value


def held_back(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """A pausing batch's outcomes: what went stays sent, everything else back to QUEUED, no attempt counted, no
    reason (nothing is wrong with the recipient), the provider's answer kept as the row's last error."""
    return [
        o
        if o.status is DeliveryStatus.SENT
        else Outcome(o.id, DeliveryStatus.QUEUED, None, o.error, counts_attempt=False)
        for o in outcomes
    ]


def not_sent(claimed: Sequence[Claimed]) -> list[Outcome]:
    """Claimed rows a pausing batch did not get to: back to QUEUED, no attempt counted."""
    return [Outcome(c.id, DeliveryStatus.QUEUED, None, None, counts_attempt=False) for c in claimed]


async def pause_sending(
    ctx: dict[str, Any],
    run: CampaignRun,
    preset_id: int | None,
    reason: RunPauseReason,
    detail: str,
    progress: Progress,
    now: datetime,
) -> dict[str, Any]:
    """RUNNING → PAUSED (one of several senders of the run wins the compare-and-set; the others just stop) and the
    alert on the preset."""
    await progress.settle()  # a count in flight must not land after the paused figures
    counts = await ledger_counts(run.id)
    await store_counters(run.id, counts)
    event = replace(progress.event(counts, RunStatus.PAUSED, pause_reason=reason.value), final=False)
    # One transaction: a worker dying between the two would leave a PAUSED run and a preset without its alert.
    async with in_transaction() as conn:
        paused = await pause_run(conn, run, reason, detail, now, event)
        preset = None
        if preset_id is not None:
            preset = await record_sending_failure(
                conn, preset_id=preset_id, code=PRESET_CHECK_CODES[reason], message=detail, run_id=run.id
            )
    outbox.committed()
    if paused:
        logger.warning(
            "run %s paused: %s: %s", run.id, reason.value, detail,
            extra={"run_id": run.id, "campaign_id": run.campaign_id, "reason": reason.value},
        )  # fmt: skip
    redis = ctx.get("redis")
    if preset is not None and redis is not None:
        await publish(redis, preset.sandbox_id, PRESET_STATUS_TOPIC, preset.status_event())
    return {"runId": run.id, "status": RunStatus.PAUSED.value, "pauseReason": reason.value}
