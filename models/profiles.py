"""Profile actions: upsert by identity (one transaction per profile), look-ups by identity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.audience import CONSENT_COLUMNS, Consent, ContactChannel, Profile, ProfileIdentity
from models.audience_values import (
    ValueProblem,
    check_attributes,
    check_time_zone,
    merge_attributes,
    normalize_identity,
)
from models.audit import record_audit
from models.identity import IdentityNamespace
from models.segment_rules import Dialect

MAX_UPSERT_PROFILES = 1000
MAX_IDENTITIES_PER_PROFILE = 20


class _Keep:
    """Marks a field the caller did not send, so it stays as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


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


@dataclass(slots=True)
class _Prepared:
    index: int
    path: str  # field path of this item, e.g. input.profiles[3]
    changes: ProfileChanges
    identities: list[tuple[int, str]]  # (namespace id, normalised value), deduplicated


def dialect_of(connection_name: str = "default") -> Dialect:
    return (
        Dialect.SQLITE
        if connections.get(connection_name).capabilities.dialect == "sqlite"
        else Dialect.POSTGRES
    )


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
                FieldProblem(
                    f"{field_path}[{i}].namespace", "UNKNOWN_NAMESPACE", "no such identity namespace"
                )
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


def _prepare(index: int, changes: ProfileChanges, namespaces: dict[str, IdentityNamespace], prefix: str):
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
    return _Prepared(index, path, changes, identities), problems


async def upsert_profiles(
    sandbox_id: int, items: Sequence[ProfileChanges], *, actor: str, field_prefix: str = "input.profiles"
) -> list[UpsertOutcome]:
    """Create or update each profile, merged by any of its identities.

    Each profile is checked in full first, then written in its own transaction, so one bad item never
    blocks the others and never leaves a half-written profile.
    """
    namespaces = await namespaces_by_code(sandbox_id)
    outcomes: list[UpsertOutcome] = []
    for index, changes in enumerate(items):
        prepared, problems = _prepare(index, changes, namespaces, field_prefix)
        if problems:
            outcomes.append(UpsertOutcome(index, UpsertStatus.ERROR, problems=problems))
            continue
        try:
            outcome = await _write_profile(sandbox_id, prepared, actor)
        except IntegrityError:
            # Another request created one of these identities meanwhile; now it merges into that profile.
            outcome = await _write_profile(sandbox_id, prepared, actor)
        outcomes.append(outcome)
    return outcomes


async def _write_profile(sandbox_id: int, prepared: _Prepared, actor: str) -> UpsertOutcome:
    changes = prepared.changes
    async with in_transaction() as conn:
        matches = await _profile_ids_for_identities(sandbox_id, prepared.identities, conn)
        if len(matches) > 1:
            return UpsertOutcome(
                prepared.index,
                UpsertStatus.ERROR,
                problems=[
                    FieldProblem(
                        f"{prepared.path}.identities",
                        "IDENTITY_CONFLICT",
                        "these identities belong to different profiles",
                    )
                ],
            )
        if not matches:
            profile = Profile(sandbox_id=sandbox_id, attributes={})
            changed = _apply(profile, changes)
            await profile.save(using_db=conn)
            await _add_identities(sandbox_id, profile.id, prepared.identities, set(), conn)
            await record_audit(
                sandbox_id=sandbox_id,
                actor=actor,
                action="CREATE",
                object_type="Profile",
                object_id=profile.id,
                after={"fields": sorted(changed), "identities": len(prepared.identities)},
                using_db=conn,
            )
            return UpsertOutcome(prepared.index, UpsertStatus.CREATED, profile)
        (profile_id,) = matches
        profile = await Profile.filter(id=profile_id).using_db(conn).select_for_update().get()
        changed = _apply(profile, changes)
        existing = {
            (row["namespace_id"], row["value"])
            for row in await ProfileIdentity.filter(profile_id=profile_id)
            .using_db(conn)
            .values("namespace_id", "value")
        }
        added = await _add_identities(sandbox_id, profile_id, prepared.identities, existing, conn)
        if not changed and not added:
            return UpsertOutcome(prepared.index, UpsertStatus.UNCHANGED, profile)
        if changed:
            await profile.save(using_db=conn, update_fields=[*sorted(changed), "updated_at"])
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="UPDATE",
            object_type="Profile",
            object_id=profile.id,
            after={"fields": sorted(changed), "identitiesAdded": added},
            using_db=conn,
        )
        return UpsertOutcome(prepared.index, UpsertStatus.UPDATED, profile)


def _apply(profile: Profile, changes: ProfileChanges) -> set[str]:
    """Apply the changes to the model in memory; the names of the columns that changed."""
    changed: set[str] = set()
    if changes.attributes is not KEEP:
        merged = merge_attributes(profile.attributes or {}, changes.attributes)
        if merged != profile.attributes:
            profile.attributes = merged
            changed.add("attributes")
    for channel, consent in changes.consent.items():
        column = CONSENT_COLUMNS[channel]
        if getattr(profile, column) != consent:
            setattr(profile, column, consent)
            changed.add(column)
    if changes.time_zone is not KEEP and profile.time_zone != changes.time_zone:
        profile.time_zone = changes.time_zone
        changed.add("time_zone")
    if changes.test_profile is not KEEP and profile.test_profile != changes.test_profile:
        profile.test_profile = changes.test_profile
        changed.add("test_profile")
    return changed


async def _add_identities(
    sandbox_id: int, profile_id: int, identities: list[tuple[int, str]], existing: set[tuple[int, str]], conn
) -> int:
    new = [pair for pair in identities if pair not in existing]
    if new:
        await ProfileIdentity.bulk_create(
            [
                ProfileIdentity(sandbox_id=sandbox_id, profile_id=profile_id, namespace_id=ns, value=value)
                for ns, value in new
            ],
            using_db=conn,
        )
    return len(new)


async def _profile_ids_for_identities(sandbox_id: int, identities: list[tuple[int, str]], conn) -> set[int]:
    by_namespace: dict[int, list[str]] = {}
    for namespace_id, value in identities:
        by_namespace.setdefault(namespace_id, []).append(value)
    found: set[int] = set()
    for namespace_id, values in by_namespace.items():
        rows = (
            await ProfileIdentity.filter(sandbox_id=sandbox_id, namespace_id=namespace_id, value__in=values)
            .using_db(conn)
            .values_list("profile_id", flat=True)
        )
        found.update(rows)
    return found


async def profile_by_identity(sandbox_id: int, namespace_code: str, value: str) -> Profile | None:
    namespace = await IdentityNamespace.get_or_none(sandbox_id=sandbox_id, code=namespace_code)
    if namespace is None:
        return None
    try:
        normalised = normalize_identity(namespace.type, value)
    except ValueProblem:
        return None
    identity = await ProfileIdentity.get_or_none(
        sandbox_id=sandbox_id, namespace_id=namespace.id, value=normalised
    )
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
