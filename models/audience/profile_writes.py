"""Set-based writing of a batch of checked profile changes: the path shared by `profilesUpsert` and imports.

A batch is resolved in Python against the current rows (identities looked up in one query, the matched
profiles locked and read in another), item by item in input order, so the result is what writing the
items one after another would give. Then the outcome is written with one multi-row statement per table:
new profiles, changed profiles, new identities (and, for `profilesUpsert`, the audit events). The caller
owns the transaction, so a batch commits whole or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient

from models.audience.entities import CONSENT_COLUMNS, Consent
from models.audience.values import merge_attributes
from models.sql.params import Dialect


class _Keep:
    """Marks a field the caller did not send, so it stays as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()

# Columns written from the in-memory state of a profile, in this order.
STATE_COLUMNS = ("attributes", "consent_email", "consent_sms", "consent_push", "time_zone", "test_profile")


@dataclass(slots=True)
class PreparedItem:
    """One checked profile change: its position, its field path and its normalised identities."""

    index: int
    path: str
    changes: Any  # models.profiles.ProfileChanges
    identities: list[tuple[int, str]]  # (namespace id, normalised value), deduplicated


@dataclass(slots=True)
class ProfileState:
    """A profile as it will be once the batch is written."""

    id: int | None  # None until a new profile gets its id
    attributes: dict[str, Any]
    consent_email: Consent = Consent.UNKNOWN
    consent_sms: Consent = Consent.UNKNOWN
    consent_push: Consent = Consent.UNKNOWN
    time_zone: str | None = None
    test_profile: bool = False
    new: bool = False
    changed: set[str] = field(default_factory=set)
    identities_added: int = 0


@dataclass(slots=True)
class ItemResult:
    """What the batch did with one item: CREATED, UPDATED, UNCHANGED or CONFLICT (its identities belong to
    different profiles). `state` is the profile it went to."""

    item: PreparedItem
    status: str
    state: ProfileState | None
    changed: list[str] = field(default_factory=list)
    identities_added: int = 0


def apply_changes(state: Any, changes: Any) -> set[str]:
    """Apply one item's changes to a profile (a model or a ProfileState); the names of the columns changed."""
    changed: set[str] = set()
    if changes.attributes is not KEEP:
        merged = merge_attributes(state.attributes or {}, changes.attributes)
        if merged != state.attributes:
            state.attributes = merged
            changed.add("attributes")
    for channel, consent in changes.consent.items():
        column = CONSENT_COLUMNS[channel]
        if getattr(state, column) != consent:
            setattr(state, column, consent)
            changed.add(column)
    if changes.time_zone is not KEEP and state.time_zone != changes.time_zone:
        state.time_zone = changes.time_zone
        changed.add("time_zone")
    if changes.test_profile is not KEEP and state.test_profile != changes.test_profile:
        state.test_profile = changes.test_profile
        changed.add("test_profile")
    return changed


def resolve_batch(
    items: Sequence[PreparedItem],
    owners: dict[tuple[int, str], int],
    current: dict[int, ProfileState],
) -> list[ItemResult]:
    """Pure: the outcome of applying `items` in order, given which profile owns each identity now
    (`owners`) and the current state of those profiles (`current`). New profiles get `id=None`."""
    owner_of: dict[tuple[int, str], ProfileState] = {pair: current[pid] for pair, pid in owners.items()}
    results: list[ItemResult] = []
    for item in items:
        matches = {id(owner_of[pair]): owner_of[pair] for pair in item.identities if pair in owner_of}
        if len(matches) > 1:
            results.append(ItemResult(item, "CONFLICT", None))
            continue
        if matches:
            (state,) = matches.values()
            changed = apply_changes(state, item.changes)
            status = "UPDATED"
        else:
            state = ProfileState(id=None, attributes={}, new=True)
            changed = apply_changes(state, item.changes)
            status = "CREATED"
        added = [pair for pair in item.identities if pair not in owner_of]
        for pair in added:
            owner_of[pair] = state
        if status == "UPDATED":
            if not changed and not added:
                status = "UNCHANGED"
            elif not state.new:
                state.changed |= changed
                state.identities_added += len(added)
        results.append(ItemResult(item, status, state, sorted(changed), len(added)))
    return results


# ---- SQL, one function per dialect side by side -------------------------------------------------------


def _row(state: ProfileState) -> list[Any]:
    return [
        orjson.dumps(state.attributes).decode(),
        str(state.consent_email),
        str(state.consent_sms),
        str(state.consent_push),
        state.time_zone,
        bool(state.test_profile),
    ]


