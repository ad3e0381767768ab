"""Business rules at send time (issue 18): a claimed batch is judged before it is sent. Quiet hours first (SKIP →
EXCLUDED QUIET_HOURS, DELAY → QUEUED until the window ends, consuming no budget), then every frequency cap of the
campaign's channel and category (→ EXCLUDED FREQUENCY_CAPPED); the rest is cleared to go.

The counts come from the ledger, never from a cache, so nothing outside the database (a Redis flush) can let a cap
be exceeded. A profile's sends in the period are its rows on the channel and category of other runs that went
(SENT, DELIVERED, BOUNCED, by `sent_at`), plus those in flight and cleared (SENDING with `cleared_at`), plus what
runs of a higher priority hold for it (QUEUED rows due in the period, and SENDING rows not judged yet): the higher
priority wins the last slot whichever run is judged first. On PostgreSQL the judgement of a batch holds a
transaction-scoped advisory lock per profile (taken in id order, so two workers never deadlock) from the count to
the write of `cleared_at`: two workers can never both take a profile's last slot. SQLite is one writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from models.audience.entities import Profile
from models.business_rules.actions import rule_set_for
from models.business_rules.model import BusinessRuleSet
from models.business_rules.rules import FrequencyCap, QuietAction, RuleSet, period_bounds, quiet_window, zone_of
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.run_rules import RunStatus
from models.ledger.delivery_rules import DeliveryStatus
from models.ledger.verdicts import Verdicts, record_verdicts
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of
from models.tenancy.sandbox import Sandbox

# The first key of the advisory locks on profiles (the two-int form: its own key space).
PROFILE_LOCK_CLASS = 1801
_SENT_STATUSES = ", ".join(
    repr(s.value) for s in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.BOUNCED)
)
_Q, _S = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value


@dataclass(frozen=True, slots=True)
class SendRules:
    """What a run's sends are judged by (built once per run)."""

    rule_set: RuleSet
    default_zone: str
    sandbox_id: int
    run_id: int
    channel: str
    category: str
    priority: int

    @property
    def caps(self) -> tuple[FrequencyCap, ...]:
        return self.rule_set.caps_for(self.channel, self.category)

    @property
    def active(self) -> bool:
        return bool(self.caps or self.rule_set.quiet_for(self.channel))


@dataclass(frozen=True, slots=True)
class Candidate:
    id: int  # the delivery, SENDING under this worker's lease
    profile_id: int
    time_zone: str | None


async def judge_batch(rules: SendRules, batch: Sequence[Candidate], now: datetime) -> Verdicts:
    """Judges and records a claimed batch in one transaction; returns the verdicts (send only `cleared`)."""
    verdicts = Verdicts()
    if not batch:
        return verdicts
    quiet_rules = rules.rule_set.quiet_for(rules.channel)
    open_rows: list[Candidate] = []
    for row in batch:
        zone = zone_of(row.time_zone, rules.default_zone)
        quiet = quiet_window(now, zone, quiet_rules) if quiet_rules else None
        if quiet is None:
            open_rows.append(row)
        elif quiet[0] is QuietAction.SKIP:
            verdicts.skipped.append(row.id)
        else:
            verdicts.delayed[row.id] = quiet[1]
    async with in_transaction() as conn:
        caps = rules.caps
        if caps and open_rows:
            await _lock_profiles(conn, sorted({r.profile_id for r in open_rows}))
            capped: set[int] = set()
            for cap in caps:
                counts = await sends_in_period(conn, rules, cap, open_rows, now)
                capped |= {r.id for r in open_rows if counts.get(r.profile_id, 0) >= cap.limit}
            verdicts.capped = sorted(capped)
        capped_ids = set(verdicts.capped)
        verdicts.cleared = [r.id for r in open_rows if r.id not in capped_ids]
        await record_verdicts(conn, rules.run_id, verdicts, now)
    return verdicts


async def _lock_profiles(conn: BaseDBAsyncClient, profile_ids: list[int]) -> None:
    if dialect_of() is not Dialect.POSTGRES:
        return
    params = SqlParams(Dialect.POSTGRES)
    ids = params.typed(profile_ids, "BIGINT[]")
    # Taken in id order (the ordered subquery), released at commit.
    await conn.execute_query(
        f"SELECT pg_advisory_xact_lock({PROFILE_LOCK_CLASS}, CAST(p % 2147483647 AS INTEGER)) "
        f"FROM (SELECT p FROM unnest({ids}) AS p ORDER BY p) AS ordered",
        params.values,
    )


