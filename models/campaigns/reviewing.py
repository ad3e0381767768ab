"""The review of a stored campaign: its snapshot (content, preset, audience estimate) built in one transaction,
then judged by the pure rules of models.campaigns.review."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models.audience.entities import Segment
from models.business_rules.actions import rule_set_for
from models.business_rules.enforcement import send_rules_for
from models.business_rules.estimate import SAMPLE, estimate_rules
from models.campaigns.campaign import Campaign
from models.campaigns.review import Alert, Plan, can_activate, plan, review
from models.campaigns.review_snapshot import (
    AudienceEstimate,
    AudienceFacts,
    CampaignSnapshot,
    Content,
    EmailContent,
    InAppButton,
    InAppContent,
    LinkFacts,
    PresetFacts,
    PushContent,
    RuleEstimate,
    SmsContent,
)
from models.campaigns.rules import (
    Category,
    Channel,
)
from models.campaigns.values import CampaignNotFoundError, schedule_from_stored
from models.campaigns.waves import waves_from_stored
from models.ledger.snapshot import contactable_sample, estimate_exclusions
from models.ledger.vocabulary import DeliveryReason
from models.presets.preset import MessagePreset
from models.tenancy.identity import IdentityNamespace

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
    from models.campaigns.review import template_fields
    from models.campaigns.review_snapshot import content_variants
    from models.campaigns.templates import CompiledTemplate, parse_template, profile_paths

    found: list[str] = []
    every = [item for _, variant in content_variants(snapshot) for item in template_fields(variant)]
    for field_path, source in every:
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
    from models.audience.segment_rules import validate_rule
    from models.audience.segment_sql import compile_rule
    from models.audience.segments import segment_predicate
    from models.sql.params import SqlParams
    from models.sql.reads import dialect_of

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


def push_platform_facts(preset: MessagePreset) -> dict[str, Any]:
    """A push preset's platforms and those its last validation's dry run passed for (`push.dry_run.<platform>`)."""
    if preset.channel.value != Channel.PUSH.value:
        return {}
    platforms = tuple((preset.settings or {}).get("platforms") or ())
    passed = {c.get("check") for c in preset.checks or [] if isinstance(c, dict) and c.get("ok")}
    verified = frozenset(p for p in platforms if f"push.dry_run.{p.lower()}" in passed)
    return {"platforms": platforms, "verified_platforms": verified}


async def build_snapshot(
    row: Campaign,
    *,
    now: datetime,
    conn: BaseDBAsyncClient,
    links: LinkFacts | None = None,
    estimates: bool = True,
) -> CampaignSnapshot:
    """Everything the review judges, read in `conn` (the caller's transaction when activating); `links` is
    the server's (PUBLIC_URL, production), which the models cannot know. `estimates=False`: without the audience
    estimate, the profile paths seen and the business-rules estimate (each a scan of the audience), which only
    warnings and the plan read: enough for a check that refuses on errors alone (a run's start)."""
    preset_facts = None
    preset: MessagePreset | None = None
    if row.preset_id is not None:
        preset = await MessagePreset.get_or_none(id=row.preset_id, sandbox_id=row.sandbox_id).using_db(conn)
        preset_facts = (
            PresetFacts(
                exists=True,
                status=preset.status.value,
                channel=Channel(preset.channel.value),
                category=Category(preset.category.value),
                **push_platform_facts(preset),
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
        waves=waves_from_stored(row.waves),
        activated_at=row.activated_at,
        tracking=_tracks_links(row),
        links=links,
        treatments=tuple(
            (t["key"], content_from_stored(t.get("content") or {}))
            for t in (row.experiment or {}).get("treatments", [])
        ),
        experiment=row.experiment,
        trigger_context_sample=row.trigger_context_sample,
    )
    if segment is None or namespace is None or row.channel is None or not estimates:
        return snapshot
    estimate = await _estimate(row, segment, namespace, preset, now, conn)
    seen = await _paths_seen(segment, _referenced_profile_paths(snapshot), now, conn)
    rules = await _rules_estimate(row, segment, namespace, preset, estimate, now, conn)
    return CampaignSnapshot(
        **{
            **snapshot.__dict__,
            "business_rules": rules,
            "audience": AudienceFacts(
                **{**snapshot.audience.__dict__, "estimate": estimate, "profile_paths_seen": seen}
            ),
        }
    )


def _tracks_links(row: Campaign) -> bool:
    """Whether messages carry tracking links (the sender's defaults: opens for email, clicks for email/SMS)."""
    options = row.tracking or {}
    channel = Channel(row.channel) if row.channel is not None else None
    opens = channel is Channel.EMAIL and bool(options.get("opens", True))
    return opens or (channel in (Channel.EMAIL, Channel.SMS) and bool(options.get("clicks", True)))


async def _estimate(
    row: Campaign,
    segment: Segment,
    namespace: IdentityNamespace,
    preset: MessagePreset | None,
    now: datetime,
    conn: BaseDBAsyncClient,
) -> AudienceEstimate:
    # The snapshot's own SQL: the plan names the reasons the ledger will write, with the same counts.
    qualified, by_reason = await estimate_exclusions(row, segment, namespace, preset, now, conn)
    unreachable = sum(n for reason, n in by_reason.items() if reason != DeliveryReason.THROTTLE_CUTOFF.value)
    return AudienceEstimate(
        qualified=qualified,
        with_identity=qualified - by_reason.get(DeliveryReason.NO_IDENTITY.value, 0),
        contactable=qualified - unreachable,
        excluded_by_reason=tuple(sorted(by_reason.items(), key=lambda item: (-item[1], item[0]))),
    )


async def _rules_estimate(
    row: Campaign,
    segment: Segment,
    namespace: IdentityNamespace,
    preset: MessagePreset | None,
    estimate: AudienceEstimate,
    now: datetime,
    conn: BaseDBAsyncClient,
) -> RuleEstimate | None:
    rule_set = await rule_set_for(row, conn)
    if rule_set is None:
        return None
    rules = await send_rules_for(row, 0, rule_set=rule_set)
    if rules is None:
        return RuleEstimate(rule_set.name)
    sample = await contactable_sample(row, segment, namespace, preset, now, conn, SAMPLE)
    return await estimate_rules(rules, rule_set.name, sample, estimate.contactable, now, conn)


@dataclass(frozen=True)
class ReviewResult:
    alerts: list[Alert]
    plan: Plan

    @property
    def can_activate(self) -> bool:
        return can_activate(self.alerts)


async def review_campaign(
    sandbox_id: int, campaign_id: int, *, now: datetime | None = None, links: LinkFacts | None = None
) -> ReviewResult:
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await Campaign.get_or_none(id=campaign_id, sandbox_id=sandbox_id).using_db(conn)
        if row is None:
            raise CampaignNotFoundError("id", campaign_id)
        snapshot = await build_snapshot(row, now=now, conn=conn, links=links)
    return ReviewResult(alerts=review(snapshot, now), plan=plan(snapshot, now))


async def estimate_audience(row: Campaign, *, now: datetime, conn: BaseDBAsyncClient) -> AudienceEstimate | None:
    """The review plan's audience estimate of a campaign (the snapshot's own SQL); None without a segment,
    namespace or channel (the calendar shows it beside each occurrence)."""
    if row.segment_id is None or row.namespace_id is None or row.channel is None:
        return None
    segment = await Segment.get_or_none(id=row.segment_id, sandbox_id=row.sandbox_id).using_db(conn)
    namespace = await IdentityNamespace.get_or_none(id=row.namespace_id, sandbox_id=row.sandbox_id).using_db(conn)
    if segment is None or namespace is None:
        return None
    preset = (
        await MessagePreset.get_or_none(id=row.preset_id, sandbox_id=row.sandbox_id).using_db(conn)
        if row.preset_id is not None
        else None
    )
    return await _estimate(row, segment, namespace, preset, now, conn)
