"""Campaign domain actions: authoring, review, activation, stop, archive. One transaction each, audited.

Every status change goes through `campaign_rules.check_transition` and a compare-and-set on (status,
version), plus a row lock on PostgreSQL, so two concurrent activations produce one activation and one run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models import outbox
from models.audience import ContactChannel, Segment
from models.audit import record_audit
from models.campaign import Campaign, CampaignRun, RunStatus, tags_search_text
from models.campaign_rules import (
    CampaignAction,
    CampaignStatus,
    Category,
    Channel,
    InvalidTransition,
    check_transition,
    is_editable,
)
from models.identity import IdentityNamespace
from models.outbox.payloads import CampaignStatusChanged
from models.preset import MessagePreset
from models.review import Alert, Plan, can_activate, plan, review
from models.review_snapshot import (
    AudienceEstimate,
    AudienceFacts,
    CampaignSnapshot,
    Content,
    EmailContent,
    InAppButton,
    InAppContent,
    PresetFacts,
    PushContent,
    SmsContent,
)
from models.schedule import Schedule, validate_schedule
from models.segments import estimate_segment

OBJECT_TYPE = "Campaign"
MAX_NAME = 200
MAX_TEXT = 500_000  # per content field; the review warns far below (EMAIL_TOO_LARGE at 100 KB)
MAX_TAGS = 20
MAX_TAG = 50
TIME_OF_DAY_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

CONTACT_CHANNEL = {
    Channel.EMAIL: ContactChannel.EMAIL,
    Channel.SMS: ContactChannel.SMS,
    Channel.PUSH: ContactChannel.PUSH,
}


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    code: str
    message: str


class CampaignError(Exception):
    """Base of the expected refusals the GraphQL layer maps to union members."""


class CampaignNotFoundError(CampaignError):
    def __init__(self, field: str, given: Any) -> None:
        self.field = field
        self.given = given
        super().__init__(f"`{field}`: nothing with id {given!r} in this sandbox")


class CampaignInvalidInputError(CampaignError):
    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


class CampaignConflictError(CampaignError):
    def __init__(self, current_version: int) -> None:
        self.current_version = current_version
        super().__init__(f"the campaign changed since it was read (current version {current_version})")


class CampaignStateError(CampaignError):
    def __init__(self, transition: InvalidTransition) -> None:
        self.current = transition.current
        self.allowed_actions = transition.allowed_actions
        super().__init__(str(transition))


class ReviewFailedError(CampaignError):
    def __init__(self, alerts: list[Alert]) -> None:
        self.alerts = alerts
        super().__init__(f"{sum(1 for a in alerts if a.severity.value == 'ERROR')} review error(s)")


# ---- validation of stored values (shape only: the review judges readiness) ----------------------------------


def _text_problems(value: Any, field: str, *, limit: int = MAX_TEXT, required: bool = False) -> list[FieldProblem]:
    if value is None:
        return [FieldProblem(field, "REQUIRED", "is required")] if required else []
    if not isinstance(value, str):
        return [FieldProblem(field, "INVALID", "must be text")]
    if "\x00" in value:
        return [FieldProblem(field, "INVALID_CHARACTER", "must not contain NUL characters")]
    if len(value) > limit:
        return [FieldProblem(field, "TOO_LONG", f"at most {limit} characters")]
    if required and not value.strip():
        return [FieldProblem(field, "REQUIRED", "must not be blank")]
    return []


def validate_values(values: Mapping[str, Any]) -> list[FieldProblem]:
    """Checks the shape of campaign column values (as stored) before anything is written."""
    problems: list[FieldProblem] = []
    if "name" in values:
        problems += _text_problems(values["name"], "input.name", limit=MAX_NAME, required=True)
    if "description" in values:
        problems += _text_problems(values["description"], "input.description", limit=10_000)
    if "tags" in values:
        tags = values["tags"]
        if len(tags) > MAX_TAGS:
            problems.append(FieldProblem("input.tags", "TOO_MANY", f"at most {MAX_TAGS} tags"))
        for i, tag in enumerate(tags):
            tag_problems = _text_problems(tag, f"input.tags.{i}", limit=MAX_TAG, required=True)
            if not tag_problems and "|" in tag:
                # "|" separates tags in `tags_search`: a tag "a|b" would match filters on "a" and "b".
                tag_problems = [FieldProblem(f"input.tags.{i}", "INVALID_CHARACTER", "must not contain |")]
            problems += tag_problems
    if "throttle_per_second" in values and values["throttle_per_second"] is not None:
        if not -(2**31) < values["throttle_per_second"] < 2**31:
            problems.append(FieldProblem("input.throttle", "OUT_OF_RANGE", "must be between 1 and 2000"))
    for channel_key, parts in (values.get("content") or {}).items():
        for part, value in (parts or {}).items():
            if part == "buttons":
                if len(value) > 3:
                    problems.append(FieldProblem("input.content.inApp.buttons", "TOO_MANY", "at most 3 buttons"))
                for i, button in enumerate(value):
                    problems += _text_problems(button.get("label"), f"input.content.inApp.buttons.{i}.label", limit=200)
                    problems += _text_problems(button.get("url"), f"input.content.inApp.buttons.{i}.url", limit=2000)
            elif part == "customData":
                for key, item in (value or {}).items():
                    problems += _text_problems(key, f"input.content.push.customData.{key}", limit=200)
                    problems += _text_problems(item, f"input.content.push.customData.{key}", limit=4000)
            else:
                problems += _text_problems(value, f"input.content.{channel_key}.{part}")
    if values.get("schedule"):
        problems += _schedule_problems(values["schedule"])
    return problems


def _schedule_problems(stored: Mapping[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    time_of_day = stored.get("timeOfDay")
    if time_of_day is not None and not (isinstance(time_of_day, str) and TIME_OF_DAY_RE.match(time_of_day)):
        problems.append(FieldProblem("input.schedule.timeOfDay", "INVALID", "must be HH:MM (24 h)"))
    for day in stored.get("daysOfMonth") or []:
        if not 1 <= day <= 31:
            problems.append(FieldProblem("input.schedule.daysOfMonth", "OUT_OF_RANGE", "days are 1 to 31"))
            break
    if not problems:
        for problem in validate_schedule(schedule_from_stored(stored)):
            if problem.code.value in ("TIMEZONE_INVALID", "NAIVE_DATETIME"):
                problems.append(FieldProblem(f"input.schedule.{problem.field}", problem.code.value, problem.message))
    return problems


def schedule_from_stored(stored: Mapping[str, Any]) -> Schedule:
    def when(key: str) -> datetime | None:
        value = stored.get(key)
        return datetime.fromisoformat(value) if value else None

    time_of_day = stored.get("timeOfDay")
    return Schedule(
        frequency=stored.get("frequency") or "ONCE",
        start_at=when("startAt"),
        end_at=when("endAt"),
        time_of_day=time.fromisoformat(time_of_day) if time_of_day and TIME_OF_DAY_RE.match(time_of_day) else None,
        days_of_week=tuple(stored.get("daysOfWeek") or ()),
        days_of_month=tuple(stored.get("daysOfMonth") or ()),
        timezone=stored.get("timeZone") or "UTC",
    )


# ---- references -------------------------------------------------------------------------------------------


async def resolve_references(
    sandbox_id: int, values: dict[str, Any], conn: BaseDBAsyncClient | None = None
) -> dict[str, Any]:
    """Turns `preset_id`, `segment_id` and `namespace_code` into checked foreign keys of this sandbox."""
    resolved = dict(values)
    if resolved.get("preset_id") is not None:
        preset_id = resolved["preset_id"]
        if not await MessagePreset.filter(id=preset_id, sandbox_id=sandbox_id).using_db(conn).exists():
            raise CampaignNotFoundError("input.action.presetId", preset_id)
    if resolved.get("segment_id") is not None:
        segment_id = resolved["segment_id"]
        if not await Segment.filter(id=segment_id, sandbox_id=sandbox_id).using_db(conn).exists():
            raise CampaignNotFoundError("input.audience.segmentId", segment_id)
    if "namespace_code" in resolved:
        code = resolved.pop("namespace_code")
        if code is None:
            resolved["namespace_id"] = None
        else:
            namespace = await IdentityNamespace.get_or_none(sandbox_id=sandbox_id, code=code).using_db(conn)
            if namespace is None:
                raise CampaignNotFoundError("input.audience.namespaceCode", code)
            resolved["namespace_id"] = namespace.id
    return resolved


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
        "tags": row.tags,
    }


# ---- authoring --------------------------------------------------------------------------------------------


async def create_campaign(sandbox_id: int, values: dict[str, Any], *, actor: str) -> Campaign:
    problems = validate_values(values)
    if problems:
        raise CampaignInvalidInputError(problems)
    async with in_transaction() as conn:
        resolved = await resolve_references(sandbox_id, values, conn)
        row = await Campaign.create(
            sandbox_id=sandbox_id, tags_search=tags_search_text(resolved.get("tags") or []), using_db=conn, **resolved
        )
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="CREATE",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            after=public_state(row),
            using_db=conn,
        )
        await _emit_status(conn, row, None, actor)
    outbox.committed()
    return row


async def _locked(conn: BaseDBAsyncClient, sandbox_id: int, campaign_id: int) -> Campaign:
    row = await Campaign.filter(id=campaign_id, sandbox_id=sandbox_id).select_for_update().using_db(conn).first()
    if row is None:
        raise CampaignNotFoundError("input.id", campaign_id)
    return row


async def _save(conn: BaseDBAsyncClient, row: Campaign, changes: dict[str, Any]) -> Campaign:
    """Compare-and-set on the version read: SQLite has no row locks, so this is what serialises writers."""
    changes = {**changes, "version": row.version + 1, "updated_at": datetime.now(UTC)}
    if "tags" in changes:
        changes["tags_search"] = tags_search_text(changes["tags"])
    updated = await Campaign.filter(id=row.id, version=row.version, status=row.status).using_db(conn).update(**changes)
    if updated != 1:
        fresh = await Campaign.get(id=row.id).using_db(conn)
        raise CampaignConflictError(fresh.version)
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def _allowed(row: Campaign, action: CampaignAction, **conditions: Any) -> CampaignStatus:
    """The status `action` leads to from the row's status, or CampaignStateError (with the allowed actions)."""
    try:
        return check_transition(row.status, action, **conditions)
    except InvalidTransition as exc:
        raise CampaignStateError(exc) from None