async def lookup_owners(
    conn: BaseDBAsyncClient, dialect: Dialect, sandbox_id: int, pairs: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], int]:
    """Which profile holds each of these identities (absent: none)."""
    if not pairs:
        return {}
    if dialect is Dialect.POSTGRES:
        rows = await conn.execute_query_dict(
            "SELECT i.namespace_id, i.value, i.profile_id FROM unnest($2::bigint[], $3::text[]) AS v(ns, val) "
            "JOIN profile_identity i ON i.sandbox_id = $1 AND i.namespace_id = v.ns AND i.value = v.val",
            [sandbox_id, [p[0] for p in pairs], [p[1] for p in pairs]],
        )
    else:
        # CROSS JOIN keeps json_each as the outer loop, so each pair is one unique-index look-up.
        rows = await conn.execute_query_dict(
            "SELECT i.namespace_id, i.value, i.profile_id FROM json_each(?) AS v "
            "CROSS JOIN profile_identity i ON i.sandbox_id = ? AND i.namespace_id = json_extract(v.value, '$[0]') "
            "AND i.value = json_extract(v.value, '$[1]')",
            [orjson.dumps(list(pairs)).decode(), sandbox_id],
        )
    return {(row["namespace_id"], row["value"]): row["profile_id"] for row in rows}


async def load_profiles(
    conn: BaseDBAsyncClient, dialect: Dialect, sandbox_id: int, profile_ids: Sequence[int]
) -> dict[int, ProfileState]:
    """The current state of these profiles; on PostgreSQL locked (in id order) until the transaction ends."""
    if not profile_ids:
        return {}
    columns = "id, " + ", ".join(STATE_COLUMNS)
    ids = sorted(profile_ids)
    if dialect is Dialect.POSTGRES:
        rows = await conn.execute_query_dict(
            f"SELECT {columns} FROM profile WHERE sandbox_id = $1 AND id = ANY($2::bigint[]) ORDER BY id FOR UPDATE",
            [sandbox_id, ids],
        )
    else:
        rows = await conn.execute_query_dict(
            f"SELECT {columns} FROM profile WHERE sandbox_id = ? AND id IN (SELECT value FROM json_each(?))",
            [sandbox_id, orjson.dumps(ids).decode()],
        )
    states = {}
    for row in rows:
        attributes = row["attributes"]
        states[row["id"]] = ProfileState(
            id=row["id"],
            attributes=orjson.loads(attributes) if isinstance(attributes, (str, bytes)) else attributes,
            consent_email=Consent(row["consent_email"]),
            consent_sms=Consent(row["consent_sms"]),
            consent_push=Consent(row["consent_push"]),
            time_zone=row["time_zone"],
            test_profile=bool(row["test_profile"]),
        )
    return states


async def insert_profiles(
    conn: BaseDBAsyncClient, dialect: Dialect, sandbox_id: int, states: Sequence[ProfileState], now: datetime
) -> None:
    """Insert new profiles in one statement and set each state's id."""
    if not states:
        return
    rows = [_row(state) for state in states]
    if dialect is Dialect.POSTGRES:
        # Ids are drawn first, so each row's id is known without relying on the order of RETURNING.
        id_rows = await conn.execute_query_dict(
            "SELECT nextval(pg_get_serial_sequence('profile', 'id')) AS id FROM generate_series(1, $1)",
            [len(states)],
        )
        ids = [row["id"] for row in id_rows]
        await conn.execute_query(
            "INSERT INTO profile (id, sandbox_id, created_at, updated_at, "
            + ", ".join(STATE_COLUMNS)
            + ") SELECT v.id, $1, $2, $2, v.a::jsonb, v.ce, v.cs, v.cp, v.tz, v.tp "
            "FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bool[]) "
            "AS v(id, a, ce, cs, cp, tz, tp)",
            [sandbox_id, now, ids, *map(list, zip(*rows, strict=True))],
        )
    else:
        # One INSERT … SELECT in a write-locked database numbers its rows consecutively in SELECT order.
        returned = await conn.execute_query_dict(
            "INSERT INTO profile (sandbox_id, created_at, updated_at, "
            + ", ".join(STATE_COLUMNS)
            + ") SELECT ?, ?, ?, json_extract(v.value, '$[0]'), json_extract(v.value, '$[1]'), "
            "json_extract(v.value, '$[2]'), json_extract(v.value, '$[3]'), json_extract(v.value, '$[4]'), "
            "json_extract(v.value, '$[5]') FROM json_each(?) AS v ORDER BY v.key RETURNING id",
            [sandbox_id, now, now, orjson.dumps(rows).decode()],
        )
        ids = sorted(row["id"] for row in returned)
        if ids != list(range(ids[0], ids[0] + len(states))):
            raise RuntimeError("SQLite numbered a multi-row insert out of sequence")
    for state, profile_id in zip(states, ids, strict=True):
        state.id = profile_id


