"""PostgreSQL: a trigger accepted in one statement (issue 17: 200 triggers/s on two cores).

The first path (accept.py) is BEGIN, seven statements and COMMIT: nine round trips, between which the backend sits
"idle in transaction" holding its locks while the server, short of CPU, gets to the next one. Here one
data-modifying CTE, sent outside any explicit transaction (a single statement is atomic), checks the idempotency key
and inserts the trigger row with its stored answer, resolves the recipients' profiles, writes their ledger rows
(with the reasons of models/ledger/snapshot.member_reasons, the snapshot's own SQL) and the outbox event.

What fixes the statement's text is what the first path reads from the campaign: its channel, category, namespace,
preset settings and trigger run. They are kept per process once the first path has accepted a call (`remember`),
with the statement built from them. The statement re-checks them in SQL (the campaign LIVE, API_TRIGGERED and at the
same version; the preset at the same version; the run RUNNING, held FOR KEY SHARE as trigger_audience holds it) and
writes nothing when one fails; so does any call this path does not answer the same way as the first: an expired key,
onMissingProfile CREATE with an identity to create, an unknown namespace, a refused value or address. The caller
then takes the first path, which answers in its own order (and refreshes what is kept here).

Idempotency stays the database's: the trigger insert is `ON CONFLICT (campaign_id, idempotency_key) DO NOTHING`,
which waits for a concurrent call holding the same key; when that call commits, nothing here is written (every
other write reads the insert's RETURNING) and the caller tries again, to find the stored answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from tortoise import connections

from models.audience.profiles import namespaces_by_code
from models.audience.values import ValueProblem, normalize_identity
from models.campaigns.campaign import Campaign
from models.campaigns.rules import CampaignStatus, CampaignType, Channel
from models.campaigns.run_rules import RunStatus
from models.ledger.snapshot import member_reasons, trigger_rows_insert
from models.outbox.payloads import TRIGGER_ACCEPTED_TOPIC
from models.presets.preset import MessagePreset
from models.sql.params import Dialect, SqlParams
from models.sql.reads import json_column
from models.tenancy.identity import IdentityNamespace, IdentityType
from models.triggers.addresses import check_addresses
from models.triggers.trigger import TriggerStatus
from models.triggers.values import (
    IdempotencyConflictError,
    MissingProfile,
    RejectionReason,
    TriggerAnswer,
    TriggerInvalidInputError,
    TriggerRequest,
)

# The per-call parameters come first ($1 … $13), in this order; the campaign's constants follow them.
_PER_CALL = (
    "indexes",
    "profile_ids",
    "namespace_ids",
    "values",
    "contexts",
    "addresses",
    "key",
    "request_hash",
    "context",
    "now",
    "expires_at",
    "at_text",
    "create",
)
_PER_CALL_TYPES = ("INT[]", "BIGINT[]", "BIGINT[]", "TEXT[]", "TEXT[]", "TEXT[]", "TEXT", "TEXT", "JSONB")
_PER_CALL_TYPES += ("TIMESTAMPTZ", "TIMESTAMPTZ", "TEXT", "BOOLEAN")


class Retry:
    """The key was taken by a call that committed while this one waited: try again, to read its answer."""


RETRY = Retry()


@dataclass(frozen=True, slots=True)
class _Shape:
    """What the first path read of a campaign, and the statement built from it."""

    channel: Channel | None
    sql: str
    constants: tuple[Any, ...]


# (sandbox, campaign) -> its shape; sandbox -> namespace code -> (id, type). Namespaces are only ever created,
# so an unknown code is looked up again, never a known one.
_SHAPES: dict[tuple[int, int], _Shape] = {}
_NAMESPACES: dict[int, dict[str, tuple[int, IdentityType]]] = {}
_MAX_KEPT = 10_000


def forget(sandbox_id: int, campaign_id: int) -> None:
    _SHAPES.pop((sandbox_id, campaign_id), None)


async def remember(
    sandbox_id: int,
    campaign: Campaign,
    namespace: IdentityNamespace,
    preset: MessagePreset | None,
    run_id: int,
    namespaces: dict[str, IdentityNamespace],
) -> None:
    """After the first path accepted a call (committed): keep the campaign's shape for the next calls."""
    if len(_SHAPES) >= _MAX_KEPT:
        _SHAPES.clear()
        _NAMESPACES.clear()
    if namespaces:
        _NAMESPACES.setdefault(sandbox_id, {}).update({code: (ns.id, ns.type) for code, ns in namespaces.items()})
    sql, constants = await _statement(campaign, namespace, preset, run_id)
    channel = Channel(campaign.channel) if campaign.channel else None
    _SHAPES[(sandbox_id, campaign.id)] = _Shape(channel, sql, constants)