async def _audit_transition(
    conn: BaseDBAsyncClient, row: Campaign, action: str, before: dict[str, Any], *, actor: str, **extra: Any
) -> None:
    await record_audit(
        sandbox_id=row.sandbox_id,
        actor=actor,
        action=action,
        object_type=OBJECT_TYPE,
        object_id=row.id,
        before=before,
        after={**public_state(row), **extra},
        using_db=conn,
    )


async def _emit_status(conn: BaseDBAsyncClient, row: Campaign, previous: CampaignStatus | None, actor: str) -> None:
    """The status event, in the transaction of the change (the outbox relay publishes it after commit)."""
    change = CampaignStatusChanged(
        campaign_id=row.id,
        status=CampaignStatus(row.status),
        previous_status=previous,
        version=row.version,
        at=row.updated_at or datetime.now(UTC),
        actor=actor,
    )
    await outbox.emit(change, sandbox_id=row.sandbox_id, conn=conn)


async def update_campaign(
    sandbox_id: int, campaign_id: int, version: int, values: dict[str, Any], *, actor: str
) -> Campaign:
    problems = validate_values(values)
    if problems:
        raise CampaignInvalidInputError(problems)
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, campaign_id)
        if row.version != version:
            raise CampaignConflictError(row.version)
        if not all(is_editable(row.status, name) for name in values):
            _allowed(row, CampaignAction.EDIT)
        resolved = await resolve_references(sandbox_id, values, conn)
        if "content" in resolved:
            # Content patches replace the channels they name; null clears all content.
            resolved["content"] = (
                {**(row.content or {}), **resolved["content"]} if resolved["content"] is not None else {}
            )
        before = public_state(row)
        await _save(conn, row, resolved)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="UPDATE",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before=before,
            after=public_state(row),
            using_db=conn,
        )
    return row


