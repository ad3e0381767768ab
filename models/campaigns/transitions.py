"""The one writer of campaign and run status (STYLE: Zulip's `do_*` functions).

Each transition checks the rule (`rules.check_transition` for campaigns, `run_rules.run_target` for runs),
compare-and-sets the row on what was read, writes the audit row and the outbox row, all in the caller's
transaction: mutations, the dispatcher, the run executor and resend call these and never write `status`
themselves (tests/unit/test_single_writer.py holds that). Delivery status is written by the ledger package.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models import outbox
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.rules import CampaignEvent, CampaignStatus, InvalidTransition, Trigger, check_transition
from models.campaigns.run_rules import (
    RunEvent,
    RunOutcomeReason,
    RunPauseReason,
    RunStatus,
    run_sources,
    run_target,
)
from models.campaigns.values import OBJECT_TYPE
from models.ledger.vocabulary import DeliveryStatus
from models.outbox.payloads import CampaignStatusChanged, Payload
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of, fetch
from models.tenancy.audit import record_audit

# Actors of the changes the system makes on its own (an API key's changes name the key).
DISPATCHER = "system:dispatcher"
WORKER = "system:worker"
RUN_OBJECT_TYPE = "CampaignRun"


def public_state(row: Campaign) -> dict[str, Any]:
    """What the audit trail records of a campaign (content omitted: it can be large)."""
    return {
        "name": row.name,
        "status": row.status.value,
        "version": row.version,
        "channel": row.channel,
        "presetId": row.preset_id,
        "segmentId": row.segment_id,
        "namespaceId": row.namespace_id,
        "schedule": row.schedule,
        "throttle": row.throttle_per_second,
        "waves": row.waves,
        "businessRuleSetId": row.business_rule_set_id,
        "priority": row.priority,
        "tags": row.tags,
    }


# ---- campaign -------------------------------------------------------------------------------------------------


async def transition_campaign(
    conn: BaseDBAsyncClient,
    row: Campaign,
    trigger: Trigger,
    *,
    actor: str,
    now: datetime,
    changes: dict[str, Any] | None = None,
    audit_extra: dict[str, Any] | None = None,
    starts_later: bool = False,
    approved: bool = False,
) -> bool:
    """`row` (as read) → the status `trigger` leads to. InvalidTransition when the rule refuses; False when the
    row changed since it was read (the compare-and-set on status and version lost), and then nothing is written."""
    target = check_transition(row.status, trigger, starts_later=starts_later, approved=approved)
    previous, before = CampaignStatus(row.status), public_state(row)
    values = {**(changes or {}), "status": target, "version": row.version + 1, "updated_at": now}
    updated = await Campaign.filter(id=row.id, version=row.version, status=row.status).using_db(conn).update(**values)
    if updated != 1:
        return False
    for key, value in values.items():
        setattr(row, key, value)
    await record_audit(
        sandbox_id=row.sandbox_id,
        actor=actor,
        action=trigger.value,
        object_type=OBJECT_TYPE,
        object_id=row.id,
        before=before,
        after={**public_state(row), **(audit_extra or {})},
        using_db=conn,
    )
    change = CampaignStatusChanged(
        campaign_id=row.id, status=target, previous_status=previous, version=row.version, at=now, actor=actor
    )
    await outbox.emit(change, sandbox_id=row.sandbox_id, conn=conn)
    return True


async def system_transition(
    campaign: Campaign, event: CampaignEvent, *, actor: str, now: datetime, **changes: Any
) -> bool:
    """A dispatcher or worker transition in its own transaction; False when the rule or the row says no."""
    try:
        check_transition(campaign.status, event)
    except InvalidTransition:
        return False
    async with in_transaction() as conn:
        done = await transition_campaign(conn, campaign, event, actor=actor, now=now, changes=changes)
    outbox.committed()
    return done


async def fail_campaign(campaign_id: int, reason: str, now: datetime) -> bool:
    """A run failed beyond retry: its campaign → FAILED (if still LIVE or SCHEDULED)."""
    campaign = await Campaign.get(id=campaign_id)
    return await system_transition(
        campaign, CampaignEvent.FAIL, actor=WORKER, now=now, failure_reason=reason, finished_at=now
    )


# ---- run --------------------------------------------------------------------------------------------------------


async def transition_run(
    conn: BaseDBAsyncClient,
    run: CampaignRun,
    event: RunEvent,
    *,
    actor: str,
    now: datetime,
    changes: dict[str, Any] | None = None,
    action: str | None = None,
    audit_extra: dict[str, Any] | None = None,
    events: Sequence[Payload] = (),
) -> bool:
    """`run` (as read) → the status `event` leads to, compare-and-set on its status (and lease, to claim); the audit row
    and `events` (outbox) in the same transaction. InvalidRunTransition when the table refuses; False when the
    row changed since it was read."""
    target = run_target(run.status, event)
    previous = RunStatus(run.status)
    values = {**(changes or {}), "status": target}
    query = CampaignRun.filter(id=run.id, status=run.status)
    if event in (RunEvent.CLAIM, RunEvent.RESUME):
        # Two workers taking over the same expired lease: the lease read is what makes one of them lose.
        query = query.filter(lease_until=run.lease_until)
    updated = await query.using_db(conn).update(**values)
    if updated != 1:
        return False
    for key, value in values.items():
        setattr(run, key, value)
    await record_audit(
        sandbox_id=run.sandbox_id,
        actor=actor,
        action=action or f"RUN_{event.value}",
        object_type=RUN_OBJECT_TYPE,
        object_id=run.id,
        before={"runId": run.id, "campaignId": run.campaign_id, "status": previous.value},
        after={"runId": run.id, "campaignId": run.campaign_id, "status": target.value, **(audit_extra or {})},
        using_db=conn,
    )
    for payload in events:
        await outbox.emit(payload, sandbox_id=run.sandbox_id, conn=conn)
    return True


async def claim_run(run_id: int, now: datetime, until: datetime) -> tuple[CampaignRun, bool] | None:
    """PENDING → RUNNING (fresh), or a RUNNING run whose lease expired (resumed), leased until `until`.

    Returns (run, fresh) or None when another job holds the run or it is final.
    """
    run = await CampaignRun.get_or_none(id=run_id)
    if run is None or run.status not in run_sources(RunEvent.CLAIM) | run_sources(RunEvent.RESUME):
        return None
    if run.status is RunStatus.RUNNING and run.lease_until is not None and run.lease_until > now:
        return None
    fresh = run.status is RunStatus.PENDING
    changes: dict[str, Any] = {"lease_until": until}
    if run.started_at is None:
        changes["started_at"] = now
    event = RunEvent.CLAIM if fresh else RunEvent.RESUME
    async with in_transaction() as conn:
        if not await transition_run(conn, run, event, actor=WORKER, now=now, changes=changes):
            return None
    return run, fresh


async def open_trigger_run(conn: BaseDBAsyncClient, campaign: Campaign, scheduled_for: datetime, now: datetime) -> int:
    """An API campaign's long-lived trigger run, in the first trigger's transaction: created and claimed at once
    (audited), its snapshot step done (its audience is what the triggers write), no lease (it is woken, never
    resumed). The caller's unique (campaign_id, scheduled_for) insert decides between concurrent first triggers."""
    run = await CampaignRun.create(
        sandbox_id=campaign.sandbox_id,
        campaign_id=campaign.id,
        scheduled_for=scheduled_for,
        snapshot_done_at=now,
        open_for_triggers=True,
        using_db=conn,
    )
    await transition_run(conn, run, RunEvent.CLAIM, actor=WORKER, now=now, changes={"started_at": now})
    return run.id


