"""Segment actions: save with validated rules, delete unless in use, static members, estimates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from models.audience.entities import (
    CONSENT_COLUMNS,
    ContactChannel,
    ProfileIdentity,
    Segment,
    SegmentKind,
    SegmentMember,
)
from models.audience.profiles import (
    KEEP,
    FieldProblem,
    IdentityValue,
    namespaces_by_code,
    prepare_identities,
)
from models.audience.segment_rules import (
    MAX_EXPANDED_CONDITIONS,
    RuleCycleError,
    SegmentRef,
    expanded_condition_count,
    find_cycle,
    in_segment_fields,
    referenced_segments,
    validate_rule,
)
from models.audience.segment_sql import attribute_text, compile_rule
from models.campaigns.campaign import campaigns_using, detach_drafts
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of
from models.tenancy.audit import record_audit
from models.tenancy.identity import IdentityNamespace, IdentityType

MAX_NAME_LENGTH = 100
MAX_DESCRIPTION_LENGTH = 2000
MAX_MEMBER_CHANGES = 1000

# The namespace type whose identity is itself the address on a channel.
ADDRESS_NAMESPACE_TYPE = {
    ContactChannel.EMAIL: IdentityType.EMAIL,
    ContactChannel.SMS: IdentityType.PHONE,
    ContactChannel.PUSH: IdentityType.DEVICE,
}
# Where the address is read from otherwise (the preset's default execution field); push has none.
ADDRESS_ATTRIBUTE = {ContactChannel.EMAIL: "personalEmail.address", ContactChannel.SMS: "mobilePhone.number"}


class SegmentRefused(Exception):
    """The input was refused; `problems` names each field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


class SegmentNotFound(Exception):
    pass


class SegmentInUse(Exception):
    def __init__(self, users: list[str]) -> None:
        super().__init__("segment is in use by " + ", ".join(users))
        self.users = users


async def segment_in_use(segment_id: int, using_db: Any = None) -> list[str]:
    """Names of non-draft campaigns using this segment, which forbid deleting it."""
    return await campaigns_using(segment_id=segment_id, using_db=using_db)


async def segments_referencing(sandbox_id: int, segment_id: int, using_db: Any = None) -> list[Segment]:
    rules = await Segment.filter(sandbox_id=sandbox_id, kind=SegmentKind.RULE).using_db(using_db)
    return [s for s in rules if s.id != segment_id and segment_id in referenced_segments(s.definition)]


async def load_segment_refs(sandbox_id: int, ids: set[int], using_db: Any = None) -> dict[int, SegmentRef]:
    """The named segments of this sandbox and, transitively, every segment their rules name."""
    loaded: dict[int, SegmentRef] = {}
    asked: set[int] = set()
    wanted = set(ids)
    while wanted:
        asked |= wanted
        rows = (
            await Segment.filter(sandbox_id=sandbox_id, id__in=sorted(wanted))
            .using_db(using_db)
            .values("id", "kind", "definition")
        )
        loaded.update({row["id"]: SegmentRef(kind=row["kind"], definition=row["definition"]) for row in rows})
        wanted = set()
        for row in rows:
            if row["kind"] == SegmentKind.RULE:
                wanted |= referenced_segments(row["definition"])
        wanted -= asked
    return loaded


async def check_rule(
    sandbox_id: int, segment_id: int | None, rule: Any, field: str, using_db: Any = None
) -> list[FieldProblem]:
    problems = [FieldProblem(p.field, p.code, p.message) for p in validate_rule(rule, field=field)]
    if problems:
        return problems
    refs = await load_segment_refs(sandbox_id, referenced_segments(rule), using_db)
    for path, ref_id in in_segment_fields(rule, field):
        if ref_id not in refs:
            problems.append(FieldProblem(path, "NOT_FOUND", "no segment with this id in this sandbox"))
    if problems:
        return problems
    cycle = find_cycle(segment_id, rule, refs)
    if cycle:
        return [
            FieldProblem(
                field,
                "CYCLE",
                "the rule reaches its own segment through inSegment: " + " → ".join(str(i) for i in cycle),
            )
        ]
    try:
        expanded = expanded_condition_count(rule, refs)
    except RuleCycleError:
        return [FieldProblem(field, "CYCLE", "the rule reaches a cycle of segments through inSegment")]
    if expanded > MAX_EXPANDED_CONDITIONS:
        return [
            FieldProblem(
                field,
                "TOO_COMPLEX",
                f"with the segments it names, the rule holds {expanded} conditions; at most {MAX_EXPANDED_CONDITIONS}",
            )
        ]
    return []