async def update_tags(
    sandbox_id: int, campaign_id: int, *, tags: list[str] | None, description: str | None, actor: str
) -> Campaign:
    values: dict[str, Any] = {}
    if tags is not None:
        values["tags"] = tags
    if description is not None:
        values["description"] = description
    problems = validate_values(values)
    if problems:
        raise CampaignInvalidInputError(problems)
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, campaign_id)
        before = public_state(row)
        await _save(conn, row, values)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="UPDATE",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before=before,
            after=public_state(row),
            using_db=conn,
        )
    return row


async def delete_campaign(sandbox_id: int, campaign_id: int, *, actor: str) -> Campaign:
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, campaign_id)
        _allowed(row, CampaignAction.DELETE)
        deleted = await Campaign.filter(id=row.id, status=CampaignStatus.DRAFT).using_db(conn).delete()
        if deleted != 1:
            raise CampaignConflictError(row.version)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="DELETE",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before=public_state(row),
            using_db=conn,
        )
    return row


COPIED_FIELDS = (
    "description",
    "tags",
    "tags_search",
    "type",
    "category",
    "channel",
    "preset_id",
    "content",
    "tracking",
    "segment_id",
    "namespace_id",
    "schedule",
    "throttle_per_second",
)


async def duplicate_campaign(sandbox_id: int, campaign_id: int, *, name: str | None, actor: str) -> Campaign:
    source = await Campaign.get_or_none(id=campaign_id, sandbox_id=sandbox_id)
    if source is None:
        raise CampaignNotFoundError("input.id", campaign_id)
    new_name = name if name is not None else f"{source.name} (copy)"[:MAX_NAME]
    problems = validate_values({"name": new_name})
    if problems:
        raise CampaignInvalidInputError(problems)
    async with in_transaction() as conn:
        row = await Campaign.create(
            sandbox_id=sandbox_id,
            name=new_name,
            using_db=conn,
            **{field: getattr(source, field) for field in COPIED_FIELDS},
        )
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="DUPLICATE",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before={"sourceId": source.id},
            after=public_state(row),
            using_db=conn,
        )
    return row