async def update_profiles(
    conn: BaseDBAsyncClient, dialect: Dialect, states: Sequence[ProfileState], now: datetime
) -> None:
    """Write the new state of changed profiles in one statement."""
    if not states:
        return
    rows = [[state.id, *_row(state)] for state in states]
    if dialect is Dialect.POSTGRES:
        await conn.execute_query(
            "UPDATE profile AS p SET updated_at = $1, attributes = v.a::jsonb, consent_email = v.ce, "
            "consent_sms = v.cs, consent_push = v.cp, time_zone = v.tz, test_profile = v.tp "
            "FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bool[]) "
            "AS v(id, a, ce, cs, cp, tz, tp) WHERE p.id = v.id",
            [now, *map(list, zip(*rows, strict=True))],
        )
    else:
        await conn.execute_query(
            "UPDATE profile SET updated_at = ?, attributes = json_extract(v.value, '$[1]'), "
            "consent_email = json_extract(v.value, '$[2]'), consent_sms = json_extract(v.value, '$[3]'), "
            "consent_push = json_extract(v.value, '$[4]'), time_zone = json_extract(v.value, '$[5]'), "
            "test_profile = json_extract(v.value, '$[6]') "
            "FROM json_each(?) AS v WHERE profile.id = json_extract(v.value, '$[0]')",
            [now, orjson.dumps(rows).decode()],
        )


async def insert_identities(
    conn: BaseDBAsyncClient,
    dialect: Dialect,
    sandbox_id: int,
    identities: Sequence[tuple[int, int, str]],
    now: datetime,
) -> None:
    """Insert (profile id, namespace id, value) rows in one statement. A value taken meanwhile by another
    writer raises IntegrityError, so the caller's transaction rolls back whole."""
    if not identities:
        return
    if dialect is Dialect.POSTGRES:
        await conn.execute_query(
            "INSERT INTO profile_identity (sandbox_id, created_at, updated_at, profile_id, namespace_id, value) "
            "SELECT $1, $2, $2, v.p, v.n, v.v FROM unnest($3::bigint[], $4::bigint[], $5::text[]) AS v(p, n, v)",
            [sandbox_id, now, *map(list, zip(*identities, strict=True))],
        )
    else:
        await conn.execute_query(
            "INSERT INTO profile_identity (sandbox_id, created_at, updated_at, profile_id, namespace_id, value) "
            "SELECT ?, ?, ?, json_extract(v.value, '$[0]'), json_extract(v.value, '$[1]'), "
            "json_extract(v.value, '$[2]') FROM json_each(?) AS v",
            [sandbox_id, now, now, orjson.dumps(list(identities)).decode()],
        )


async def write_batch(
    conn: BaseDBAsyncClient, dialect: Dialect, sandbox_id: int, items: Sequence[PreparedItem]
) -> list[ItemResult]:
    """Resolve and write checked items inside the caller's transaction; one result per item, in order."""
    pairs = list(dict.fromkeys(pair for item in items for pair in item.identities))
    owners = await lookup_owners(conn, dialect, sandbox_id, pairs)
    current = await load_profiles(conn, dialect, sandbox_id, sorted(set(owners.values())))
    owners = {pair: pid for pair, pid in owners.items() if pid in current}
    results = resolve_batch(items, owners, current)

    now = datetime.now(UTC)
    new_states = list({id(r.state): r.state for r in results if r.state is not None and r.state.new}.values())
    changed_states = [state for state in current.values() if state.changed]
    await insert_profiles(conn, dialect, sandbox_id, new_states, now)
    if changed_states:
        await update_profiles(conn, dialect, changed_states, now)
    new_identities: list[tuple[int, int, str]] = []
    seen: set[tuple[int, str]] = set(owners)
    for result in results:
        if result.state is None:
            continue
        for pair in result.item.identities:
            if pair not in seen:
                seen.add(pair)
                new_identities.append((result.state.id, pair[0], pair[1]))  # type: ignore[arg-type]
    await insert_identities(conn, dialect, sandbox_id, new_identities, now)
    return results