async def finish_run(
    run: CampaignRun,
    status: RunStatus,
    reason: str | None,
    now: datetime,
    final: Payload | None = None,
    outcome: RunOutcomeReason | None = None,
) -> bool:
    """RUNNING (or, to cancel, PENDING) → `status`; `final` is the run's last progress event."""
    event = {RunStatus.SUCCEEDED: RunEvent.SUCCEED, RunStatus.FAILED: RunEvent.FAIL}.get(status, RunEvent.CANCEL)
    changes = {"finished_at": now, "failure_reason": reason, "lease_until": None, "outcome_reason": outcome}
    extra = {"reason": reason, "outcome": outcome.value if outcome else None}
    async with in_transaction() as conn:
        if run.open_for_triggers and status is not RunStatus.CANCELLED and await _rows_queued(conn, run.id):
            return False  # an acceptance committed rows after the caller counted: they are sent first
        done = await transition_run(
            conn, run, event, actor=WORKER, now=now, changes=changes, audit_extra=extra, events=[final] if final else []
        )
    outbox.committed()
    return done


async def _rows_queued(conn: BaseDBAsyncClient, run_id: int) -> bool:
    """Whether a trigger run still has rows to send, read under its row lock: on PostgreSQL the lock waits for the
    acceptances holding the row shared (models/ledger/snapshot.trigger_audience), so none commits rows into a run
    finished meanwhile; SQLite's transactions are serial already."""
    params = SqlParams(dialect_of())
    run = params.add(run_id)
    if params.dialect is Dialect.POSTGRES:
        await conn.execute_query(f"SELECT id FROM campaign_run WHERE id = {run} FOR UPDATE", params.values)
    queued = params.add(DeliveryStatus.QUEUED.value)
    rows = await conn.execute_query_dict(
        f"SELECT 1 AS queued FROM delivery WHERE run_id = {run} AND status = {queued} LIMIT 1", params.values
    )
    return bool(rows)


