"""The run executor (DESIGN §6): claim the run, re-check the review, snapshot the audience into the ledger,
then send in batches through the channel adapter, writing results back per batch.

The ledger is the source of truth. A job may run twice or concurrently (at-least-once queue, crashes, the
dispatcher resuming a run whose lease expired): the run is claimed by compare-and-set and each batch of
deliveries by an atomic UPDATE (plus `FOR UPDATE SKIP LOCKED` on PostgreSQL), so a message is sent again
only if a worker died while it was in flight, and then with the same idempotency key / Message-ID.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from arq.worker import Retry
from tortoise import connections
from tortoise.exceptions import DBConnectionError
from tortoise.transactions import in_transaction

from jobs.channels.base import (
    Backoff,
    ChannelAdapter,
    EmailContent,
    FailureCode,
    InAppContent,
    MessageContent,
    OutgoingMessage,
    PushContent,
    SendResult,
    SendStatus,
    SmsContent,
)
from jobs.context import worker_context
from jobs.events import publish
from jobs.queue import JobQueue
from jobs.throttle import Throttle
from jobs.tracking import MessageTracker
from models import outbox
from models.audience.entities import Profile, Segment, SuppressionReason
from models.audience.suppression import insert_suppressions
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.campaigns.email_html import with_preheader
from models.campaigns.previews import RENDERED_PARTS, render_context
from models.campaigns.review import can_activate, review
from models.campaigns.review_snapshot import LinkFacts
from models.campaigns.reviewing import build_snapshot
from models.campaigns.rules import CampaignEvent, CampaignStatus, Category, Channel, InvalidTransition, check_transition
from models.campaigns.templates import CompiledTemplate, TemplateRenderError, parse_template, render
from models.campaigns.values import CONTACT_CHANNEL
from models.ledger.claims import BATCH_SIZE, Claimed, claim_batch, renew_batch_lease
from models.ledger.counts import Counts, ledger_counts, next_retry, store_counters
from models.ledger.delivery import DeliveryStatus, ExclusionReason
from models.ledger.outcomes import Outcome, cancel_unsent, write_outcomes
from models.ledger.snapshot import exclude_beyond_throttle, snapshot_audience
from models.outbox.payloads import (
    CAMPAIGN_RUN_PROGRESS_TOPIC,
    CampaignStatusChanged,
    RunProgress,
    envelope,
)
from models.presets.preset import MessagePreset
from models.presets.secret_box import SecretBox, SecretsUnreadableError
from models.reporting.tracking import BounceType
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of
from models.tenancy.identity import IdentityNamespace

logger = logging.getLogger(__name__)

# A send part finding its worker process already busy with the run comes back after this.
PART_RETRY_SECONDS = 0.5
# Runs this process is sending for (arq hands each job a copy of the worker's ctx, so not there).
_SERVING_RUNS: collections.Counter[int] = collections.Counter()
PROGRESS_INTERVAL = 0.25  # seconds between progress events of one run
ANALYZE_AFTER_ROWS = 50_000  # a snapshot this large refreshes the ledger's planner statistics
DEFAULT_RETRY_MINUTES = 84 * 60


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


async def with_db_retry(action: Callable[..., Awaitable[Any]], *args: Any, attempts: int = 6) -> Any:
    """Runs an idempotent write again on a transient connection failure: losing a batch's results after its
    messages went out would send them all a second time once the lease expires."""
    for attempt in range(attempts):
        try:
            return await action(*args)
        except TRANSIENT_DB_ERRORS as exc:
            if attempt == attempts - 1:
                raise
            logger.warning("database connection lost (%s), writing again", exc)
            await asyncio.sleep(0.1 * 2**attempt)


def _lease_seconds(ctx: dict[str, Any]) -> float:
    return float(worker_context(ctx).settings.run_lease_seconds)


def _now() -> datetime:
    return datetime.now(UTC)


# ---- claiming the run -------------------------------------------------------------------------------------


async def claim_run(run_id: int, now: datetime, lease: float) -> tuple[CampaignRun, bool] | None:
    """Compare-and-set: PENDING → RUNNING (fresh) or a RUNNING run whose lease expired (resumed).

    Returns (run, fresh) or None when another job holds the run or it is final.
    """
    run = await CampaignRun.get_or_none(id=run_id)
    if run is None:
        return None
    if run.status is RunStatus.RUNNING and run.lease_until is not None and run.lease_until > now:
        return None
    if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
        return None
    changes: dict[str, Any] = {"status": RunStatus.RUNNING, "lease_until": now + timedelta(seconds=lease)}
    if run.started_at is None:
        changes["started_at"] = now
    updated = await CampaignRun.filter(id=run.id, status=run.status, lease_until=run.lease_until).update(**changes)
    if updated != 1:
        return None
    fresh = run.status is RunStatus.PENDING
    for key, value in changes.items():
        setattr(run, key, value)
    return run, fresh


async def _extend_lease(run: CampaignRun, now: datetime, lease: float) -> bool:
    """False when the run is no longer ours to work on (cancelled by an aborting stop, or finished)."""
    until = now + timedelta(seconds=lease)
    updated = await CampaignRun.filter(id=run.id, status=RunStatus.RUNNING).update(lease_until=until)
    run.lease_until = until
    return updated == 1


# ---- audience snapshot ------------------------------------------------------------------------------------


class Progress:
    """Publishes a run's counts, rate and ETA, at most every PROGRESS_INTERVAL seconds unless forced."""

    def __init__(self, redis: Any, run: CampaignRun) -> None:
        self.redis = redis
        self.run = run
        self.started = time.monotonic()
        self.last = 0.0
        self.done_at_start: int | None = None
        self.next_count = 0.0

    def counting_due(self) -> bool:
        """Counting the ledger scans all the run's rows: at most every PROGRESS_INTERVAL, and at most ~20% of the
        time (per batch, a 1,000,000-row run spent most of its time counting)."""
        return time.monotonic() >= self.next_count

    def counted(self, started: float) -> None:
        now = time.monotonic()
        self.next_count = now + max(PROGRESS_INTERVAL, 4 * (now - started))

    def event(self, counts: Counts, status: RunStatus, *, final: bool = False) -> RunProgress:
        now = time.monotonic()
        done = counts.of(
            DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.BOUNCED,
            DeliveryStatus.CANCELLED,
        )  # fmt: skip
        if self.done_at_start is None:
            self.done_at_start = done
        elapsed = max(now - self.started, 1e-6)
        rate = (done - self.done_at_start) / elapsed
        return RunProgress(
            campaign_id=self.run.campaign_id,
            run_id=self.run.id,
            status=status.value,
            targeted=counts.total - counts.of(DeliveryStatus.EXCLUDED),
            excluded=counts.of(DeliveryStatus.EXCLUDED),
            sent=counts.of(DeliveryStatus.SENT, DeliveryStatus.DELIVERED),
            failed=counts.of(DeliveryStatus.FAILED, DeliveryStatus.BOUNCED),
            pending=counts.pending,
            rate_per_second=round(rate, 2),
            eta_seconds=round(counts.pending / rate, 1) if rate > 0 and counts.pending else None,
            at=_now(),
            final=final,
        )

    async def publish(self, counts: Counts, status: RunStatus, *, force: bool = False) -> None:
        """A progress tick, published directly and best effort (lost if Redis is away): the next tick replaces
        it. The run's final event goes through the outbox instead (`event(..., final=True)` to `_finish_run`)."""
        now = time.monotonic()
        if self.redis is None or (not force and now - self.last < PROGRESS_INTERVAL):
            return
        self.last = now
        payload = envelope(None, self.event(counts, status).to_json())
        try:
            # Several jobs may send for the run: one publish per interval for all of them.
            interval_ms = int(PROGRESS_INTERVAL * 1000)
            if not force and not await self.redis.set(f"herald:progress:run:{self.run.id}", 1, nx=True, px=interval_ms):
                return
            await publish(self.redis, self.run.sandbox_id, CAMPAIGN_RUN_PROGRESS_TOPIC, payload)
        except Exception:  # progress is best effort: never fail a run over it
            logger.warning("could not publish run progress", exc_info=True)