def _check_name(name: str, description: str | None) -> list[FieldProblem]:
    problems = []
    if not name.strip() or len(name) > MAX_NAME_LENGTH or "\x00" in name:
        problems.append(FieldProblem("input.name", "INVALID", f"1 to {MAX_NAME_LENGTH} characters, no NUL"))
    if description is not None and (len(description) > MAX_DESCRIPTION_LENGTH or "\x00" in description):
        problems.append(
            FieldProblem("input.description", "INVALID", f"at most {MAX_DESCRIPTION_LENGTH} characters, no NUL")
        )
    return problems


def _snapshot(segment: Segment) -> dict[str, Any]:
    return {
        "name": segment.name,
        "description": segment.description,
        "kind": segment.kind.value,
        "definition": segment.definition,
    }


async def create_segment(
    sandbox_id: int, *, name: str, description: str, kind: SegmentKind, rule: Any, actor: str
) -> Segment:
    problems = _check_name(name, description)
    if kind is SegmentKind.RULE:
        if rule is None:
            problems.append(FieldProblem("input.rule", "REQUIRED", "a RULE segment needs a rule"))
        else:
            problems.extend(await check_rule(sandbox_id, None, rule, "input.rule"))
    elif rule is not None:
        problems.append(FieldProblem("input.rule", "NOT_ALLOWED", "a STATIC segment has members, not a rule"))
    if problems:
        raise SegmentRefused(problems)
    async with in_transaction() as conn:
        if await Segment.filter(sandbox_id=sandbox_id, name=name).using_db(conn).exists():
            raise SegmentRefused([FieldProblem("input.name", "TAKEN", "another segment has this name")])
        segment = await Segment.create(
            sandbox_id=sandbox_id,
            name=name,
            description=description,
            kind=kind,
            definition=rule if kind is SegmentKind.RULE else None,
            using_db=conn,
        )
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="CREATE",
            object_type="Segment",
            object_id=segment.id,
            after=_snapshot(segment),
            using_db=conn,
        )
    return segment


async def update_segment(
    sandbox_id: int,
    segment_id: int,
    *,
    name: Any = KEEP,
    description: Any = KEEP,
    rule: Any = KEEP,
    actor: str,
) -> Segment:
    async with in_transaction() as conn:
        segment = await Segment.filter(sandbox_id=sandbox_id, id=segment_id).using_db(conn).select_for_update().first()
        if segment is None:
            raise SegmentNotFound(segment_id)
        problems = _check_name(segment.name if name is KEEP else name, None if description is KEEP else description)
        if rule is not KEEP:
            if segment.kind is SegmentKind.STATIC:
                problems.append(FieldProblem("input.rule", "NOT_ALLOWED", "a STATIC segment has members, not a rule"))
            elif rule is None:
                problems.append(FieldProblem("input.rule", "REQUIRED", "a RULE segment needs a rule"))
            else:
                problems.extend(await check_rule(sandbox_id, segment_id, rule, "input.rule", conn))
        if (
            name is not KEEP
            and name != segment.name
            and not problems
            and await Segment.filter(sandbox_id=sandbox_id, name=name).using_db(conn).exists()
        ):
            problems.append(FieldProblem("input.name", "TAKEN", "another segment has this name"))
        if problems:
            raise SegmentRefused(problems)
        before = _snapshot(segment)
        if name is not KEEP:
            segment.name = name
        if description is not KEEP:
            segment.description = description
        if rule is not KEEP:
            segment.definition = rule
        after = _snapshot(segment)
        if after != before:
            await segment.save(using_db=conn)
            await record_audit(
                sandbox_id=sandbox_id,
                actor=actor,
                action="UPDATE",
                object_type="Segment",
                object_id=segment.id,
                before=before,
                after=after,
                using_db=conn,
            )
    return segment