async def cancel_campaign_runs(
    conn: BaseDBAsyncClient, campaign_id: int, statuses: Sequence[RunStatus], *, actor: str, now: datetime
) -> int:
    """A stop: the campaign's runs in `statuses` → CANCELLED (each audited), in the stop's transaction."""
    cancelled = 0
    for run in await CampaignRun.filter(campaign_id=campaign_id, status__in=list(statuses)).using_db(conn):
        if await transition_run(conn, run, RunEvent.CANCEL, actor=actor, now=now, changes={"finished_at": now}):
            cancelled += 1
    return cancelled


async def reopen_run(conn: BaseDBAsyncClient, run: CampaignRun, *, actor: str, now: datetime, requeued: int) -> bool:
    """A resend: SUCCEEDED/FAILED → RUNNING with no lease, so the executor resumes it at once."""
    changes = {"finished_at": None, "failure_reason": None, "lease_until": None, "outcome_reason": None}
    return await transition_run(
        conn, run, RunEvent.RESEND, actor=actor, now=now, changes=changes, action="RESEND_FAILED",
        audit_extra={"requeued": requeued},
    )  # fmt: skip


async def pause_run(
    conn: BaseDBAsyncClient,
    run: CampaignRun,
    reason: RunPauseReason,
    detail: str | None,
    now: datetime,
    event: Payload | None = None,
) -> bool:
    """RUNNING → PAUSED with its reason, in the caller's transaction: the provider refused the preset, so nothing
    more is sent until `unpause_run`. No lease: the dispatcher resumes RUNNING runs only, and nothing claims a
    PAUSED one."""
    changes = {"pause_reason": reason, "pause_detail": detail, "paused_at": now, "lease_until": None}
    return await transition_run(
        conn, run, RunEvent.PAUSE, actor=WORKER, now=now, changes=changes,
        audit_extra={"reason": reason.value, "detail": detail}, events=[event] if event else [],
    )  # fmt: skip


async def unpause_run(
    conn: BaseDBAsyncClient, run: CampaignRun, *, actor: str, now: datetime, event: Payload | None = None
) -> bool:
    """campaignRunResume: PAUSED → RUNNING with no lease, so the executor takes the run up at once (as a resend)."""
    reason = run.pause_reason.value if run.pause_reason else None
    changes = {"pause_reason": None, "pause_detail": None, "paused_at": None, "lease_until": None}
    return await transition_run(
        conn, run, RunEvent.UNPAUSE, actor=actor, now=now, changes=changes, action="RUN_RESUME_PAUSED",
        audit_extra={"pausedFor": reason}, events=[event] if event else [],
    )  # fmt: skip


# ---- run steps and leases (no status change, so no audit row) ----------------------------------------------


async def record_snapshot_done(
    conn: BaseDBAsyncClient, run: CampaignRun, now: datetime, *, campaign_version: int | None = None
) -> bool:
    """In the snapshot's transaction: the audience is in the ledger, and the campaign version the run sends is
    fixed. Until this commits, a resumed run redoes it. False: another snapshot of the run was recorded first."""
    recorded = await (
        CampaignRun.filter(id=run.id, snapshot_done_at__isnull=True)
        .using_db(conn)
        .update(snapshot_done_at=now, campaign_version=campaign_version)
    )
    run.snapshot_done_at = now
    run.campaign_version = campaign_version
    return recorded > 0


async def extend_run_lease(run: CampaignRun, until: datetime) -> bool:
    """False when the run is no longer ours to work on (cancelled by an aborting stop, or finished). Hand-written:
    every sending loop pass and lease renewal runs it, and the ORM's query building cost more CPU than the
    statement (a trigger campaign's wake-up jobs, 20 a second)."""
    params = SqlParams(dialect_of())
    if run.open_for_triggers:
        # A trigger run holds no lease (the dispatcher wakes it, never resumes it): only whether it still runs.
        # Read, not written: every acceptance holds its row FOR KEY SHARE, and a write per wake-up made a new
        # version of that row twenty times a second, each one taking over the lockers' multixact.
        running = await fetch(
            f"SELECT 1 AS one FROM campaign_run WHERE id = {params.add(run.id)} "
            f"AND status = {params.add(RunStatus.RUNNING.value)}",
            params,
        )
        return bool(running)
    sql = (
        f"UPDATE campaign_run SET lease_until = {params.typed(until)} WHERE id = {params.add(run.id)} "
        f"AND status = {params.add(RunStatus.RUNNING.value)} RETURNING id"
    )
    # execute_query_dict, not models.sql.reads.fetch: Tortoise's asyncpg execute_query drops an UPDATE's RETURNING rows.
    rows = await connections.get("default").execute_query_dict(sql, params.values)
    run.lease_until = until
    return len(rows) == 1