# ---- review -----------------------------------------------------------------------------------------------


def content_from_stored(stored: Mapping[str, Any]) -> Content:
    email, sms, push, in_app = (stored.get(k) for k in ("email", "sms", "push", "inApp"))
    return Content(
        email=EmailContent(**{k: (email.get(k) or "") for k in ("subject", "preheader", "html", "text")})
        if email
        else None,
        sms=SmsContent(text=sms.get("text") or "") if sms else None,
        push=PushContent(
            title=push.get("title") or "",
            body=push.get("body") or "",
            deep_link=push.get("deepLink") or "",
            data=tuple(sorted((push.get("customData") or {}).items())),
        )
        if push
        else None,
        in_app=InAppContent(
            title=in_app.get("title") or "",
            body=in_app.get("body") or "",
            buttons=tuple(
                InAppButton(label=b.get("label") or "", url=b.get("url") or "") for b in in_app.get("buttons") or []
            ),
        )
        if in_app
        else None,
    )


def _referenced_profile_paths(snapshot: CampaignSnapshot) -> list[str]:
    from models.review import template_fields
    from models.templates import CompiledTemplate, parse_template, profile_paths

    found: list[str] = []
    for field_path, source in template_fields(snapshot):
        compiled = parse_template(source or "", field_path)
        if not isinstance(compiled, CompiledTemplate):
            continue
        for path in profile_paths(compiled):
            keys = [s for s in path.segments if isinstance(s, str)]
            if len(keys) > 1 and keys[-1] in ("size", "first", "last"):
                keys = keys[:-1]
            dotted = ".".join(keys)
            if keys and dotted not in found:
                found.append(dotted)
    return found[:20]