async def delete_segment(sandbox_id: int, segment_id: int, *, actor: str) -> None:
    async with in_transaction() as conn:
        segment = await Segment.filter(sandbox_id=sandbox_id, id=segment_id).using_db(conn).select_for_update().first()
        if segment is None:
            raise SegmentNotFound(segment_id)
        users = await segment_in_use(segment_id, conn)
        users += [f"segment {s.name!r}" for s in await segments_referencing(sandbox_id, segment_id, conn)]
        if users:
            raise SegmentInUse(users)
        before = _snapshot(segment)
        await detach_drafts(segment_id=segment_id, using_db=conn)
        await SegmentMember.filter(segment_id=segment_id).using_db(conn).delete()
        await segment.delete(using_db=conn)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="DELETE",
            object_type="Segment",
            object_id=segment_id,
            before=before,
            using_db=conn,
        )


@dataclass(slots=True)
class MemberChange:
    changed: int  # members added or removed
    matched: int  # identities that named a profile
    unmatched: list[FieldProblem]  # identities that named no profile, or were refused


async def change_members(
    sandbox_id: int, segment_id: int, identities: Sequence[IdentityValue], *, add: bool, actor: str
) -> MemberChange:
    """Add (or remove) the profiles named by these identities to (from) a STATIC segment."""
    if not 1 <= len(identities) <= MAX_MEMBER_CHANGES:
        raise SegmentRefused([FieldProblem("input.identities", "COUNT", f"give 1 to {MAX_MEMBER_CHANGES} identities")])
    namespaces = await namespaces_by_code(sandbox_id)
    unmatched: list[FieldProblem] = []
    profile_ids: set[int] = set()
    for i, identity in enumerate(identities):
        pairs, problems = prepare_identities([identity], namespaces, "input.identities")
        if problems:
            unmatched.extend(
                FieldProblem(p.field.replace("input.identities[0]", f"input.identities[{i}]"), p.code, p.message)
                for p in problems
            )
            continue
        ((namespace_id, value),) = pairs
        found = await ProfileIdentity.filter(sandbox_id=sandbox_id, namespace_id=namespace_id, value=value).values_list(
            "profile_id", flat=True
        )
        if not found:
            unmatched.append(FieldProblem(f"input.identities[{i}]", "NO_PROFILE", "no profile has this identity"))
        profile_ids.update(found)
    async with in_transaction() as conn:
        segment = await Segment.filter(sandbox_id=sandbox_id, id=segment_id).using_db(conn).select_for_update().first()
        if segment is None:
            raise SegmentNotFound(segment_id)
        if segment.kind is not SegmentKind.STATIC:
            raise SegmentRefused(
                [FieldProblem("input.segmentId", "NOT_STATIC", "members can be listed only in a STATIC segment")]
            )
        existing = set(
            await SegmentMember.filter(segment_id=segment_id, profile_id__in=list(profile_ids))
            .using_db(conn)
            .values_list("profile_id", flat=True)
        )
        if add:
            new = sorted(profile_ids - existing)
            await SegmentMember.bulk_create(
                [SegmentMember(segment_id=segment_id, profile_id=pid) for pid in new], using_db=conn
            )
            changed = len(new)
        else:
            changed = (
                await SegmentMember.filter(segment_id=segment_id, profile_id__in=list(existing)).using_db(conn).delete()
                if existing
                else 0
            )
        if changed:
            await record_audit(
                sandbox_id=sandbox_id,
                actor=actor,
                action="MEMBERS_ADD" if add else "MEMBERS_REMOVE",
                object_type="Segment",
                object_id=segment_id,
                after={"profiles": changed},
                using_db=conn,
            )
    return MemberChange(changed=changed, matched=len(profile_ids), unmatched=unmatched)


