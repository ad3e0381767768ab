"""Profile actions: upsert by identity (checked item by item, written set-based), look-ups by identity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.audience.entities import Consent, ContactChannel, Profile, ProfileIdentity
from models.audience.profile_writes import KEEP, ItemResult, PreparedItem, write_batch
from models.audience.values import (
    ValueProblem,
    check_attributes,
    check_time_zone,
    normalize_identity,
)
from models.sql.reads import dialect_of
from models.tenancy.audit import AuditEvent
from models.tenancy.identity import IdentityNamespace

__all__ = ["KEEP"]

MAX_UPSERT_PROFILES = 1000
MAX_IDENTITIES_PER_PROFILE = 20


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    code: str
    message: str


@dataclass(slots=True)
class IdentityValue:
    namespace: str  # namespace code
    value: str


@dataclass(slots=True)
class ProfileChanges:
    """One profile of an upsert; fields left at KEEP are not changed on an existing profile."""

    identities: list[IdentityValue]
    attributes: Any = KEEP
    consent: dict[ContactChannel, Consent] = field(default_factory=dict)
    time_zone: Any = KEEP  # str, None (clears it) or KEEP
    test_profile: Any = KEEP  # bool or KEEP


class UpsertStatus(StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    ERROR = "ERROR"


@dataclass(slots=True)
class UpsertOutcome:
    index: int
    status: UpsertStatus
    profile: Profile | None = None
    problems: list[FieldProblem] = field(default_factory=list)


async def namespaces_by_code(sandbox_id: int) -> dict[str, IdentityNamespace]:
    return {ns.code: ns for ns in await IdentityNamespace.filter(sandbox_id=sandbox_id)}


def prepare_identities(
    identities: Sequence[IdentityValue], namespaces: dict[str, IdentityNamespace], field_path: str
) -> tuple[list[tuple[int, str]], list[FieldProblem]]:
    """Normalised (namespace id, value) pairs, or the problems of each refused identity."""
    problems: list[FieldProblem] = []
    prepared: list[tuple[int, str]] = []
    for i, identity in enumerate(identities):
        namespace = namespaces.get(identity.namespace)
        if namespace is None:
            problems.append(
                FieldProblem(f"{field_path}[{i}].namespace", "UNKNOWN_NAMESPACE", "no such identity namespace")
            )
            continue
        try:
            value = normalize_identity(namespace.type, identity.value)
        except ValueProblem as problem:
            problems.append(FieldProblem(f"{field_path}[{i}].value", problem.code, problem.message))
            continue
        if (namespace.id, value) not in prepared:
            prepared.append((namespace.id, value))
    return prepared, problems


def prepare_item(
    index: int, changes: ProfileChanges, namespaces: dict[str, IdentityNamespace], prefix: str
) -> tuple[PreparedItem, list[FieldProblem]]:
    """Check one profile change with the pure rules; the prepared item and its problems (empty when valid)."""
    path = f"{prefix}[{index}]"
    problems: list[FieldProblem] = []
    if not 1 <= len(changes.identities) <= MAX_IDENTITIES_PER_PROFILE:
        problems.append(
            FieldProblem(
                f"{path}.identities",
                "COUNT",
                f"give 1 to {MAX_IDENTITIES_PER_PROFILE} identities per profile",
            )
        )
    identities, identity_problems = prepare_identities(changes.identities, namespaces, f"{path}.identities")
    problems.extend(identity_problems)
    if changes.attributes is not KEEP:
        try:
            check_attributes(changes.attributes)
        except ValueProblem as problem:
            problems.append(FieldProblem(f"{path}.attributes", problem.code, problem.message))
    if changes.time_zone not in (KEEP, None):
        try:
            check_time_zone(changes.time_zone)
        except ValueProblem as problem:
            problems.append(FieldProblem(f"{path}.timeZone", problem.code, problem.message))
    return PreparedItem(index, path, changes, identities), problems


async def upsert_profiles(
    sandbox_id: int, items: Sequence[ProfileChanges], *, actor: str, field_prefix: str = "input.profiles"
) -> list[UpsertOutcome]:
    """Create or update each profile, merged by any of its identities.

    Every item is checked first (pure rules); the valid ones are then written together with set-based SQL
    in one transaction (models.audience.profile_writes), as if written one after another. A refused item changes
    nothing and does not stop the others.
    """
    namespaces = await namespaces_by_code(sandbox_id)
    outcomes: dict[int, UpsertOutcome] = {}
    valid: list[PreparedItem] = []
    for index, changes in enumerate(items):
        prepared, problems = prepare_item(index, changes, namespaces, field_prefix)
        if problems:
            outcomes[index] = UpsertOutcome(index, UpsertStatus.ERROR, problems=problems)
        else:
            valid.append(prepared)
    results = await write_items(sandbox_id, valid, audit_actor=actor)
    written = [r.state.id for r in results if r.state is not None]
    profiles = {row.id: row for row in await Profile.filter(id__in=written)} if written else {}
    for result in results:
        outcomes[result.item.index] = _outcome(result, profiles)
    return [outcomes[index] for index in range(len(items))]


def _outcome(result: ItemResult, profiles: dict[int, Profile]) -> UpsertOutcome:
    index = result.item.index
    if result.status == "CONFLICT":
        return UpsertOutcome(
            index,
            UpsertStatus.ERROR,
            problems=[
                FieldProblem(
                    f"{result.item.path}.identities",
                    "IDENTITY_CONFLICT",
                    "these identities belong to different profiles",
                )
            ],
        )
    assert result.state is not None and result.state.id is not None
    return UpsertOutcome(index, UpsertStatus(result.status), profiles[result.state.id])


async def write_items(
    sandbox_id: int,
    items: Sequence[PreparedItem],
    *,
    audit_actor: str | None,
    connection_name: str = "default",
    before_commit=None,
) -> list[ItemResult]:
    """Write checked items in one transaction; `before_commit(conn, results)` runs inside it.

    Another writer may take one of the identities between the look-up and the insert: the transaction then
    rolls back whole and the items are tried again (in halves, so whatever keeps failing is narrowed down).
    With `audit_actor`, one audit event per created or changed profile is written in the same transaction.
    """
    if not items:
        return []
    dialect = dialect_of(connection_name)
    for attempt in range(3):
        try:
            async with in_transaction(connection_name) as conn:
                results = await write_batch(conn, dialect, sandbox_id, items)
                if audit_actor is not None:
                    await _audit(sandbox_id, audit_actor, results, conn)
                if before_commit is not None:
                    await before_commit(conn, results)
                return results
        except IntegrityError:
            if len(items) > 1 and before_commit is None:
                half = len(items) // 2
                first = await write_items(sandbox_id, items[:half], audit_actor=audit_actor)
                return first + await write_items(sandbox_id, items[half:], audit_actor=audit_actor)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _audit(sandbox_id: int, actor: str, results: Sequence[ItemResult], conn) -> None:
    events = []
    for result in results:
        if result.status not in ("CREATED", "UPDATED"):
            continue
        assert result.state is not None
        if result.status == "CREATED":
            action, after = "CREATE", {"fields": result.changed, "identities": len(result.item.identities)}
        else:
            action, after = "UPDATE", {"fields": result.changed, "identitiesAdded": result.identities_added}
        events.append(
            AuditEvent(
                sandbox_id=sandbox_id,
                actor=actor,
                action=action,
                object_type="Profile",
                object_id=str(result.state.id),
                after=after,
            )
        )
    if events:
        await AuditEvent.bulk_create(events, using_db=conn)


async def profile_by_identity(sandbox_id: int, namespace_code: str, value: str) -> Profile | None:
    namespace = await IdentityNamespace.get_or_none(sandbox_id=sandbox_id, code=namespace_code)
    if namespace is None:
        return None
    try:
        normalised = normalize_identity(namespace.type, value)
    except ValueProblem:
        return None
    identity = await ProfileIdentity.get_or_none(sandbox_id=sandbox_id, namespace_id=namespace.id, value=normalised)
    if identity is None:
        return None
    return await Profile.get_or_none(id=identity.profile_id, sandbox_id=sandbox_id)


async def identities_by_profile_id(profile_ids: Sequence[int]) -> list[list[dict[str, Any]]]:
    """For a DataLoader: each profile's identities as {namespace, value}, in one query."""
    rows = (
        await ProfileIdentity.filter(profile_id__in=list(profile_ids))
        .order_by("id")
        .values("profile_id", "namespace__code", "value")
    )
    grouped: dict[int, list[dict[str, Any]]] = {pid: [] for pid in profile_ids}
    for row in rows:
        grouped[row["profile_id"]].append({"namespace": row["namespace__code"], "value": row["value"]})
    return [grouped[pid] for pid in profile_ids]
