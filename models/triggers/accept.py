"""`accept_trigger`: the one domain function behind `campaignTrigger` (GraphQL) and POST /campaigns/{id}/triggers.

Idempotency follows Stripe's rules and is enforced by the database, not by Redis:
- the trigger row is inserted first, under the unique (campaign_id, idempotency_key); a concurrent call with the
  same key blocks on that index (PostgreSQL) or on the write lock (SQLite) until the first commits, then fails
  with IntegrityError, and is tried again: it then reads the committed row and returns its stored answer;
- the same key with the same body returns the stored answer and writes nothing; with another body it is
  IdempotencyConflictError;
- a key is live for TRIGGER_IDEMPOTENCY_HOURS: after that the old row releases it and the call is a new one.
Refused input, an unknown campaign or a campaign in the wrong state store nothing (Stripe saves no result
for a request that never started). A recipient's `address` replaces its profile's for this call (an email
address for EMAIL, E.164 for SMS), and the suppression list is checked against it.

One transaction: the trigger row, the profiles CREATE upserts, the recipients' ledger rows and the outbox event.
The ledger rows go into the campaign's long-lived run (`open_run`: one per activation, RUNNING while the campaign
is LIVE, created by the first trigger), and nothing per trigger is written on the run row: 200 acceptances a
second would queue on its row lock. The caller wakes the sender after commit (`JobQueue.wake_triggers`, one job
per run per short window whatever the number of calls); the dispatcher wakes it too, so a lost wake-up only
delays the send.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import outbox
from models.audience.entities import Profile, ProfileIdentity
from models.audience.profile_writes import PreparedItem, write_batch
from models.audience.profiles import IdentityValue, ProfileChanges, namespaces_by_code, prepare_identities
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.rules import CampaignStatus, CampaignType, Channel
from models.campaigns.run_rules import RunStatus
from models.campaigns.transitions import open_trigger_run
from models.ledger.snapshot import Recipient, reads_preset, trigger_audience
from models.outbox.payloads import TriggerAccepted
from models.presets.preset import MessagePreset
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of
from models.tenancy.identity import IdentityNamespace
from models.triggers import accept_pg
from models.triggers.addresses import check_addresses
from models.triggers.trigger import CampaignTrigger, TriggerStatus
from models.triggers.values import (
    DEFAULT_IDEMPOTENCY_HOURS,
    IdempotencyConflictError,
    MissingProfile,
    Problem,
    Rejection,
    RejectionReason,
    TriggerAnswer,
    TriggerInvalidInputError,
    TriggerNotFoundError,
    TriggerRequest,
    TriggerStateError,
    check_request,
)

# A call losing a race (same key, or the same run time of the campaign) is tried again this often.
ATTEMPTS = 5


async def accept_trigger(
    sandbox_id: int,
    request: TriggerRequest,
    *,
    idempotency_hours: float = DEFAULT_IDEMPOTENCY_HOURS,
    now: datetime | None = None,
    field_prefix: str = "input",
) -> TriggerAnswer:
    """Accept the call once per (campaign, key); see the module docstring. Raises the errors of values.py."""
    problems = check_request(request, field_prefix)
    if problems:
        raise TriggerInvalidInputError(problems)
    request_hash = request.request_hash()
    postgres = dialect_of() is Dialect.POSTGRES
    for attempt in range(ATTEMPTS):
        at = now or datetime.now(UTC)
        if postgres:
            fast = await accept_pg.accept_in_one_statement(
                sandbox_id, request, request_hash, at, idempotency_hours, field_prefix
            )
            if isinstance(fast, accept_pg.Retry):
                continue  # the same key committed meanwhile: the next attempt reads its answer
            if fast is not None:
                if not fast.replayed:
                    outbox.committed()
                return fast
        learned: list[_Learned] = []
        try:
            async with in_transaction() as conn:
                answer = await _accept_once(
                    conn, sandbox_id, request, request_hash, at, idempotency_hours, field_prefix, learned
                )
        except IntegrityError:
            # Another call inserted the same key (or took the same run time) and committed first: read it now.
            if attempt == ATTEMPTS - 1:
                raise
            continue
        if not answer.replayed:
            outbox.committed()
        if postgres and learned and answer.run_id is not None and learned[0].campaign.activated_at is not None:
            read = learned[0]
            await accept_pg.remember(
                sandbox_id, read.campaign, read.namespace, read.preset, answer.run_id, read.namespaces
            )
        return answer
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class _Learned:
    """What an acceptance read of its campaign, for the one-statement path of the next calls (accept_pg)."""

    campaign: Campaign
    namespace: IdentityNamespace
    preset: MessagePreset | None
    namespaces: dict[str, IdentityNamespace]


async def _accept_once(
    conn: BaseDBAsyncClient,
    sandbox_id: int,
    request: TriggerRequest,
    request_hash: str,
    now: datetime,
    idempotency_hours: float,
    prefix: str,
    learned: list[_Learned],
) -> TriggerAnswer:
    key = request.idempotency_key
    fresh, existing = await _campaign_and_key(conn, sandbox_id, request.campaign_id, key)
    if existing is not None:
        if existing.expires_at > now:
            if existing.request_hash != request_hash:
                raise IdempotencyConflictError(key, existing.id)
            return replace(
                TriggerAnswer.from_json(existing.answer, replayed=True),
                idempotency_key=existing.idempotency_key,
                context=existing.context or {},
                created_at=existing.created_at,
                expires_at=existing.expires_at,
            )
        # Expired: the old trigger keeps its history under released_key and the key is free again.
        await (
            CampaignTrigger.filter(id=existing.id, idempotency_key=key)
            .using_db(conn)
            .update(idempotency_key=None, released_key=key)
        )
    if fresh is None:
        raise TriggerNotFoundError(f"{prefix}.campaignId", request.campaign_id)
    addresses = check_addresses(request, Channel(fresh.channel) if fresh.channel else None, prefix)
    if fresh.type is not CampaignType.API_TRIGGERED or fresh.status is not CampaignStatus.LIVE:
        what = "not API-triggered" if fresh.type is not CampaignType.API_TRIGGERED else f"{fresh.status.value}"
        raise TriggerStateError(
            f"campaign {fresh.id} is {what}: only a LIVE API_TRIGGERED campaign accepts triggers",
            fresh.status.value,
        )
    # The row first: the unique index is what makes a concurrent duplicate wait for this transaction.
    expires_at = now + timedelta(hours=idempotency_hours)
    trigger_id = await _insert_trigger(conn, fresh, key, request_hash, request.context, now, expires_at)
    namespaces = await namespaces_by_code(fresh.sandbox_id) if any(r.namespace for r in request.recipients) else {}
    profiles, rejected = await _resolve(conn, fresh.sandbox_id, request, namespaces, addresses, prefix)
    run_id: int | None = None
    queued = excluded = 0
    if profiles:
        run_id = await open_run(conn, fresh, now)
        namespace = next((ns for ns in namespaces.values() if ns.id == fresh.namespace_id), None)
        if namespace is None:
            namespace = await IdentityNamespace.get(id=fresh.namespace_id).using_db(conn)
        preset = None
        if fresh.preset_id and reads_preset(fresh, namespace):
            preset = await MessagePreset.get_or_none(id=fresh.preset_id).using_db(conn)
        written = await trigger_audience(run_id, fresh, namespace, preset, trigger_id, profiles, now, conn)
        if written is None:
            # The run ended since it was remembered (the campaign stopped meanwhile): nothing of this call stays.
            forget_run(run_id)
            raise TriggerStateError(f"campaign {fresh.id}'s trigger run has ended", fresh.status.value)
        queued, excluded = written
        learned.append(_Learned(fresh, namespace, preset, namespaces))
    status = TriggerStatus.ACCEPTED if profiles else TriggerStatus.REJECTED
    answer = TriggerAnswer(
        trigger_id,
        status.value,
        len(profiles),
        tuple(rejected),
        run_id,
        idempotency_key=key,
        context=request.context or {},
        created_at=now,
        expires_at=expires_at,
    )
    # By hand, as the insert: tortoise's UpdateQuery was a tenth of an acceptance's CPU.
    params = SqlParams(dialect_of())
    stored = orjson.dumps(answer.to_json()).decode()
    await conn.execute_query(
        f"UPDATE campaign_trigger SET run_id = {params.typed(answer.run_id, 'BIGINT')}, "
        f"status = {params.add(status.value)}, accepted = {params.add(answer.accepted)}, "
        f"rejected = {params.add(len(rejected))}, answer = {params.typed(stored, 'JSONB')}, "
        f"pending = {params.add(queued)}, excluded = {params.add(excluded)} WHERE id = {params.add(trigger_id)}",
        params.values,
    )
    event = TriggerAccepted(
        campaign_id=fresh.id,
        trigger_id=trigger_id,
        run_id=answer.run_id,
        status=status.value,
        accepted=answer.accepted,
        rejected=len(rejected),
        at=now,
    )
    await outbox.emit(event, sandbox_id=fresh.sandbox_id, conn=conn)
    return answer


_TRIGGER_COLUMNS = ("id", "idempotency_key", "request_hash", "answer", "context", "created_at", "expires_at")
_JOINED = ", ".join(f"t.{column} AS t_{column}" for column in _TRIGGER_COLUMNS)


async def _campaign_and_key(
    conn: BaseDBAsyncClient, sandbox_id: int, campaign_id: int, key: str
) -> tuple[Campaign | None, CampaignTrigger | None]:
    """The campaign (in this sandbox, read inside the transaction) and its trigger holding `key`, in one statement:
    a round trip less per call than two reads. A key of another sandbox's campaign is not found (NotFound)."""
    params = SqlParams(dialect_of())
    placeholder_key = params.add(key)  # placeholders in text order (SQLite's `?`)
    sql = (
        f"SELECT c.*, {_JOINED} FROM campaign c LEFT JOIN campaign_trigger t ON t.campaign_id = c.id "
        f"AND t.sandbox_id = c.sandbox_id AND t.idempotency_key = {placeholder_key} "
        f"WHERE c.id = {params.add(campaign_id)} AND c.sandbox_id = {params.add(sandbox_id)}"
    )
    rows = await conn.execute_query_dict(sql, params.values)
    if not rows:
        return None, None
    row = dict(rows[0])
    joined = {column: row.pop(f"t_{column}") for column in _TRIGGER_COLUMNS}
    campaign = Campaign._init_from_db(**row)
    if joined["id"] is None:
        return campaign, None
    # Only these columns: a partial instance, read and never saved.
    return campaign, CampaignTrigger._init_from_db(**joined)