async def sends_in_period(
    conn: BaseDBAsyncClient, rules: SendRules, cap: FrequencyCap, rows: Sequence[Candidate], now: datetime
) -> dict[int, int]:
    """Per profile: its sends counting against `cap` in the cap's period around `now` (see the module doc)."""
    params = SqlParams(dialect_of())
    values = []
    for row in rows:
        start, end = period_bounds(now, zone_of(row.time_zone, rules.default_zone), cap.period, cap.hours)
        values.append(
            f"({params.typed(row.profile_id, 'BIGINT')}, {params.typed(start, 'TIMESTAMPTZ')}, "
            f"{params.typed(end, 'TIMESTAMPTZ')})"
        )
    sandbox, run = params.add(rules.sandbox_id), params.add(rules.run_id)
    channel, category = params.add(rules.channel), params.add(rules.category)
    # Placeholders in the order they appear (SQLite's are positional).
    sent_since = "d.sent_at >= v.since AND d.sent_at < v.until"
    higher_sending, higher_queued = params.add(rules.priority), params.add(rules.priority)
    sql = (
        f"WITH v(pid, since, until) AS (VALUES {', '.join(values)}) "
        "SELECT v.pid AS pid, COUNT(d.id) AS n FROM v "
        f"JOIN delivery d ON d.profile_id = v.pid AND d.sandbox_id = {sandbox} AND d.run_id <> {run} "
        f"JOIN campaign c ON c.id = d.campaign_id AND c.channel = {channel} AND c.category = {category} "
        f"WHERE (d.status IN ({_SENT_STATUSES}) AND {sent_since}) "
        f"OR (d.status = '{_S}' AND (d.cleared_at IS NOT NULL OR c.priority > {higher_sending})) "
        f"OR (d.status = '{_Q}' AND c.priority > {higher_queued} "
        "AND (d.next_attempt_at IS NULL OR d.next_attempt_at < v.until)) "
        "GROUP BY v.pid"
    )
    return {int(r["pid"]): int(r["n"]) for r in await conn.execute_query_dict(sql, params.values)}


async def send_rules_for(
    campaign: Campaign, run_id: int, *, rule_set: BusinessRuleSet | None = None
) -> SendRules | None:
    """The rules a run's sends are judged by; None when none apply (TRANSACTIONAL, no rule set, no rule on the
    campaign's channel)."""
    rule_set = rule_set or await rule_set_for(campaign)
    if rule_set is None or campaign.channel is None:
        return None
    # Profiles without a zone: the rule set's, else the sandbox's, else UTC.
    zone = rule_set.default_time_zone or next(
        iter(await Sandbox.filter(id=campaign.sandbox_id).values_list("time_zone", flat=True)), None
    )
    rules = SendRules(
        rule_set=rule_set.rule_set(),
        default_zone=zone or "UTC",
        sandbox_id=campaign.sandbox_id,
        run_id=run_id,
        channel=str(campaign.channel),
        category=str(campaign.category),
        priority=campaign.priority,
    )
    return rules if rules.active else None


async def candidates_of(batch: Sequence[tuple[int, int]]) -> list[Candidate]:
    """(delivery id, profile id) pairs with each profile's time zone."""
    zones = dict(await Profile.filter(id__in=sorted({p for _, p in batch})).values_list("id", "time_zone"))
    return [Candidate(i, p, zones.get(p)) for i, p in batch]


# A run waits for the runs of a higher priority due with it at most this long after its own time.
PRIORITY_WAIT = timedelta(seconds=120)


async def outranked_by_waiting_run(campaign: Campaign, run: CampaignRun, now: datetime) -> bool:
    """True while a run of a higher priority on the same channel, due at the same time or earlier (within the
    hour before), has not taken its audience snapshot yet: its QUEUED rows are what lets a cap check give it the
    last slot, so this run starts after. Bounded by PRIORITY_WAIT after this run's time."""
    if now > run.scheduled_for + PRIORITY_WAIT or campaign.channel is None:
        return False
    not_snapshotted = Q(status=RunStatus.PENDING) | Q(status=RunStatus.RUNNING, snapshot_done_at__isnull=True)
    return (
        await CampaignRun.filter(
            not_snapshotted,
            sandbox_id=campaign.sandbox_id,
            campaign__channel=campaign.channel,
            campaign__priority__gt=campaign.priority,
            scheduled_for__lte=now,
            scheduled_for__gte=run.scheduled_for - timedelta(hours=1),
        )
        .exclude(id=run.id)
        .exists()
    )
