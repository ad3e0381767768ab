"""Campaign domain actions: authoring, activation, stop, archive. One transaction each, audited.
(Stored values and errors: values.py; the review of a stored campaign: reviewing.py.)

Every status change goes through `transitions.transition_campaign` (the rule, a compare-and-set on (status,
version), the audit row and the outbox row) under a row lock on PostgreSQL, so two concurrent activations
produce one activation and one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models import outbox
from models.approvals.policies import ApprovalRequiredError, campaign_facts, matching_policies
from models.audience.entities import Segment
from models.business_rules.model import BusinessRuleSet
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus, tags_search_text
from models.campaigns.experiments import experiment_problems, with_key
from models.campaigns.review import can_activate, review
from models.campaigns.review_snapshot import LinkFacts
from models.campaigns.reviewing import build_snapshot
from models.campaigns.row_access import locked_campaign, save_campaign
from models.campaigns.rules import (
    CampaignAction,
    CampaignStatus,
    InvalidTransition,
    check_transition,
    is_editable,
)
from models.campaigns.transitions import cancel_campaign_runs, public_state, transition_campaign
from models.campaigns.values import (
    MAX_NAME,
    OBJECT_TYPE,
    CampaignConflictError,
    CampaignInvalidInputError,
    CampaignNotFoundError,
    CampaignStateError,
    FieldProblem,
    ReviewFailedError,
    merged_waves_problems,
    schedule_from_stored,
    validate_values,
)
from models.campaigns.version_rules import VERSIONED_FIELDS, refused_while_versioned
from models.campaigns.versions import edit_draft, is_versioned, published_version
from models.outbox.payloads import CampaignStatusChanged
from models.presets.preset import MessagePreset
from models.tenancy.audit import record_audit
from models.tenancy.identity import IdentityNamespace

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
    if resolved.get("business_rule_set_id") is not None:
        rule_set_id = resolved["business_rule_set_id"]
        if not await BusinessRuleSet.filter(id=rule_set_id, sandbox_id=sandbox_id).using_db(conn).exists():
            raise CampaignNotFoundError("input.businessRuleSetId", rule_set_id)
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


# Input names of the columns an edit can refuse (the campaign input's field paths).
FIELD_INPUT_NAMES = {
    "preset_id": "action.presetId",
    "channel": "action.channel",
    "segment_id": "audience.segmentId",
    "namespace_id": "audience.namespaceCode",
    "throttle_per_second": "throttle",
}

# ---- authoring --------------------------------------------------------------------------------------------


async def create_campaign(sandbox_id: int, values: dict[str, Any], *, actor: str) -> Campaign:
    problems = validate_values(values) + experiment_problems(values.get("experiment"))
    if problems:
        raise CampaignInvalidInputError(problems)
    if values.get("experiment") is not None:
        values = {**values, "experiment": with_key(values["experiment"], None)}
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


def _allowed(row: Campaign, action: CampaignAction, **conditions: Any) -> CampaignStatus | None:
    """The status `action` leads to from the row's status, or CampaignStateError (with the allowed actions)."""
    try:
        return check_transition(row.status, action, **conditions)
    except InvalidTransition as exc:
        raise CampaignStateError(exc) from None


async def _emit_status(conn: BaseDBAsyncClient, row: Campaign, previous: CampaignStatus | None, actor: str) -> None:
    """A new campaign's first status event, in its creation's transaction (changes: transitions.py)."""
    change = CampaignStatusChanged(
        campaign_id=row.id,
        status=CampaignStatus(row.status),
        previous_status=previous,
        version=row.version,
        at=row.updated_at or datetime.now(UTC),
        actor=actor,
    )
    await outbox.emit(change, sandbox_id=row.sandbox_id, conn=conn)


async def _transition(
    conn: BaseDBAsyncClient,
    row: Campaign,
    action: CampaignAction,
    actor: str,
    now: datetime,
    changes: dict[str, Any],
    **options: Any,
) -> None:
    """The campaign's one transition path; a row changed since it was locked and read is a conflict."""
    if not await transition_campaign(conn, row, action, actor=actor, now=now, changes=changes, **options):
        fresh = await Campaign.get(id=row.id).using_db(conn)
        raise CampaignConflictError(fresh.version)


async def _update_audited(conn: BaseDBAsyncClient, row: Campaign, changes: dict[str, Any], *, actor: str) -> None:
    """An edit that leaves the status as it is: compare-and-set, then its UPDATE audit row, in `conn`."""
    before = public_state(row)
    await save_campaign(conn, row, changes)
    await record_audit(
        sandbox_id=row.sandbox_id,
        actor=actor,
        action="UPDATE",
        object_type=OBJECT_TYPE,
        object_id=row.id,
        before=before,
        after=public_state(row),
        using_db=conn,
    )


async def update_campaign(
    sandbox_id: int, campaign_id: int, version: int, values: dict[str, Any], *, actor: str
) -> Campaign:
    problems = validate_values(values) + experiment_problems(values.get("experiment"))
    if problems:
        raise CampaignInvalidInputError(problems)
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        if row.version != version:
            raise CampaignConflictError(row.version)
        if mixed := merged_waves_problems(values, row.waves, row.schedule):
            raise CampaignInvalidInputError(mixed)
        if is_versioned(row) and not all(is_editable(row.status, name) for name in values):
            await _edit_versioned(conn, row, await resolve_references(sandbox_id, values, conn), actor=actor)
            return row
        if not all(is_editable(row.status, name) for name in values):
            _allowed(row, CampaignAction.EDIT)
        resolved = await resolve_references(sandbox_id, values, conn)
        if "content" in resolved:
            # Content patches replace the channels they name; null clears all content.
            resolved["content"] = (
                {**(row.content or {}), **resolved["content"]} if resolved["content"] is not None else {}
            )
        if "experiment" in resolved:
            resolved["experiment"] = with_key(resolved["experiment"], row.experiment)
        await _update_audited(conn, row, resolved, actor=actor)
    return row


