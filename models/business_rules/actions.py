"""ADMIN actions on business rule sets, each with its audit event in the same transaction. At most one rule set
per sandbox is the MARKETING default: marking one clears the others, under a lock on the sandbox row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import available_timezones

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models.business_rules.model import BusinessRuleSet
from models.business_rules.rules import check_rule_set
from models.campaigns.campaign import Campaign
from models.campaigns.rules import Category, Channel
from models.tenancy.audit import record_audit
from models.tenancy.sandbox import Sandbox

OBJECT_TYPE = "BusinessRuleSet"
MAX_NAME = 200


class RuleSetInputError(Exception):
    def __init__(self, errors: list[tuple[str, str, str]]) -> None:  # (field, code, message)
        super().__init__("; ".join(m for _, _, m in errors))
        self.errors = errors


class RuleSetNotFoundError(Exception):
    pass


class RuleSetConflictError(Exception):
    def __init__(self, current_version: int) -> None:
        super().__init__(f"the rule set changed since it was read (current version {current_version})")
        self.current_version = current_version


@dataclass(frozen=True)
class RuleSetChange:
    """Absent (None) fields stay as they are on update."""

    name: str | None = None
    description: str | None = None
    caps: Sequence[Mapping[str, Any]] | None = None
    quiet_hours: Sequence[Mapping[str, Any]] | None = None
    default_time_zone: str | None = None
    is_default: bool | None = None


def _check(change: RuleSetChange) -> None:
    errors: list[tuple[str, str, str]] = []
    if change.name is not None and not change.name.strip():
        errors.append(("input.name", "REQUIRED", "The name must not be blank."))
    if change.name is not None and len(change.name) > MAX_NAME:
        errors.append(("input.name", "TOO_LONG", f"At most {MAX_NAME} characters."))
    if change.default_time_zone and change.default_time_zone not in available_timezones():
        errors.append(("input.defaultTimeZone", "UNKNOWN_TIME_ZONE", "Give an IANA time zone, e.g. Europe/Paris."))
    errors += check_rule_set(
        change.caps or [], change.quiet_hours or [], [c.value for c in Channel], [c.value for c in Category]
    )
    if errors:
        raise RuleSetInputError(errors)


def view(row: BusinessRuleSet) -> dict[str, Any]:
    """The audited state of a rule set."""
    return {
        "name": row.name,
        "description": row.description,
        "rules": row.rules,
        "defaultTimeZone": row.default_time_zone,
        "isDefault": row.is_default,
        "version": row.version,
    }


def _stored_rules(change: RuleSetChange, current: Mapping[str, Any]) -> dict[str, Any]:
    caps = current.get("caps", []) if change.caps is None else [_cap(c) for c in change.caps]
    quiet = current.get("quietHours", []) if change.quiet_hours is None else [_quiet(q) for q in change.quiet_hours]
    return {"caps": caps, "quietHours": quiet}


def _cap(cap: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("channel", "category", "limit", "period", "hours")
    return {key: cap.get(key) for key in keys}


def _quiet(quiet: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "channel": quiet["channel"],
        "weekdays": sorted(set(quiet["weekdays"]), key=_WEEK_ORDER.index),
        "from": quiet["from"],
        "until": quiet["until"],
        "action": quiet["action"],
    }


_WEEK_ORDER = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]


async def _name_taken(conn: BaseDBAsyncClient, sandbox_id: int, name: str, own_id: int | None) -> bool:
    query = BusinessRuleSet.filter(sandbox_id=sandbox_id, name=name).using_db(conn)
    if own_id is not None:
        query = query.exclude(id=own_id)
    return await query.exists()


async def _lock_sandbox(conn: BaseDBAsyncClient, sandbox_id: int) -> None:
    """Serialises the rule-set writers of one sandbox (the one default, unique names); SQLite has one writer."""
    await Sandbox.filter(id=sandbox_id).select_for_update().using_db(conn).first()


async def _clear_other_defaults(conn: BaseDBAsyncClient, sandbox_id: int, own_id: int) -> None:
    await (
        BusinessRuleSet.filter(sandbox_id=sandbox_id, is_default=True)
        .exclude(id=own_id)
        .using_db(conn)
        .update(is_default=False)
    )


async def create_rule_set(*, sandbox_id: int, actor: str, change: RuleSetChange) -> BusinessRuleSet:
    if change.name is None:
        raise RuleSetInputError([("input.name", "REQUIRED", "A name is required.")])
    _check(change)
    async with in_transaction() as conn:
        await _lock_sandbox(conn, sandbox_id)
        if await _name_taken(conn, sandbox_id, change.name, None):
            raise RuleSetInputError([("input.name", "NAME_TAKEN", "Another rule set has this name.")])
        row = await BusinessRuleSet.create(
            sandbox_id=sandbox_id,
            name=change.name,
            description=change.description or "",
            rules=_stored_rules(change, {}),
            default_time_zone=change.default_time_zone or "",
            is_default=bool(change.is_default),
            using_db=conn,
        )
        if row.is_default:
            await _clear_other_defaults(conn, sandbox_id, row.id)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="business_rule_set.created",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            after=view(row),
            using_db=conn,
        )
    return row


async def _get(conn: BaseDBAsyncClient, sandbox_id: int, rule_set_id: int) -> BusinessRuleSet:
    row = await BusinessRuleSet.filter(id=rule_set_id, sandbox_id=sandbox_id).using_db(conn).first()
    if row is None:
        raise RuleSetNotFoundError
    return row


async def update_rule_set(
    *, sandbox_id: int, rule_set_id: int, actor: str, version: int | None, change: RuleSetChange
) -> BusinessRuleSet:
    _check(change)
    async with in_transaction() as conn:
        await _lock_sandbox(conn, sandbox_id)
        row = await _get(conn, sandbox_id, rule_set_id)
        if version is not None and version != row.version:
            raise RuleSetConflictError(row.version)
        if change.name is not None and await _name_taken(conn, sandbox_id, change.name, row.id):
            raise RuleSetInputError([("input.name", "NAME_TAKEN", "Another rule set has this name.")])
        before = view(row)
        values: dict[str, Any] = {"rules": _stored_rules(change, row.rules or {}), "version": row.version + 1}
        for attr in ("name", "description", "default_time_zone", "is_default"):
            if getattr(change, attr) is not None:
                values[attr] = getattr(change, attr)
        updated = await BusinessRuleSet.filter(id=row.id, version=row.version).using_db(conn).update(**values)
        if updated != 1:
            raise RuleSetConflictError((await _get(conn, sandbox_id, row.id)).version)
        row = await _get(conn, sandbox_id, row.id)
        if row.is_default:
            await _clear_other_defaults(conn, sandbox_id, row.id)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="business_rule_set.updated",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before=before,
            after=view(row),
            using_db=conn,
        )
    return row


async def delete_rule_set(*, sandbox_id: int, rule_set_id: int, actor: str) -> None:
    """Refused while a campaign names it (a campaign's caps never vanish under it)."""
    async with in_transaction() as conn:
        await _lock_sandbox(conn, sandbox_id)
        row = await _get(conn, sandbox_id, rule_set_id)
        users = (
            await Campaign.filter(sandbox_id=sandbox_id, business_rule_set_id=row.id)
            .using_db(conn)
            .order_by("id")
            .limit(10)
            .values_list("name", flat=True)
        )
        if users:
            names = ", ".join(repr(n) for n in users)
            raise RuleSetInputError([("id", "NOT_ALLOWED", f"Campaigns use this rule set: {names}.")])
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="business_rule_set.deleted",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before=view(row),
            using_db=conn,
        )
        await row.delete(using_db=conn)


async def rule_set_for(campaign: Campaign, conn: BaseDBAsyncClient | None = None) -> BusinessRuleSet | None:
    """The rule set a campaign's sends follow: its own, else the sandbox's default for MARKETING; none for
    TRANSACTIONAL campaigns (exempt)."""
    if campaign.category == Category.TRANSACTIONAL:
        return None
    rule_set_id = getattr(campaign, "business_rule_set_id", None)
    if rule_set_id is not None:
        return await BusinessRuleSet.get_or_none(id=rule_set_id, sandbox_id=campaign.sandbox_id).using_db(conn)
    return await BusinessRuleSet.filter(sandbox_id=campaign.sandbox_id, is_default=True).using_db(conn).first()