# ---- rendering ----------------------------------------------------------------------------------------------


class RenderFailed(Exception):
    pass


class Renderer:
    """The campaign's templates compiled once per run."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.channel = Channel(campaign.channel)
        self.parts: dict[str, CompiledTemplate] = {}
        self.problem: str | None = None
        for key, (channel_key, part) in RENDERED_PARTS[self.channel.value]:
            source = ((campaign.content or {}).get(channel_key) or {}).get(part)
            if not source:
                continue
            compiled = parse_template(source, f"content.{channel_key}.{part}")
            if not isinstance(compiled, CompiledTemplate):
                self.problem = f"content.{channel_key}.{part}: line {compiled.line}: {compiled.message}"
                continue
            self.parts[key] = compiled

    def render(self, attributes: dict[str, Any], unsubscribe_url: str | None) -> MessageContent:
        if self.problem:
            raise RenderFailed(self.problem)
        context = render_context(self.campaign, attributes, unsubscribe_url or "")
        out: dict[str, str] = {}
        for key, compiled in self.parts.items():
            try:
                out[key] = render(compiled, context)
            except TemplateRenderError as exc:
                raise RenderFailed(f"{key}: {exc}") from None
        content = self.campaign.content or {}
        if self.channel is Channel.EMAIL:
            return EmailContent(
                subject=out.get("subject", ""),
                html=with_preheader(out.get("html"), out.get("preheader")),
                text=out.get("text"),
                unsubscribe_url=unsubscribe_url,
            )
        if self.channel is Channel.SMS:
            return SmsContent(body=out.get("text", ""))
        if self.channel is Channel.PUSH:
            push = content.get("push") or {}
            data = {str(k): str(v) for k, v in (push.get("customData") or {}).items()}
            if push.get("deepLink"):
                data["deepLink"] = push["deepLink"]
            return PushContent(title=out.get("title", ""), body=out.get("body", ""), data=data)
        in_app = content.get("inApp") or {}
        return InAppContent(
            title=out.get("title", ""), body=out.get("body", ""), data={"buttons": in_app.get("buttons") or []}
        )


# ---- adapters -------------------------------------------------------------------------------------------------


def build_adapter(
    ctx: dict[str, Any], campaign: Campaign, preset: MessagePreset, namespace: IdentityNamespace
) -> ChannelAdapter:
    from jobs.channels.email import EmailAdapter, EmailSender, SmtpPools, SmtpTransport, TlsMode

    settings = worker_context(ctx).settings
    values = preset.settings or {}
    secrets = SecretBox(settings.secret_key.get_secret_value()).open(preset.secrets, sandbox_id=preset.sandbox_id)
    channel = Channel(campaign.channel)
    backoff = Backoff(base=settings.send_retry_base_seconds)
    if channel is Channel.IN_APP:
        from jobs.channels.inapp import InAppAdapter

        conn = connections.get("default")
        return InAppAdapter(
            conn.execute_query,
            dialect="postgres" if dialect_of() is Dialect.POSTGRES else "sqlite",
            sandbox_id=campaign.sandbox_id,
            namespace=namespace.code,
            campaign_id=campaign.id,
        )
    if channel is Channel.EMAIL:
        transport = SmtpTransport(
            host=values["smtp_host"],
            port=int(values.get("smtp_port") or 25),
            tls=TlsMode(values.get("tls_mode") or "NONE"),
            username=values.get("smtp_username") or None,
            password=secrets.get("smtp_password") or None,
            max_connections=int(values.get("max_connections") or 5),
            egress=settings.egress_policy,
        )
        sender = EmailSender(
            from_address=values["sender_address"],
            from_name=values.get("sender_name"),
            reply_to_address=values.get("reply_to_address"),
            reply_to_name=values.get("reply_to_name"),
            error_address=values.get("error_address"),
            bcc_address=values.get("bcc_address"),
            marketing=Category(campaign.category) is Category.MARKETING,
            list_unsubscribe=bool(values.get("list_unsubscribe", True)),
        )
        pools: SmtpPools = ctx.setdefault("smtp_pools", SmtpPools())
        return EmailAdapter(transport, sender, pool=pools.get(transport), backoff=backoff)
    if channel is Channel.SMS:
        from jobs.channels.sms import SmsAdapter, TwilioConfig

        sender_id = values.get("sender") or ""
        return SmsAdapter(
            TwilioConfig(
                account_sid=values.get("account_sid") or "",
                auth_token=secrets.get("auth_token") or "",
                from_number=sender_id or None,
                messaging_service_sid=values.get("messaging_service_sid") or None,
                base_url=values.get("provider_base_url") or "https://api.twilio.com",
                status_callback=settings.public_url + "/webhooks/sms/twilio",
                egress=settings.egress_policy,
            ),
            backoff=backoff,
        )
    from jobs.channels.push import FcmConfig, PushAdapter

    return PushAdapter(
        FcmConfig(
            project_id=values.get("fcm_project_id") or "",
            service_account=orjson.loads(secrets.get("service_account_json") or "{}"),
            base_url=values.get("provider_base_url") or "https://fcm.googleapis.com",
            egress=settings.egress_policy,
        ),
        backoff=backoff,
    )


# ---- batches --------------------------------------------------------------------------------------------------


def outcome_of(claimed: Claimed, result: SendResult, now: datetime, retry_deadline: datetime) -> tuple[Outcome, bool]:
    """The ledger row a send result leads to, and whether the address goes on the suppression list."""
    error = f"{result.provider_code or ''} {result.message}".strip()[:2000] or None
    if result.status is SendStatus.SENT:
        sent = Outcome(
            claimed.id, DeliveryStatus.SENT, provider_id=result.provider_message_id, relay_id=result.relay_id, sent=True
        )
        return sent, False
    reason = result.reason.value if result.reason else None
    if result.status is SendStatus.RETRY:
        when = now + timedelta(seconds=result.retry_after or 30.0)
        if when > retry_deadline:
            return Outcome(claimed.id, DeliveryStatus.FAILED, ExclusionReason.RETRY_EXPIRED.value, error), False
        return Outcome(claimed.id, DeliveryStatus.QUEUED, reason, error, next_attempt_at=when), False
    if result.status is SendStatus.SOFT_FAIL:
        return Outcome(claimed.id, DeliveryStatus.BOUNCED, reason, error, bounce_type=BounceType.SOFT.value), False
    return Outcome(claimed.id, DeliveryStatus.FAILED, reason, error), result.suppress_address


# ---- the job ------------------------------------------------------------------------------------------------


async def _finish_run(
    run: CampaignRun, status: RunStatus, reason: str | None, now: datetime, final: RunProgress | None = None
) -> bool:
    """RUNNING → `status`; `final` is the run's last progress event, written to the outbox with the change."""
    async with in_transaction() as conn:
        updated = (
            await CampaignRun.filter(id=run.id, status=RunStatus.RUNNING)
            .using_db(conn)
            .update(status=status, finished_at=now, failure_reason=reason, lease_until=None)
        )
        if updated == 1 and final is not None:
            await outbox.emit(final, sandbox_id=run.sandbox_id, conn=conn)
    outbox.committed()
    run.status = status
    return updated == 1