async def accept_in_one_statement(
    sandbox_id: int,
    request: TriggerRequest,
    request_hash: str,
    now: datetime,
    idempotency_hours: float,
    prefix: str,
) -> TriggerAnswer | Retry | None:
    """The answer (new, or the stored one replayed), RETRY, or None: take the first path (nothing was written).
    Raises IdempotencyConflictError as the first path does."""
    shape = _SHAPES.get((sandbox_id, request.campaign_id))
    if shape is None:
        return None
    try:
        addresses = check_addresses(request, shape.channel, prefix)
    except TriggerInvalidInputError:
        return None  # the first path refuses it, in its order (an unknown campaign is NotFound first)
    recipients = await _recipient_arrays(sandbox_id, request, addresses)
    if recipients is None:
        return None
    expires_at = now + timedelta(hours=idempotency_hours)
    per_call = [
        *recipients,
        request.idempotency_key,
        request_hash,
        orjson.dumps(request.context).decode(),
        now,
        expires_at,
        now.isoformat(),
        request.on_missing_profile is MissingProfile.CREATE,
    ]
    rows = await connections.get("default").execute_query_dict(shape.sql, [*per_call, *shape.constants])
    row = rows[0]
    key = request.idempotency_key
    if row["e_id"] is not None:
        if row["e_expires_at"] <= now:
            return None  # the first path releases the expired key
        if row["e_request_hash"] != request_hash:
            raise IdempotencyConflictError(key, int(row["e_id"]))
        return replace(
            TriggerAnswer.from_json(json_column(row["e_answer"]), replayed=True),
            idempotency_key=key,
            context=json_column(row["e_context"]) or {},
            created_at=row["e_created_at"],
            expires_at=row["e_expires_at"],
        )
    if row["answer"] is not None:
        return replace(
            TriggerAnswer.from_json(json_column(row["answer"]), replayed=False),
            idempotency_key=key,
            context=request.context or {},
            created_at=now,
            expires_at=expires_at,
        )
    if row["accepting"]:
        return RETRY
    if not row["holds"]:
        forget(sandbox_id, request.campaign_id)  # the campaign, its preset or its run changed: read them again
    return None  # e.g. onMissingProfile CREATE with a profile to create


async def _recipient_arrays(
    sandbox_id: int, request: TriggerRequest, addresses: dict[int, str]
) -> list[list[Any]] | None:
    """The recipients as the statement's six arrays, identities normalised as the first path does; None when one
    would be refused (the first path names it)."""
    namespaces = _NAMESPACES.get(sandbox_id, {})
    codes = {r.namespace for r in request.recipients if r.profile_id is None}
    if not codes <= namespaces.keys():
        fresh = await namespaces_by_code(sandbox_id)
        namespaces = _NAMESPACES[sandbox_id] = {code: (ns.id, ns.type) for code, ns in fresh.items()}
        if not codes <= namespaces.keys():
            return None
    indexes, profile_ids, namespace_ids, values, contexts, owns = [], [], [], [], [], []
    for index, recipient in enumerate(request.recipients):
        namespace_id = value = None
        if recipient.profile_id is None:
            namespace_id, namespace_type = namespaces[str(recipient.namespace)]
            try:
                value = normalize_identity(namespace_type, str(recipient.value))
            except ValueProblem:
                return None
        indexes.append(index)
        profile_ids.append(recipient.profile_id)
        namespace_ids.append(namespace_id)
        values.append(value)
        contexts.append(orjson.dumps(recipient.context).decode())
        owns.append(addresses.get(index))
    return [indexes, profile_ids, namespace_ids, values, contexts, owns]