async def _insert_trigger(
    conn: BaseDBAsyncClient,
    campaign: Campaign,
    key: str,
    request_hash: str,
    context: dict,
    now: datetime,
    expires_at: datetime,
) -> int:
    """The trigger row (REJECTED until its answer is written), by hand: tortoise's Model.create was a sixth of an
    acceptance's CPU in py-spy. A duplicate key raises IntegrityError (the caller reads the first call's answer)."""
    params = SqlParams(dialect_of())
    values = (
        f"{params.add(campaign.sandbox_id)}, {params.add(campaign.id)}, {params.add(key)}, "
        f"{params.add(request_hash)}, '{TriggerStatus.REJECTED.value}', "
        f"{params.typed(orjson.dumps(context).decode(), 'JSONB')}, {params.typed('{}', 'JSONB')}, "
        f"{params.typed(now, 'TIMESTAMPTZ')}, {params.typed(expires_at, 'TIMESTAMPTZ')}, 0, 0, 0, 0, 0, 0"
    )
    rows = await conn.execute_query_dict(
        "INSERT INTO campaign_trigger (sandbox_id, campaign_id, idempotency_key, request_hash, status, context, "
        f"answer, created_at, expires_at, accepted, rejected, sent, failed, excluded, pending) VALUES ({values}) "
        "RETURNING id",
        params.values,
    )
    return int(rows[0]["id"])