async def _edit_versioned(conn: BaseDBAsyncClient, row: Campaign, values: dict[str, Any], *, actor: str) -> None:
    """An activated recurring or API-triggered campaign: message fields go into its draft version (published
    after review by `campaignVersionPublish`), tags and description onto the row; anything else is refused."""
    if values.get("channel") == (row.channel.value if row.channel else None):
        values = {k: v for k, v in values.items() if k != "channel"}  # the action names its channel again
    refused = refused_while_versioned(values)
    if refused:
        raise CampaignInvalidInputError(
            [
                FieldProblem(
                    f"input.{FIELD_INPUT_NAMES.get(name, name)}",
                    "NOT_VERSIONED",
                    f"cannot change on a {row.status.value} campaign: versions hold content, tracking, the preset and "
                    "the throttle (duplicate the campaign to change the rest)",
                )
                for name in refused
            ]
        )
    versioned = {k: v for k, v in values.items() if k in VERSIONED_FIELDS}
    direct = {k: v for k, v in values.items() if k not in VERSIONED_FIELDS}
    if versioned:
        await edit_draft(conn, row, versioned, actor=actor)
    if direct:
        await _update_audited(conn, row, direct, actor=actor)


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
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        await _update_audited(conn, row, values, actor=actor)
    return row


async def delete_campaign(sandbox_id: int, campaign_id: int, *, actor: str) -> Campaign:
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
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
    "waves",
    "business_rule_set_id",
    "priority",
    "trigger_context_sample",
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
            # The copy is another experiment: its own assignment key, no winner.
            experiment=with_key(
                {k: v for k, v in source.experiment.items() if k != "winner"} if source.experiment else None, None
            ),
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


# ---- lifecycle --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    campaign: Campaign
    run: CampaignRun | None  # the immediate run, to enqueue after commit
    previous_status: CampaignStatus


async def activate_campaign(
    sandbox_id: int,
    campaign_id: int,
    *,
    actor: str,
    now: datetime | None = None,
    links: LinkFacts | None = None,
    requester_role: str | None = None,
) -> Activation:
    """Review under the row lock, then DRAFT (or APPROVED) → LIVE (and a run now) or SCHEDULED (the dispatcher
    runs it). A DRAFT that an approval policy matches for `requester_role` is refused with ApprovalRequiredError
    (system callers pass no role: policies are about people and keys asking)."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        schedule = schedule_from_stored(row.schedule or {})
        starts_later = schedule.start_at is not None and schedule.start_at > now
        target = _allowed(row, CampaignAction.ACTIVATE, starts_later=starts_later)
        snapshot = await build_snapshot(row, now=now, conn=conn, links=links)
        alerts = review(snapshot, now)
        if not can_activate(alerts):
            raise ReviewFailedError(alerts)
        if requester_role is not None and row.status is CampaignStatus.DRAFT:
            policies = await matching_policies(sandbox_id, campaign_facts(row, snapshot, requester_role), conn)
            if policies:
                raise ApprovalRequiredError(policies)
        previous = CampaignStatus(row.status)
        changes = {"activated_at": now, "activated_by": actor}
        await _transition(conn, row, CampaignAction.ACTIVATE, actor, now, changes, starts_later=starts_later)
        await published_version(conn, row, now=now)  # number 1: what it was activated with
        run = None
        if target is CampaignStatus.LIVE and row.type.value == "SCHEDULED":
            run = await CampaignRun.create(
                sandbox_id=sandbox_id, campaign_id=row.id, scheduled_for=schedule.start_at or now, using_db=conn
            )
    outbox.committed()
    return Activation(campaign=row, run=run, previous_status=previous)


async def stop_campaign(
    sandbox_id: int, campaign_id: int, *, abort_running: bool, actor: str, now: datetime | None = None
) -> Campaign:
    """LIVE/SCHEDULED → STOPPED: pending and paused runs are cancelled; a running one finishes unless aborted."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        _allowed(row, CampaignAction.STOP)
        changes = {"stopped_at": now, "stopped_by": actor}
        extra = {"abortRunning": abort_running}
        await _transition(conn, row, CampaignAction.STOP, actor, now, changes, audit_extra=extra)
        # A PAUSED run sends nothing until resumed, which a stopped campaign never is: cancelled either way.
        cancelled = [RunStatus.PENDING, RunStatus.PAUSED]
        if abort_running:
            cancelled.append(RunStatus.RUNNING)
        await cancel_campaign_runs(conn, row.id, cancelled, actor=actor, now=now)
    outbox.committed()
    return row


async def archive_campaign(sandbox_id: int, campaign_id: int, *, actor: str) -> Campaign:
    async with in_transaction() as conn:
        row = await locked_campaign(conn, sandbox_id, campaign_id)
        _allowed(row, CampaignAction.ARCHIVE)
        await _transition(conn, row, CampaignAction.ARCHIVE, actor, datetime.now(UTC), {})
    outbox.committed()
    return row