async def _paths_seen(segment: Segment, paths: list[str], now: datetime, conn: BaseDBAsyncClient) -> frozenset[str]:
    """Which of `paths` at least one member of the segment has; one SQL statement."""
    from models.profiles import dialect_of
    from models.segment_rules import SqlParams, compile_rule, validate_rule
    from models.segments import segment_predicate

    paths = [p for p in paths if not validate_rule({"condition": {"path": p, "operator": "EXISTS"}})]
    if not paths:
        return frozenset()
    params = SqlParams(dialect_of())
    columns = [
        f"COALESCE(SUM(CASE WHEN {compile_rule({'condition': {'path': p, 'operator': 'EXISTS'}}, params=params, now=now, segments={})} THEN 1 ELSE 0 END), 0) AS c{i}"  # noqa: E501
        for i, p in enumerate(paths)
    ]
    sandbox = params.add(segment.sandbox_id)
    predicate = await segment_predicate(segment, params, now=now, using_db=conn)
    sql = f"SELECT {', '.join(columns)} FROM profile p WHERE p.sandbox_id = {sandbox} AND {predicate}"
    (row,) = await conn.execute_query_dict(sql, params.values)
    return frozenset(p for i, p in enumerate(paths) if int(row[f"c{i}"]) > 0)


async def build_snapshot(row: Campaign, *, now: datetime, conn: BaseDBAsyncClient) -> CampaignSnapshot:
    """Everything the review judges, read in `conn` (the caller's transaction when activating)."""
    preset_facts = None
    if row.preset_id is not None:
        preset = await MessagePreset.get_or_none(id=row.preset_id, sandbox_id=row.sandbox_id).using_db(conn)
        preset_facts = (
            PresetFacts(
                exists=True,
                status=preset.status.value,
                channel=Channel(preset.channel.value),
                category=Category(preset.category.value),
            )
            if preset
            else PresetFacts(exists=False)
        )
    segment = (
        await Segment.get_or_none(id=row.segment_id, sandbox_id=row.sandbox_id).using_db(conn)
        if row.segment_id is not None
        else None
    )
    namespace = (
        await IdentityNamespace.get_or_none(id=row.namespace_id, sandbox_id=row.sandbox_id).using_db(conn)
        if row.namespace_id is not None
        else None
    )
    snapshot = CampaignSnapshot(
        name=row.name,
        status=row.status,
        version=row.version,
        type=row.type,
        category=row.category,
        channel=row.channel,
        preset=preset_facts,
        content=content_from_stored(row.content or {}),
        audience=AudienceFacts(
            segment_id=str(row.segment_id) if row.segment_id is not None else None,
            segment_exists=segment is not None,
            namespace_code=namespace.code if namespace else None,
            namespace_exists=namespace is not None,
        ),
        schedule=schedule_from_stored(row.schedule or {}),
        throttle=row.throttle_per_second,
        activated_at=row.activated_at,
    )
    if segment is None or namespace is None or row.channel is None:
        return snapshot
    estimate = await _estimate(segment, namespace, row.channel, now, conn)
    seen = await _paths_seen(segment, _referenced_profile_paths(snapshot), now, conn)
    return CampaignSnapshot(
        **{
            **snapshot.__dict__,
            "audience": AudienceFacts(
                **{**snapshot.audience.__dict__, "estimate": estimate, "profile_paths_seen": seen}
            ),
        }
    )