async def _fail_campaign(campaign_id: int, reason: str, now: datetime) -> None:
    campaign = await Campaign.get(id=campaign_id)
    try:
        target = check_transition(campaign.status, CampaignEvent.FAIL)
    except InvalidTransition:
        return
    async with in_transaction() as conn:
        updated = await (
            Campaign.filter(id=campaign.id, version=campaign.version, status=campaign.status)
            .using_db(conn)
            .update(status=target, failure_reason=reason, finished_at=now, version=campaign.version + 1, updated_at=now)
        )
        if updated:
            change = CampaignStatusChanged(
                campaign_id=campaign.id,
                status=target,
                previous_status=campaign.status,
                version=campaign.version + 1,
                at=now,
                actor="system:worker",
            )
            await outbox.emit(change, sandbox_id=campaign.sandbox_id, conn=conn)
    outbox.committed()


async def execute_run(ctx: dict[str, Any], run_id: int) -> dict[str, Any]:
    """The run's main job: claim it, snapshot the audience on the first claim, hand extra "send part" jobs to
    the other workers, then send until nothing is left."""
    lease = _lease_seconds(ctx)
    now = _now()
    claimed = await claim_run(run_id, now, lease)
    if claimed is None:
        return {"runId": run_id, "claimed": False}
    run, fresh = claimed
    # Marked as served here before its parts exist, so none of them starts a second sender in this process.
    with _serving(run.id):
        campaign = await Campaign.get(id=run.campaign_id)
        if fresh:
            outcome = await _start(ctx, run, campaign, now)
            if outcome is not None:
                return outcome
        await _enqueue_parts(ctx, run, _batch_size(campaign))
        return await _send_until_done(ctx, run, campaign, lease)