# ---------------------------------------------------------------------------------------------------------
# SQL over the profiles of a segment


async def segment_predicate(
    segment: Segment, params: SqlParams, *, now: datetime, profile: str = "p", using_db: Any = None
) -> str:
    """One SQL boolean expression: the profile aliased `profile` is a member of `segment`."""
    refs = await load_segment_refs(segment.sandbox_id, {segment.id}, using_db)
    tree = {"inSegment": segment.id}
    return compile_rule(tree, params=params, now=now, segments=refs, profile=profile)


@dataclass(frozen=True, slots=True)
class Estimate:
    qualified: int
    with_identity: int
    contactable: int


async def estimate_segment(
    segment: Segment,
    namespace: IdentityNamespace,
    channel: ContactChannel,
    *,
    now: datetime | None = None,
    using_db: Any = None,
) -> Estimate:
    """Members now; those with an identity in `namespace`; those reachable on `channel`: with an address,
    consent not `n`, address not suppressed. One SQL statement."""
    now = now or datetime.now(UTC)
    params = SqlParams(dialect_of())
    consent = f"p.{CONSENT_COLUMNS[channel]} <> 'n'"  # column names come from a fixed mapping
    ns = params.add(namespace.id)
    with_identity = f"EXISTS (SELECT 1 FROM profile_identity i WHERE i.profile_id = p.id AND i.namespace_id = {ns})"
    if ADDRESS_NAMESPACE_TYPE[channel] == namespace.type:
        ns2, sb, ch = params.add(namespace.id), params.add(segment.sandbox_id), params.add(channel.value)
        contactable = (
            f"{consent} AND EXISTS (SELECT 1 FROM profile_identity i WHERE i.profile_id = p.id "
            f"AND i.namespace_id = {ns2} AND NOT EXISTS (SELECT 1 FROM suppression_entry s "
            f"WHERE s.sandbox_id = {sb} AND s.channel = {ch} AND s.address = i.value))"
        )
    elif channel in ADDRESS_ATTRIBUTE:
        # Placeholders are added in the order they appear in the text (SQLite's `?` are positional).
        path = ADDRESS_ATTRIBUTE[channel]
        ns2 = params.add(namespace.id)
        present = attribute_text(path, params, "p")
        false = "FALSE" if params.dialect is Dialect.POSTGRES else "0"
        sb, ch = params.add(segment.sandbox_id), params.add(channel.value)
        address = attribute_text(path, params, "p")
        if channel is ContactChannel.EMAIL:
            address = f"lower({address})"
        contactable = (
            f"{consent} AND EXISTS (SELECT 1 FROM profile_identity i WHERE i.profile_id = p.id "
            f"AND i.namespace_id = {ns2}) AND COALESCE({present} <> '', {false}) "
            f"AND NOT EXISTS (SELECT 1 FROM suppression_entry s WHERE s.sandbox_id = {sb} "
            f"AND s.channel = {ch} AND s.address = {address})"
        )
    else:
        contactable = "(1 = 0)"
    sandbox = params.add(segment.sandbox_id)
    predicate = await segment_predicate(segment, params, now=now, using_db=using_db)
    sql = (
        f"SELECT COUNT(*) AS qualified, "
        f"COALESCE(SUM(CASE WHEN {with_identity} THEN 1 ELSE 0 END), 0) AS with_identity, "
        f"COALESCE(SUM(CASE WHEN {contactable} THEN 1 ELSE 0 END), 0) AS contactable "
        f"FROM profile p WHERE p.sandbox_id = {sandbox} AND {predicate}"
    )
    (row,) = await (using_db or connections.get("default")).execute_query_dict(sql, params.values)
    return Estimate(int(row["qualified"]), int(row["with_identity"]), int(row["contactable"]))
