"""Campaigns and their runs (DESIGN §3). The message of a campaign belongs to that campaign alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise import fields
from tortoise.expressions import F
from tortoise.filters import escape_like
from tortoise.models import Model

from models.base import SandboxModel
from models.campaigns.rules import CampaignStatus, CampaignType, Category, Channel
from models.campaigns.run_rules import RunOutcomeReason, RunPauseReason, RunStatus
from models.campaigns.version_rules import VersionState
from models.sql.params import SqlParams
from models.sql.reads import FALSE, one_of


class Campaign(SandboxModel):
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    tags = fields.JSONField(default=list)
    # "|tag one|tag two|", lower-cased: a portable way to filter by tag (JSON lookups differ per database).
    tags_search = fields.TextField(default="")
    type = fields.CharEnumField(CampaignType, max_length=16, default=CampaignType.SCHEDULED)
    category = fields.CharEnumField(Category, max_length=16, default=Category.MARKETING)
    channel = fields.CharEnumField(Channel, max_length=16, null=True)
    preset = fields.ForeignKeyField("herald.MessagePreset", null=True, on_delete=fields.RESTRICT, related_name=False)
    # Per channel: {"email": {"subject", "preheader", "html", "text"}, "sms": {"text"}, "push": {...}, "inApp": {...}}
    content = fields.JSONField(default=dict)
    # A content experiment, or null: {"key", "metric", "mode", "holdoutShare", "testShare",
    # "testDurationSeconds", "fallback", "treatments": [{"key", "name", "weight", "content"}], "winner": {...}}
    # (models/campaigns/experiments.py). The first treatment is the control.
    experiment = fields.JSONField(null=True)
    # {"opens": bool, "clicks": bool}
    tracking = fields.JSONField(default=dict)
    segment = fields.ForeignKeyField("herald.Segment", null=True, on_delete=fields.RESTRICT, related_name=False)
    namespace = fields.ForeignKeyField(
        "herald.IdentityNamespace", null=True, on_delete=fields.RESTRICT, related_name=False
    )
    # {"startAt", "endAt", "frequency", "timeOfDay", "daysOfWeek", "daysOfMonth", "timeZone"}
    schedule = fields.JSONField(default=dict)
    throttle_per_second = fields.IntField(null=True)
    # {"count", "sizing", "sizes", "intervalMinutes", "startTimes"} (models.campaigns.waves), null = one wave
    waves = fields.JSONField(null=True)
    # Business rules (caps, quiet hours): the campaign's own rule set, else the sandbox's MARKETING default.
    business_rule_set = fields.ForeignKeyField(
        "herald.BusinessRuleSet", null=True, on_delete=fields.RESTRICT, related_name=False
    )
    # 0 to 100: runs due at the same time start highest first, and the higher wins a frequency cap's last slot.
    priority = fields.IntField(default=50, db_default=50)
    # API-triggered: a sample {"trigger": {...}, "recipient": {...}} the review checks templates against.
    trigger_context_sample = fields.JSONField(null=True)
    status = fields.CharEnumField(CampaignStatus, max_length=16, default=CampaignStatus.DRAFT)
    version = fields.IntField(default=1)
    activated_at = fields.DatetimeField(null=True)
    activated_by = fields.CharField(max_length=100, null=True)
    stopped_at = fields.DatetimeField(null=True)
    stopped_by = fields.CharField(max_length=100, null=True)
    finished_at = fields.DatetimeField(null=True)
    failure_reason = fields.TextField(null=True)

    preset_id: int | None
    segment_id: int | None
    namespace_id: int | None
    business_rule_set_id: int | None

    class Meta:
        table = "campaign"
        indexes = (("sandbox_id", "status", "id"), ("sandbox_id", "updated_at"), ("preset_id",), ("segment_id",))


class CampaignRun(Model):
    """One execution of a campaign at one scheduled time, unique per (campaign, scheduled_for).

    No semicolons in model docstrings: they become table comments, and SQLite migrations split on them.
    """

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    campaign = fields.ForeignKeyField("herald.Campaign", on_delete=fields.RESTRICT, related_name=False)
    scheduled_for = fields.DatetimeField()
    # A run delivering at each recipient's local time starts this early (the first zone reaching the wall time),
    # null = at scheduled_for.
    starts_at = fields.DatetimeField(null=True)
    # With waves: the wave being sent (rows of later waves are not claimed), null = no waves.
    wave = fields.IntField(null=True)
    status = fields.CharEnumField(RunStatus, max_length=16, default=RunStatus.PENDING)
    # Counters, as models.ledger.figures defines them (stored by models.ledger.counts.store_counters).
    targeted = fields.IntField(default=0)
    excluded = fields.IntField(default=0)
    sent = fields.IntField(default=0)
    delivered = fields.IntField(default=0)
    failed = fields.IntField(default=0)
    pending = fields.IntField(default=0, db_default=0)
    retrying = fields.IntField(default=0, db_default=0)
    # The reason of the latest failed or postponed send, and how many deliveries carry it now.
    last_error_reason = fields.CharField(max_length=32, null=True)
    last_error_count = fields.IntField(default=0, db_default=0)
    # Messages handed to the provider again after a worker died between handing them over and recording the
    # outcome (the same Message-ID sent twice, at most: the dead worker may not have sent them all).
    resent = fields.IntField(default=0, db_default=0)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    failure_reason = fields.TextField(null=True)
    # Set when the run ended for a reason its counters do not tell (an empty audience).
    outcome_reason = fields.CharEnumField(RunOutcomeReason, max_length=32, null=True)
    # While PAUSED: why (the provider refused the preset, not the recipients), the provider's answer, and when.
    pause_reason = fields.CharEnumField(RunPauseReason, max_length=32, null=True)
    pause_detail = fields.TextField(null=True)
    paused_at = fields.DatetimeField(null=True)
    # The run's steps, each recorded in the transaction that did it: a resumed run redoes what is not recorded.
    snapshot_done_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Held by the executor while RUNNING: a RUNNING run whose lease expired lost its worker and may be claimed.
    lease_until = fields.DatetimeField(null=True)
    # The CampaignVersion.number this run sends, fixed with its audience snapshot (null: ran before versions).
    campaign_version = fields.IntField(null=True)
    # The long-lived run of an API campaign (models.triggers.accept): every trigger's ledger rows go into it, it
    # stays RUNNING while the campaign is LIVE and is sent by coalesced wake-up jobs (jobs/triggered.py).
    open_for_triggers = fields.BooleanField(default=False, db_default=False)

    sandbox_id: int
    campaign_id: int

    class Meta:
        table = "campaign_run"
        unique_together = (("campaign_id", "scheduled_for"),)
        indexes = (("status", "scheduled_for"),)


class CampaignVersion(Model):
    """A numbered copy of a campaign's message-defining fields (models.campaigns.version_rules).

    Not the campaign's `version` column, which counts edits for optimistic concurrency. Number 1 is what the
    campaign was activated with. Editing an activated recurring or API-triggered campaign makes the DRAFT, its
    publication makes it the PUBLISHED one, and runs send the version they fixed when they started.
    """

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    campaign = fields.ForeignKeyField("herald.Campaign", on_delete=fields.CASCADE, related_name=False)
    number = fields.IntField()
    state = fields.CharEnumField(VersionState, max_length=16)
    # The versioned columns, as the campaign stores them: content, tracking, preset_id, throttle_per_second.
    values = fields.JSONField(default=dict)
    # The number of the published version this one was drafted from, and of the one a rollback restored.
    based_on = fields.IntField(null=True)
    restores = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    created_by = fields.CharField(max_length=100)
    updated_at = fields.DatetimeField(auto_now=True)
    published_at = fields.DatetimeField(null=True)
    published_by = fields.CharField(max_length=100, null=True)

    sandbox_id: int
    campaign_id: int

    class Meta:
        table = "campaign_version"
        unique_together = (("campaign_id", "number"),)
        indexes = (("campaign_id", "state"),)


async def campaigns_using(
    *, preset_id: int | None = None, segment_id: int | None = None, using_db: Any = None
) -> list[str]:
    """Names of non-draft campaigns using a preset or segment: those may not be deactivated or deleted."""
    query = Campaign.exclude(status=CampaignStatus.DRAFT).using_db(using_db)
    if preset_id is not None:
        query = query.filter(preset_id=preset_id)
    if segment_id is not None:
        query = query.filter(segment_id=segment_id)
    return [f"campaign {name!r}" for name in await query.order_by("id").limit(20).values_list("name", flat=True)]


async def detach_drafts(*, preset_id: int | None = None, segment_id: int | None = None, using_db: Any = None) -> int:
    """Before a preset or segment is deleted: drafts using it lose the reference (their review then says so)."""
    changes: dict[str, Any] = {}
    query = Campaign.filter(status=CampaignStatus.DRAFT).using_db(using_db)
    if preset_id is not None:
        query, changes = query.filter(preset_id=preset_id), {"preset_id": None}
    if segment_id is not None:
        query, changes = query.filter(segment_id=segment_id), {"segment_id": None}
    return await query.update(**changes, version=F("version") + 1)


def tag_token(tag: str) -> str:
    return f"|{tag.strip().lower()}|"


def list_filter_sql(
    params: SqlParams,
    *,
    sandbox_id: int,
    statuses: Sequence[CampaignStatus],
    channel: Channel | None = None,
    search: str | None = None,
    tags: Sequence[str] = (),
) -> str:
    """WHERE clause of the campaign list: the sandbox's campaigns in `statuses`, of `channel`, whose name contains
    `search` (case-insensitive) and carrying any of `tags`. LIKE patterns match `%`, `_` and `\\` literally."""
    conditions = [f'"sandbox_id" = {params.add(sandbox_id)}', one_of(params, '"status"', [s.value for s in statuses])]
    if channel is not None:
        conditions.append(f'"channel" = {params.add(channel.value)}')
    if search:
        conditions.append(f"UPPER(\"name\") LIKE UPPER({params.add(f'%{escape_like(search)}%')}) ESCAPE '\\'")
    if tags:
        # A tag cannot hold "|" (the separator): such a filter tag matches no campaign.
        possible = [t for t in tags if "|" not in t]
        any_tag = [f"\"tags_search\" LIKE {params.add(f'%{escape_like(tag_token(t))}%')} ESCAPE '\\'" for t in possible]
        conditions.append("(" + " OR ".join(any_tag) + ")" if any_tag else FALSE)
    return " AND ".join(conditions)


def tags_search_text(tags: list[str]) -> str:
    return "|" + "|".join(tag.strip().lower() for tag in tags) + "|" if tags else ""