async def _estimate(
    segment: Segment, namespace: IdentityNamespace, channel: Channel, now: datetime, conn: BaseDBAsyncClient
) -> AudienceEstimate:
    # In-app messages go to an inbox keyed by identity: everyone with the identity is reachable.
    contact = CONTACT_CHANNEL.get(Channel(channel), ContactChannel.EMAIL)
    counts = await estimate_segment(segment, namespace, contact, now=now, using_db=conn)
    contactable = counts.with_identity if Channel(channel) is Channel.IN_APP else counts.contactable
    excluded = (
        ("NO_IDENTITY", counts.qualified - counts.with_identity),
        ("NOT_CONTACTABLE", counts.with_identity - contactable),
    )
    return AudienceEstimate(
        qualified=counts.qualified,
        with_identity=counts.with_identity,
        contactable=contactable,
        excluded_by_reason=tuple((code, n) for code, n in excluded if n),
    )


@dataclass(frozen=True)
class ReviewResult:
    alerts: list[Alert]
    plan: Plan

    @property
    def can_activate(self) -> bool:
        return can_activate(self.alerts)


async def review_campaign(sandbox_id: int, campaign_id: int, *, now: datetime | None = None) -> ReviewResult:
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await Campaign.get_or_none(id=campaign_id, sandbox_id=sandbox_id).using_db(conn)
        if row is None:
            raise CampaignNotFoundError("id", campaign_id)
        snapshot = await build_snapshot(row, now=now, conn=conn)
    return ReviewResult(alerts=review(snapshot, now), plan=plan(snapshot, now))


# ---- lifecycle --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    campaign: Campaign
    run: CampaignRun | None  # the immediate run, to enqueue after commit
    previous_status: CampaignStatus


async def activate_campaign(
    sandbox_id: int, campaign_id: int, *, actor: str, now: datetime | None = None
) -> Activation:
    """Review under the row lock, then DRAFT → LIVE (and a run now) or SCHEDULED (the dispatcher runs it)."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, campaign_id)
        schedule = schedule_from_stored(row.schedule or {})
        starts_later = schedule.start_at is not None and schedule.start_at > now
        target = _allowed(row, CampaignAction.ACTIVATE, starts_later=starts_later)
        alerts = review(await build_snapshot(row, now=now, conn=conn), now)
        if not can_activate(alerts):
            raise ReviewFailedError(alerts)
        before = public_state(row)
        await _save(conn, row, {"status": target, "activated_at": now, "activated_by": actor})
        run = None
        if target is CampaignStatus.LIVE and row.type.value == "SCHEDULED":
            run = await CampaignRun.create(
                sandbox_id=sandbox_id, campaign_id=row.id, scheduled_for=schedule.start_at or now, using_db=conn
            )
        await _audit_transition(conn, row, "ACTIVATE", before, actor=actor)
        await _emit_status(conn, row, CampaignStatus(before["status"]), actor)
    outbox.committed()
    return Activation(campaign=row, run=run, previous_status=CampaignStatus(before["status"]))


async def stop_campaign(
    sandbox_id: int, campaign_id: int, *, abort_running: bool, actor: str, now: datetime | None = None
) -> Campaign:
    """LIVE/SCHEDULED → STOPPED: pending runs are cancelled; a running one finishes unless aborted."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, campaign_id)
        _allowed(row, CampaignAction.STOP)
        before = public_state(row)
        await _save(conn, row, {"status": CampaignStatus.STOPPED, "stopped_at": now, "stopped_by": actor})
        cancelled = [RunStatus.PENDING, RunStatus.RUNNING] if abort_running else [RunStatus.PENDING]
        await (
            CampaignRun.filter(campaign_id=row.id, status__in=cancelled)
            .using_db(conn)
            .update(status=RunStatus.CANCELLED, finished_at=now)
        )
        await _audit_transition(conn, row, "STOP", before, actor=actor, abortRunning=abort_running)
        await _emit_status(conn, row, CampaignStatus(before["status"]), actor)
    outbox.committed()
    return row


async def archive_campaign(sandbox_id: int, campaign_id: int, *, actor: str) -> Campaign:
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, campaign_id)
        target = _allowed(row, CampaignAction.ARCHIVE)
        before = public_state(row)
        await _save(conn, row, {"status": target})
        await _audit_transition(conn, row, "ARCHIVE", before, actor=actor)
        await _emit_status(conn, row, CampaignStatus(before["status"]), actor)
    outbox.committed()
    return row