async def open_run(conn: BaseDBAsyncClient, campaign: Campaign, now: datetime) -> int:
    """The id of the campaign's long-lived trigger run, created by the first trigger of an activation.

    Unique per (campaign, scheduled_for) with scheduled_for = activated_at: concurrent first triggers agree (the
    loser's insert fails, its call is tried again and finds the row). Created RUNNING with its snapshot step done:
    its audience is what the triggers write. A run no longer RUNNING (the campaign was stopped meanwhile) takes
    no more rows."""
    scheduled_for = campaign.activated_at or campaign.created_at
    known = _OPEN_RUNS.get((campaign.id, scheduled_for))
    if known is not None:
        return known  # the ledger insert checks it is still RUNNING (trigger_audience)
    row = await (
        CampaignRun.filter(campaign_id=campaign.id, scheduled_for=scheduled_for)
        .using_db(conn)
        .values_list("id", "status")
    )
    if row:
        run_id, status = row[0]
        if RunStatus(status) is not RunStatus.RUNNING:
            raise TriggerStateError(f"campaign {campaign.id}'s trigger run is {status}", campaign.status.value)
        _remember(campaign.id, scheduled_for, int(run_id))
        return int(run_id)
    # Not remembered before commit: a rolled-back creation must not leave an id behind.
    return await open_trigger_run(conn, campaign, scheduled_for, now)