async def send_run_part(ctx: dict[str, Any], run_id: int, part: int) -> dict[str, Any]:
    """An extra sender of a RUNNING run (DESIGN §6: large runs split across jobs so several workers share one
    run). It claims batches from the ledger like the main job until none is left; whoever sees the last one
    finishes the run, under a compare-and-set."""
    run = await CampaignRun.get_or_none(id=run_id)
    if run is None or run.status is not RunStatus.RUNNING:
        return {"runId": run_id, "part": part, "status": run.status.value if run else None}
    if _SERVING_RUNS[run_id] > 0:
        # This process already sends for the run (with the channel's concurrency): leave the part to another
        # worker process; it comes back until the run is over.
        raise Retry(defer=PART_RETRY_SECONDS)
    with _serving(run_id):
        campaign = await Campaign.get(id=run.campaign_id)
        result = await _send_until_done(ctx, run, campaign, _lease_seconds(ctx))
    return {**result, "part": part}


def _batch_size(campaign: Campaign) -> int:
    if campaign.throttle_per_second:
        # About a second of sending per batch, so waiting for tokens never outlasts the leases.
        return max(1, min(BATCH_SIZE, int(campaign.throttle_per_second)))
    return BATCH_SIZE


async def _enqueue_parts(ctx: dict[str, Any], run: CampaignRun, batch_size: int) -> None:
    redis = ctx.get("redis")
    wanted = worker_context(ctx).settings.run_send_parts
    # SQLite is the embedded single-process mode: nobody else to share the run with.
    if redis is None or wanted <= 0 or dialect_of() is not Dialect.POSTGRES:
        return
    counts = await ledger_counts(run.id)
    parts = min(wanted, counts.pending // batch_size)
    # Deterministic per claim of the run: enqueuing twice is a no-op, a resumed run gets parts of its own.
    claim_tag = int(run.lease_until.timestamp() * 1000) if run.lease_until else 0
    for part in range(1, parts + 1):
        await JobQueue(redis).send_run_part(run.id, part, claim_tag)


@contextlib.contextmanager
def _serving(run_id: int) -> Iterator[None]:
    _SERVING_RUNS[run_id] += 1
    try:
        yield
    finally:
        _SERVING_RUNS[run_id] -= 1
        if _SERVING_RUNS[run_id] <= 0:
            del _SERVING_RUNS[run_id]


async def _send_until_done(ctx: dict[str, Any], run: CampaignRun, campaign: Campaign, lease: float) -> dict[str, Any]:
    now = _now()
    progress = Progress(ctx.get("redis"), run)
    preset = await MessagePreset.get(id=campaign.preset_id) if campaign.preset_id else None
    namespace = await IdentityNamespace.get(id=campaign.namespace_id)
    renderer = Renderer(campaign)
    tracker = MessageTracker(worker_context(ctx).settings, campaign, run)
    try:
        adapter = build_adapter(ctx, campaign, preset, namespace) if preset is not None else None
    except SecretsUnreadableError:
        reason = "the preset's secrets cannot be decrypted with the current SECRET_KEY"
        final = progress.event(await ledger_counts(run.id), RunStatus.FAILED, final=True)
        if await _finish_run(run, RunStatus.FAILED, reason, now, final):
            await _fail_campaign(campaign.id, reason, now)
        return {"runId": run.id, "status": RunStatus.FAILED.value, "reason": reason}
    preset_values = (preset.settings or {}) if preset else {}
    retry_minutes = int(preset_values.get("retry_period_minutes") or DEFAULT_RETRY_MINUTES)
    retry_deadline = (run.started_at or now) + timedelta(minutes=retry_minutes)
    contact = CONTACT_CHANNEL.get(Channel(campaign.channel))
    batch_size = _batch_size(campaign)
    throttle = None
    if campaign.throttle_per_second and ctx.get("redis") is not None:
        throttle = Throttle(ctx["redis"], run.id, campaign.throttle_per_second)
    after_id = 0  # keyset position of this pass over the ledger
    try:
        while True:
            now = _now()
            if not await _extend_lease(run, now, lease):
                # Aborted by a stop (or finished elsewhere): what was not sent never will be.
                fresh_run = await CampaignRun.get(id=run.id)
                if fresh_run.status is RunStatus.CANCELLED:
                    await cancel_unsent(run.id, now)
                    counts = await ledger_counts(run.id)
                    async with in_transaction() as conn:
                        await store_counters(run.id, counts, conn)
                        final = progress.event(counts, RunStatus.CANCELLED, final=True)
                        await outbox.emit(final, sandbox_id=run.sandbox_id, conn=conn)
                    outbox.committed()
                return {"runId": run.id, "status": fresh_run.status.value}
            if throttle is not None:
                # Tokens before the claim: waiting for them must not eat into the batch's lease.
                await throttle.take(batch_size)
                now = _now()
            batch = await claim_batch(run.id, now, lease, batch_size, after_id=after_id)
            if not batch:
                if after_id == 0:
                    break
                after_id = 0  # one more pass from the start: retries now due, leases that expired meanwhile
                continue
            after_id = batch[-1].id
            async with _keep_leased(run, batch, lease):
                outcomes, to_suppress = await _send_batch(batch, renderer, adapter, now, retry_deadline, tracker)
            now = _now()
            await with_db_retry(write_outcomes, outcomes, now)
            if contact is not None:
                await with_db_retry(
                    insert_suppressions, run.sandbox_id, contact, to_suppress, SuppressionReason.HARD_BOUNCE, now
                )
            if progress.counting_due():
                counting = time.monotonic()
                counts = await with_db_retry(ledger_counts, run.id)
                await with_db_retry(store_counters, run.id, counts)
                progress.counted(counting)
                await progress.publish(counts, RunStatus.RUNNING)
    finally:
        if adapter is not None:
            await adapter.close()
    return await _finish_if_done(ctx, run, campaign, progress)


@contextlib.asynccontextmanager
async def _keep_leased(run: CampaignRun, batch: Sequence[Claimed], lease: float) -> AsyncIterator[None]:
    """Renews the batch's leases (and the run's) while it is being sent: a batch slower than the lease would
    otherwise be claimed by another job and sent twice."""

    async def renew() -> None:
        ids = [c.id for c in batch]
        while True:
            await asyncio.sleep(lease / 3)
            until = _now() + timedelta(seconds=lease)
            try:
                await renew_batch_lease(run.id, ids, until)
                await CampaignRun.filter(id=run.id, status=RunStatus.RUNNING).update(lease_until=until)
            except Exception:  # the batch is being sent: never let a renewal failure lose its results
                logger.warning("could not renew a batch lease", exc_info=True)

    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _finish_if_done(
    ctx: dict[str, Any], run: CampaignRun, campaign: Campaign, progress: Progress
) -> dict[str, Any]:
    now = _now()
    counts = await ledger_counts(run.id)
    await store_counters(run.id, counts)
    if counts.of(DeliveryStatus.SENDING):
        # Another job holds a live lease on some rows: it finishes the run.
        return {"runId": run.id, "status": RunStatus.RUNNING.value}
    retry_at = await next_retry(run.id)
    if retry_at is not None:
        delay = max((retry_at - now).total_seconds(), 0.0)
        # Nobody may claim the run before the deferred job runs; the dispatcher resumes it if that job is lost.
        await CampaignRun.filter(id=run.id, status=RunStatus.RUNNING).update(lease_until=retry_at)
        redis = ctx.get("redis")
        if redis is not None:
            await JobQueue(redis).retry_run_at(run.id, retry_at, delay)
        await progress.publish(counts, RunStatus.RUNNING, force=True)
        return {"runId": run.id, "status": RunStatus.RUNNING.value, "retryAt": retry_at.isoformat()}
    sent, failed = counts.of(DeliveryStatus.SENT, DeliveryStatus.DELIVERED), counts.of(DeliveryStatus.FAILED)
    # Several jobs may get here at once: the compare-and-set picks the one that finishes the run.
    if sent == 0 and failed > 0:
        reason = await _main_failure(run.id)
        final = progress.event(counts, RunStatus.FAILED, final=True)
        if await _finish_run(run, RunStatus.FAILED, f"every send failed: {reason}", now, final):
            await _fail_campaign(campaign.id, f"run {run.id}: every send failed: {reason}", now)
    elif not await _finish_run(
        run, RunStatus.SUCCEEDED, None, now, progress.event(counts, RunStatus.SUCCEEDED, final=True)
    ):
        return {"runId": run.id, "status": (await CampaignRun.get(id=run.id)).status.value}
    return {"runId": run.id, "status": run.status.value, "sent": sent, "failed": failed}


async def _main_failure(run_id: int) -> str:
    params = SqlParams(dialect_of())
    rows = await connections.get("default").execute_query_dict(
        f"SELECT reason, COUNT(*) AS n FROM delivery WHERE run_id = {params.add(run_id)} "
        f"AND status = '{DeliveryStatus.FAILED.value}' GROUP BY reason ORDER BY n DESC",
        params.values,
    )
    return str(rows[0]["reason"]) if rows else "unknown"


def _link_facts(ctx: dict[str, Any]) -> LinkFacts | None:
    settings = worker_context(ctx).settings
    return LinkFacts(settings.public_url, settings.is_prod)


async def _start(ctx: dict[str, Any], run: CampaignRun, campaign: Campaign, now: datetime) -> dict[str, Any] | None:
    """First claim: stopped campaign → cancel; failing review → FAILED; else snapshot the audience."""
    if campaign.status not in (CampaignStatus.LIVE, CampaignStatus.SCHEDULED):
        final = Progress(None, run).event(Counts({}), RunStatus.CANCELLED, final=True)
        await _finish_run(run, RunStatus.CANCELLED, f"campaign is {campaign.status.value}", now, final)
        return {"runId": run.id, "status": RunStatus.CANCELLED.value}
    async with in_transaction() as conn:
        alerts = review(await build_snapshot(campaign, now=now, conn=conn, links=_link_facts(ctx)), now)
        if not can_activate(alerts):
            codes = sorted({a.code.value for a in alerts if a.severity.value == "ERROR"})
            reason = "review failed: " + ", ".join(codes)
        else:
            reason = None
            segment = await Segment.get(id=campaign.segment_id).using_db(conn)
            namespace = await IdentityNamespace.get(id=campaign.namespace_id).using_db(conn)
            preset = await MessagePreset.get_or_none(id=campaign.preset_id).using_db(conn)
            await snapshot_audience(run, campaign, segment, namespace, preset, now, conn)
            if campaign.throttle_per_second:
                await exclude_beyond_throttle(run, campaign.throttle_per_second, conn)
    if reason is not None:
        await _finish_run(
            run, RunStatus.FAILED, reason, now, Progress(None, run).event(Counts({}), RunStatus.FAILED, final=True)
        )
        return {"runId": run.id, "status": RunStatus.FAILED.value, "reason": reason}
    counts = await ledger_counts(run.id)
    await store_counters(run.id, counts)
    if counts.total >= ANALYZE_AFTER_ROWS and dialect_of() is Dialect.POSTGRES:
        # The planner has no statistics for rows this new: it then claims each batch through the run_id index and
        # sorts the whole run (1.3 s a batch at 1,000,000 rows) instead of walking the primary key from after_id.
        await connections.get("default").execute_script("ANALYZE delivery")
    return None


async def _send_batch(
    batch: list[Claimed],
    renderer: Renderer,
    adapter: ChannelAdapter | None,
    now: datetime,
    retry_deadline: datetime,
    tracker: MessageTracker | None = None,
) -> tuple[list[Outcome], list[str]]:
    attributes = dict(await Profile.filter(id__in=[c.profile_id for c in batch]).values_list("id", "attributes"))
    outcomes: list[Outcome] = []
    contents: list[MessageContent] = []
    to_send: list[Claimed] = []
    for claimed in batch:
        unsubscribe_url = tracker.unsubscribe_url(claimed.id) if tracker is not None else None
        try:
            content = renderer.render(attributes.get(claimed.profile_id) or {}, unsubscribe_url)
        except RenderFailed as exc:
            outcomes.append(Outcome(claimed.id, DeliveryStatus.FAILED, ExclusionReason.TEMPLATE_ERROR.value, str(exc)))
            continue
        contents.append(content)
        to_send.append(claimed)
    if tracker is not None and tracker.active:
        # Link ids for the whole batch first, so rewriting each message needs no database round trip.
        await tracker.prepare(contents, now)
        contents = [tracker.apply(content, claimed.id) for content, claimed in zip(contents, to_send, strict=True)]
    messages = [
        OutgoingMessage(claimed.key, claimed.address, content, attempt=claimed.attempts)
        for content, claimed in zip(contents, to_send, strict=True)
    ]
    suppressed: list[str] = []
    if messages:
        if adapter is None:
            no_preset = SendResult.hard_fail(FailureCode.PROVIDER_REJECTED, "the campaign has no preset")
            results = [no_preset] * len(messages)
        else:
            results = await adapter.send_batch(messages)
        for claimed, result in zip(to_send, results, strict=True):
            outcome, bad_address = outcome_of(claimed, result, now, retry_deadline)
            outcomes.append(outcome)
            if bad_address:
                suppressed.append(claimed.address)
    return outcomes, suppressed