async def _statement(
    campaign: Campaign, namespace: IdentityNamespace, preset: MessagePreset | None, run_id: int
) -> tuple[str, tuple[Any, ...]]:
    """The statement for this campaign, and its constant parameters (they follow the per-call ones)."""
    params = SqlParams(Dialect.POSTGRES)
    p = {name: params.typed(None, pg_type) for name, pg_type in zip(_PER_CALL, _PER_CALL_TYPES, strict=True)}
    first_constant = len(params.values)
    sandbox = params.typed(campaign.sandbox_id, "BIGINT")
    found_reason, duplicate = RejectionReason.PROFILE_NOT_FOUND.value, RejectionReason.DUPLICATE_RECIPIENT.value
    # The recipients, first occurrence of a profile wins (accept._resolve's rules).
    prelude = (
        f"req (idx, profile_id, namespace_id, value, context, address) AS (SELECT * FROM unnest({p['indexes']}, "
        f"{p['profile_ids']}, {p['namespace_ids']}, {p['values']}, {p['contexts']}, {p['addresses']})), "
        # One index lookup per recipient, whatever the statistics: as plain joins, the generic plan a prepared
        # statement keeps (built while the tables were small) hashed every profile and identity of the sandbox at
        # each call (6,400 of each, 22 ms, in the 200/s bench). LIMIT 1 keeps each lookup a subquery of its own.
        f"found AS (SELECT q.idx, COALESCE(pr.id, i.profile_id) AS profile_id, q.profile_id IS NULL AS by_identity "
        f"FROM req q LEFT JOIN LATERAL (SELECT p.id FROM profile p WHERE p.id = q.profile_id "
        f"AND p.sandbox_id = {sandbox} LIMIT 1) pr ON TRUE "
        f"LEFT JOIN LATERAL (SELECT i.profile_id FROM profile_identity i WHERE q.profile_id IS NULL "
        f"AND i.sandbox_id = {sandbox} AND i.namespace_id = q.namespace_id AND i.value = q.value LIMIT 1) i ON TRUE), "
        f"ranked AS (SELECT f.*, row_number() OVER (PARTITION BY f.profile_id ORDER BY f.idx) AS n FROM found f), "
        f"c (profile_id, context, address) AS (SELECT r.profile_id, q.context, q.address FROM ranked r "
        f"JOIN req q ON q.idx = r.idx WHERE r.profile_id IS NOT NULL AND r.n = 1), "
        f"rejections AS (SELECT r.idx, CASE WHEN r.profile_id IS NULL THEN '{found_reason}' ELSE '{duplicate}' END "
        f"AS reason FROM ranked r WHERE r.profile_id IS NULL OR r.n > 1)"
    )

    async def members(params: SqlParams) -> str:
        # The primary key's index for the call's few profiles. `found` took them from the sandbox only; filtered
        # on it again, a generic plan built on stale statistics ANDed the sandbox's whole index in (6,400 rows).
        return "p.id = ANY (ARRAY(SELECT c.profile_id FROM c))"

    # Always the override: NULL where a recipient gave no address, which gives the profile's (COALESCE).
    override = "(SELECT c.address FROM c WHERE c.profile_id = p.id)"
    audience, _ = await member_reasons(
        params, campaign, campaign.sandbox_id, namespace, preset, members, prelude, override, members_in_sandbox=True
    )
    campaign_id = params.typed(campaign.id, "BIGINT")
    run = params.typed(run_id, "BIGINT")
    version = params.typed(campaign.version, "INT")
    activated_at = params.typed(campaign.activated_at, "TIMESTAMPTZ")
    preset_check = ""
    if preset is not None:
        preset_check = (
            f" AND EXISTS (SELECT 1 FROM message_preset m WHERE m.id = {params.typed(preset.id, 'BIGINT')} "
            f"AND m.version = {params.typed(preset.version, 'INT')})"
        )
    accepted, rejected = TriggerStatus.ACCEPTED.value, TriggerStatus.REJECTED.value
    status = f"CASE WHEN n.accepted > 0 THEN '{accepted}' ELSE '{rejected}' END"
    rejected_list = (
        "COALESCE((SELECT jsonb_agg(jsonb_build_object('index', j.idx, 'reason', j.reason) ORDER BY j.idx) "
        "FROM rejections j), '[]'::jsonb)"
    )
    sql = (
        f"{audience}, "
        f"existing AS (SELECT t.id, t.request_hash, t.answer, t.context, t.created_at, t.expires_at "
        f"FROM campaign_trigger t WHERE t.campaign_id = {campaign_id} AND t.sandbox_id = {sandbox} "
        f"AND t.idempotency_key = {p['key']}), "
        f"live AS (SELECT 1 FROM campaign k WHERE k.id = {campaign_id} AND k.sandbox_id = {sandbox} "
        f"AND k.status = '{CampaignStatus.LIVE.value}' AND k.type = '{CampaignType.API_TRIGGERED.value}' "
        f"AND k.version = {version} AND k.activated_at = {activated_at}{preset_check}), "
        # Held shared until commit, as trigger_audience holds it: a finish of the run waits for these rows.
        f"run AS (SELECT 1 FROM campaign_run r WHERE r.id = {run} AND r.campaign_id = {campaign_id} "
        f"AND r.status = '{RunStatus.RUNNING.value}' "
        f"FOR KEY SHARE), "
        f"counts AS (SELECT (SELECT count(*) FROM c) AS accepted, (SELECT count(*) FROM rejections) AS rejected, "
        f"(SELECT count(*) FROM y WHERE y.reason IS NULL) AS queued, "
        f"(SELECT count(*) FROM y WHERE y.reason IS NOT NULL) AS excluded), "
        f"new AS (SELECT nextval(pg_get_serial_sequence('campaign_trigger', 'id')) AS id, k.*, "
        f"CASE WHEN k.accepted > 0 THEN {run} END AS run_id FROM counts k "
        f"WHERE EXISTS (SELECT 1 FROM live) AND NOT EXISTS (SELECT 1 FROM existing) "
        f"AND (k.accepted = 0 OR EXISTS (SELECT 1 FROM run)) "
        f"AND NOT ({p['create']} AND EXISTS (SELECT 1 FROM ranked r WHERE r.profile_id IS NULL AND r.by_identity))), "
        f"trig AS (INSERT INTO campaign_trigger (id, sandbox_id, campaign_id, run_id, idempotency_key, request_hash, "
        f"status, context, answer, created_at, expires_at, accepted, rejected, sent, failed, excluded, pending) "
        f"SELECT n.id, {sandbox}, {campaign_id}, n.run_id, {p['key']}, {p['request_hash']}, {status}, "
        f"{p['context']}, jsonb_build_object('id', n.id, 'status', {status}, 'accepted', n.accepted, "
        f"'rejected', {rejected_list}, 'runId', n.run_id), {p['now']}, {p['expires_at']}, n.accepted, n.rejected, "
        f"0, 0, n.excluded, n.queued FROM new n "
        f"ON CONFLICT (campaign_id, idempotency_key) DO NOTHING RETURNING id, answer), "
        # The ledger package writes a delivery's status (tests/unit/test_single_writer.py): its text, composed here.
        f"ledger AS ({trigger_rows_insert(sandbox, run, campaign_id, p['now'])}), "
        f"event AS (INSERT INTO outbox_event (sandbox_id, topic, payload, created_at) "
        f"SELECT {sandbox}, '{TRIGGER_ACCEPTED_TOPIC}', jsonb_build_object('campaignId', {campaign_id}, "
        f"'triggerId', t.id, 'runId', n.run_id, 'status', {status}, 'accepted', n.accepted, 'rejected', n.rejected, "
        f"'at', {p['at_text']}), {p['now']} FROM trig t CROSS JOIN new n) "
        f"SELECT (SELECT t.answer FROM trig t) AS answer, EXISTS (SELECT 1 FROM new) AS accepting, "
        f"EXISTS (SELECT 1 FROM live) AND (NOT EXISTS (SELECT 1 FROM c) OR EXISTS (SELECT 1 FROM run)) AS holds, "
        f"e.id AS e_id, e.request_hash AS e_request_hash, e.answer AS e_answer, e.context AS e_context, "
        f"e.created_at AS e_created_at, e.expires_at AS e_expires_at "
        f"FROM (SELECT 1) AS one LEFT JOIN existing e ON TRUE"
    )
    return sql, tuple(params.values[first_constant:])