# (campaign, activated_at) -> its trigger run, per process: one read less per acceptance. Never stale in effect:
# the ledger insert writes only into a RUNNING run, and a run found ended is forgotten (`forget_run`).
_OPEN_RUNS: dict[tuple[int, datetime], int] = {}
_OPEN_RUNS_MAX = 10_000


def _remember(campaign_id: int, scheduled_for: datetime, run_id: int) -> None:
    if len(_OPEN_RUNS) >= _OPEN_RUNS_MAX:
        _OPEN_RUNS.clear()
    _OPEN_RUNS[(campaign_id, scheduled_for)] = run_id


def forget_run(run_id: int) -> None:
    for key in [k for k, v in _OPEN_RUNS.items() if v == run_id]:
        del _OPEN_RUNS[key]


@dataclass(frozen=True, slots=True)
class _Wanted:
    index: int
    profile_id: int | None
    identity: tuple[int, str] | None  # (namespace id, normalised value)


async def _resolve(
    conn: BaseDBAsyncClient,
    sandbox_id: int,
    request: TriggerRequest,
    namespaces: dict[str, IdentityNamespace],
    addresses: dict[int, str],
    prefix: str,
) -> tuple[list[Recipient], list[Rejection]]:
    """The recipients' profiles (first occurrence wins) with their context and address, and the rejected ones."""
    wanted: list[_Wanted] = []
    problems: list[Problem] = []
    for index, recipient in enumerate(request.recipients):
        if recipient.profile_id is not None:
            wanted.append(_Wanted(index, recipient.profile_id, None))
            continue
        path = f"{prefix}.recipients[{index}].identity"
        pairs, refused = prepare_identities(
            [IdentityValue(str(recipient.namespace), str(recipient.value))], namespaces, path
        )
        for problem in refused:
            problems.append(Problem(path, problem.code, problem.message))
        if pairs:
            wanted.append(_Wanted(index, None, pairs[0]))
    if problems:
        raise TriggerInvalidInputError(problems)

    ids = [w.profile_id for w in wanted if w.profile_id is not None]
    known: set[int] = set()
    if ids:
        known = set(await Profile.filter(id__in=ids, sandbox_id=sandbox_id).using_db(conn).values_list("id", flat=True))
    owners = await _owners(conn, sandbox_id, [w.identity for w in wanted if w.identity is not None])
    if request.on_missing_profile is MissingProfile.CREATE:
        missing = [w for w in wanted if w.identity is not None and w.identity not in owners]
        owners.update(await _create_profiles(conn, sandbox_id, missing, request))

    profiles: list[Recipient] = []
    rejected: list[Rejection] = []
    seen: set[int] = set()
    for w in wanted:
        profile_id = w.profile_id if w.profile_id in known else owners.get(w.identity) if w.identity else None
        if profile_id is None:
            rejected.append(Rejection(w.index, RejectionReason.PROFILE_NOT_FOUND))
        elif profile_id in seen:
            rejected.append(Rejection(w.index, RejectionReason.DUPLICATE_RECIPIENT))
        else:
            seen.add(profile_id)
            profiles.append(Recipient(profile_id, request.recipients[w.index].context, addresses.get(w.index)))
    return profiles, rejected


async def _owners(conn: BaseDBAsyncClient, sandbox_id: int, pairs: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    if not pairs:
        return {}
    rows = (
        await ProfileIdentity.filter(
            sandbox_id=sandbox_id,
            namespace_id__in=sorted({ns for ns, _ in pairs}),
            value__in=sorted({value for _, value in pairs}),
        )
        .using_db(conn)
        .values_list("namespace_id", "value", "profile_id")
    )
    wanted = set(pairs)
    return {(ns, value): pid for ns, value, pid in rows if (ns, value) in wanted}


async def _create_profiles(
    conn: BaseDBAsyncClient, sandbox_id: int, missing: list[_Wanted], request: TriggerRequest
) -> dict[tuple[int, str], int]:
    """onMissingProfile CREATE: the missing identities upserted as profiles (the same writer as profileUpsert)."""
    items: list[PreparedItem] = []
    for w in missing:
        assert w.identity is not None
        recipient = request.recipients[w.index]
        changes = ProfileChanges(identities=[IdentityValue(str(recipient.namespace), str(recipient.value))])
        items.append(PreparedItem(w.index, f"input.recipients[{w.index}]", changes, [w.identity]))
    if not items:
        return {}
    results = await write_batch(conn, dialect_of(), sandbox_id, items)
    return {
        result.item.identities[0]: result.state.id
        for result in results
        if result.state is not None and result.state.id is not None
    }
