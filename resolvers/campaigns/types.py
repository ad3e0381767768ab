"""A campaign in GraphQL: the node, its summary of run figures, and the list page read in one statement."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Self

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.relay.utils import to_base64
from strawberry.scalars import JSON
from tortoise.models import Model

from models.audience.entities import Segment as SegmentModel
from models.campaigns.campaign import Campaign as CampaignModel
from models.campaigns.campaign import CampaignVersion as CampaignVersionModel
from models.campaigns.rules import available_actions
from models.presets.preset import MessagePreset as MessagePresetModel
from models.sql.reads import fetch, sql_params
from models.tenancy.identity import IdentityNamespace as IdentityNamespaceModel
from resolvers.campaigns.content_types import CampaignContent, CampaignTracking, tracking_from_stored
from resolvers.campaigns.enums import CampaignAction, CampaignStatus, CampaignType, Category, Channel
from resolvers.campaigns.schedule_types import CampaignSchedule, CampaignWaves
from resolvers.campaigns.version_types import CampaignVersion
from resolvers.context import Info
from resolvers.loaders import Loaders
from resolvers.nodes import SandboxNode
from resolvers.pagination import Connection, JoinedFigures, JoinedRelation, SortKey, SqlListing, paginate, paginate_sql
from resolvers.projection import Projection
from resolvers.tenancy.types import IdentityNamespace
from resolvers.vocabulary import SummaryCounters

if TYPE_CHECKING:
    from resolvers.audience.types import Segment
    from resolvers.campaigns.experiments import Experiment
    from resolvers.presets.types import MessagePreset


@strawberry.type(
    description=(
        "What happened so far, over all runs (the source document's summary), from the runs' counters: one "
        "statement per page of campaigns. Counted per run and profile, as `campaignReport(ALL_TIME)`."
    )
)
class CampaignSummary(SummaryCounters):
    profiles_targeted: int = strawberry.field(
        description="The same as `audience`.", deprecation_reason="Use `audience`: the one name for it."
    )
    actions_delivered: int = strawberry.field(
        description="The same as `delivered`.", deprecation_reason="Use `delivered`: the one name for it."
    )
    actions_failed: int = strawberry.field(
        description="The same as `failed`.", deprecation_reason="Use `failed`: the one name for it."
    )


def summary_sql(campaign_ids: str) -> str:
    """Summed run figures of the campaigns whose ids `campaign_ids` (SQL) gives, keyed by campaign id."""
    return (
        'SELECT "campaign_id" AS "key", SUM("targeted") AS "targeted", SUM("excluded") AS "excluded", '
        'SUM("sent") AS "sent", SUM("delivered") AS "delivered", SUM("failed") AS "failed" '
        f'FROM "campaign_run" WHERE "campaign_id" IN ({campaign_ids}) GROUP BY "campaign_id"'
    )


SUMMARY_FIGURES = ("targeted", "excluded", "sent", "delivered", "failed")


def summary_from_sums(sums: Mapping[str, Any] | None) -> CampaignSummary:
    """A campaign's summary from `summary_sql`'s row for it (None: no runs yet)."""
    sums = sums or {}
    targeted, excluded = int(sums.get("targeted") or 0), int(sums.get("excluded") or 0)
    delivered, failed = int(sums.get("delivered") or 0), int(sums.get("failed") or 0)
    return CampaignSummary(
        audience=targeted + excluded,
        targeted=targeted,
        excluded=excluded,
        sent=int(sums.get("sent") or 0),
        delivered=delivered,
        failed=failed,
        profiles_targeted=targeted + excluded,
        actions_delivered=delivered,
        actions_failed=failed,
    )


async def summaries_by_campaign_id(ids: Sequence[int]) -> list[CampaignSummary]:
    """Summed run figures per campaign, in the order of `ids` (ids of the caller's sandbox: the callers read
    the campaigns scoped first)."""
    params = sql_params()
    placeholders = ", ".join(params.add(i) for i in sorted(set(ids))) or "NULL"
    rows = await fetch(summary_sql(placeholders), params)
    by_id = {row["key"]: dict(zip(row.keys(), row, strict=True)) for row in rows}
    return [summary_from_sums(by_id.get(i)) for i in ids]


def summary_loader(loaders: Loaders) -> DataLoader[int, CampaignSummary]:
    return loaders.custom("campaign_summary", summaries_by_campaign_id)


@functools.cache
def relations() -> Mapping[str, tuple[type[Model], str, type[SandboxNode]]]:
    """Relation fields a page of campaigns can load at once: field name -> (model, foreign key, node type).
    Built once (the imports are lazy, the types import this module)."""
    from resolvers.audience.types import Segment
    from resolvers.presets.types import MessagePreset

    return {
        "preset": (MessagePresetModel, "preset_id", MessagePreset),
        "segment": (SegmentModel, "segment_id", Segment),
        "namespace": (IdentityNamespaceModel, "namespace_id", IdentityNamespace),
    }


async def prefetch_relations(campaigns: Sequence[Campaign], names: Iterable[str], loaders: Loaders) -> None:
    """Loads the relations `names` (GraphQL field names) for a page of campaigns through the request's
    sandbox-scoped `Loaders`: one statement per relation, done up front, and each related row converted once
    however many campaigns share it."""
    if not campaigns:
        return
    loads: list[tuple[str, str, Callable[[Any], Any], list[int], Awaitable[list[Any]]]] = []
    by_name = relations()
    for name in names:
        model, key, node_type = by_name[name]
        ids = sorted({pk for c in campaigns if (pk := getattr(c, key)) is not None})
        loads.append((name, key, node_type.from_model, ids, loaders.rows_by_id(model, ids)))
    results = await asyncio.gather(*(load for *_, load in loads))
    for (name, key, to_node, ids, _), rows in zip(loads, results, strict=True):
        nodes = {pk: to_node(row) for pk, row in zip(ids, rows, strict=True) if row is not None}
        for campaign in campaigns:
            campaign.prefetched[name] = nodes.get(getattr(campaign, key))


async def campaign_page(
    listing: SqlListing,
    *,
    first: int | None,
    after: str | None,
    sort: SortKey,
    max_page_size: int,
    selected: Mapping[str, AbstractSet[str]],
    loaders: Loaders,
) -> Connection[Campaign]:
    """A page of campaigns in one statement: the columns the selection reads, its presets and segments joined
    (their selected columns) and its summaries summed beside. Relations without a projection are loaded after,
    one statement each (`prefetch_relations`)."""
    sandbox_id = loaders.sandbox_id
    assert sandbox_id is not None  # loaders exist for authenticated callers only
    joined: list[JoinedRelation] = []
    node_types: dict[str, type[SandboxNode]] = {}
    loaded_after: list[str] = []
    for name, (model, key, node_type) in relations().items():
        if name not in selected:
            continue
        if node_type.projection is None:
            loaded_after.append(name)
            continue
        joined.append(JoinedRelation(name, model, key, node_type.projection.attributes_for(selected[name]), sandbox_id))
        node_types[name] = node_type
    figures = [JoinedFigures("summary", summary_sql, SUMMARY_FIGURES)] if "summary" in selected else []
    converted: dict[tuple[str, int], Any] = {}  # each related row converted once for the page

    def to_node(values: dict[str, Any], joined_values: dict[str, Any]) -> Campaign:
        campaign = Campaign.from_values(values)
        for relation in joined:
            row = joined_values[relation.name]
            node = None
            if row is not None:
                node = converted.get((relation.name, row["id"]))
                if node is None:
                    node = converted[relation.name, row["id"]] = node_types[relation.name].from_values(row)
            campaign.prefetched[relation.name] = node
        if figures:
            campaign.prefetched["summary"] = summary_from_sums(joined_values["summary"])
        return campaign

    page = await paginate_sql(
        listing,
        first=first,
        after=after,
        max_page_size=max_page_size,
        to_node=to_node,
        sort=sort,
        attributes=Campaign.projection.attributes_for(selected.keys()),
        relations=joined,
        figures=figures,
    )
    await prefetch_relations([edge.node for edge in page.edges], loaded_after, loaders)
    return page


@strawberry.type(description="A campaign: a message sent to an audience once or on a schedule.")
class Campaign(SandboxNode):
    model = CampaignModel

    pk: relay.NodeID[int]
    name: str = strawberry.field(description="Name.")
    description: str = strawberry.field(description="Description.")
    tags: list[str] = strawberry.field(description="Tags.")
    type: CampaignType = strawberry.field(description="Scheduled or API-triggered.")
    category: Category = strawberry.field(description="Marketing or transactional.")
    channel: Channel | None = strawberry.field(description="Channel of the message.")
    # Built from the stored JSON only when asked for: a list page rarely selects them.
    content: CampaignContent = strawberry.field(
        description="The message.", resolver=lambda self: CampaignContent.from_stored(self.stored_content)
    )
    tracking: CampaignTracking = strawberry.field(
        description="Tracked reactions.",
        resolver=lambda self: tracking_from_stored(self.stored_tracking),
    )
    schedule: CampaignSchedule = strawberry.field(
        description="When it runs.", resolver=lambda self: CampaignSchedule.from_stored(self.stored_schedule)
    )
    throttle: int | None = strawberry.field(description="Messages per second; null = as fast as possible.")
    waves: CampaignWaves | None = strawberry.field(
        description="How each run is sent in waves; null = at once.",
        resolver=lambda self: CampaignWaves.from_stored(self.stored_waves),
    )
    priority: int = strawberry.field(
        description="0 to 100: runs due at the same time start highest first; the higher wins a cap's last slot."
    )
    trigger_context_sample: JSON | None = strawberry.field(
        description="API-triggered: the sample `{trigger, recipient}` context the review checks templates against."
    )
    status: CampaignStatus = strawberry.field(description="Lifecycle status.")
    version: int = strawberry.field(description="Increments on every change; send it back with updates.")
    activated_at: datetime | None = strawberry.field(description="When it was activated.")
    activated_by: str | None = strawberry.field(description="Who activated it.")
    stopped_at: datetime | None = strawberry.field(description="When it was stopped.")
    created_at: datetime = strawberry.field(description="Creation time.")
    updated_at: datetime = strawberry.field(description="Last change.")
    preset_id: strawberry.Private[int | None]
    segment_id: strawberry.Private[int | None]
    namespace_id: strawberry.Private[int | None]
    business_rule_set_pk: strawberry.Private[int | None]
    stored_content: strawberry.Private[dict[str, Any]]
    stored_tracking: strawberry.Private[dict[str, Any]]
    stored_schedule: strawberry.Private[dict[str, Any]]
    stored_waves: strawberry.Private[dict[str, Any] | None] = None
    stored_experiment: strawberry.Private[dict[str, Any] | None] = None

    # Relations the list resolver loaded for the whole page (`prefetch_relations`): field name -> node or None.
    prefetched: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)

    # The relation resolvers are plain functions: when the page was prefetched they answer with a value, so
    # graphql-core completes the page without an awaitable (a task and a gather) per row and field; otherwise
    # they return the DataLoader's awaitable, which graphql-core awaits as it would an async resolver's.
    @strawberry.field(description="The message preset it sends with.")
    def preset(self, info: Info) -> Annotated[MessagePreset, strawberry.lazy("resolvers.presets.types")] | None:
        from resolvers.presets.types import MessagePreset

        return self._related(info, "preset", MessagePresetModel, self.preset_id, MessagePreset.from_model)

    @strawberry.field(description="The audience segment.")
    def segment(self, info: Info) -> Annotated[Segment, strawberry.lazy("resolvers.audience.types")] | None:
        from resolvers.audience.types import Segment

        return self._related(info, "segment", SegmentModel, self.segment_id, Segment.from_model)

    @strawberry.field(description="The identity namespace recipients are identified by.")
    def namespace(self, info: Info) -> IdentityNamespace | None:
        return self._related(info, "namespace", IdentityNamespaceModel, self.namespace_id, IdentityNamespace.from_model)

    def _related(self, info: Info, name: str, model: type[Model], pk: int | None, to_node: Callable[[Any], Any]) -> Any:
        if pk is None:
            return None
        if name in self.prefetched:
            return self.prefetched[name]

        async def load() -> Any:
            row = await info.context.loaders.by_id(model).load(pk)
            return to_node(row) if row is not None else None

        return load()

    @strawberry.field(
        description="Versions of the message, newest first: number 1 is what it was activated with; editing an "
        "activated recurring or API-triggered campaign makes a DRAFT, published by `campaignVersionPublish` "
        "(after `campaignVersionRequestApproval` and approval when a policy matches). "
        "Empty for a draft campaign."
    )
    async def versions(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size, 0 to 100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor to continue from.")] = None,
    ) -> Connection[CampaignVersion]:
        query = CampaignVersionModel.filter(sandbox_id=info.context.require_caller().sandbox_id, campaign_id=self.pk)
        return await paginate(
            query,
            first=first,
            after=after,
            max_page_size=info.context.limits.max_page_size,
            to_node=CampaignVersion.from_model,
            sort=SortKey("number", True),
        )

    @strawberry.field(description="The content experiment: treatments sent instead of `content`; null when none.")
    def experiment(self) -> Annotated[Experiment, strawberry.lazy("resolvers.campaigns.experiments")] | None:
        from resolvers.campaigns.experiments import Experiment

        return Experiment.from_stored(self.stored_experiment)

    @strawberry.field(
        description="Global id of the business rule set it names; null = the sandbox's default rule set applies "
        "to MARKETING campaigns."
    )
    def business_rule_set_id(self) -> strawberry.ID | None:
        if self.business_rule_set_pk is None:
            return None
        return strawberry.ID(to_base64("BusinessRuleSet", self.business_rule_set_pk))

    @strawberry.field(description="Actions the caller may take now, given the status and the caller's role.")
    def available_actions(self, info: Info) -> list[CampaignAction]:
        return available_actions(self.status, info.context.require_caller().role)

    @strawberry.field(description="Profiles targeted, messages delivered and failed, profiles excluded.")
    def summary(self, info: Info) -> CampaignSummary:
        if "summary" in self.prefetched:
            return self.prefetched["summary"]
        return summary_loader(info.context.loaders).load(self.pk)

    @classmethod
    def from_model(cls, row: CampaignModel) -> Self:
        return cls.from_values(vars(row))

    @classmethod
    def from_values(cls, row: dict[str, Any]) -> Self:
        """From the model's attributes (a list page reads only those its query selects: `attributes_for`);
        an attribute not read is None."""
        get = row.get
        return cls(
            pk=row["id"],
            name=get("name"),
            description=get("description"),
            tags=list(get("tags") or []),
            type=get("type"),
            category=get("category"),
            channel=get("channel"),
            stored_content=get("content") or {},
            stored_tracking=get("tracking") or {},
            stored_schedule=get("schedule") or {},
            stored_experiment=get("experiment"),
            throttle=get("throttle_per_second"),
            stored_waves=get("waves"),
            priority=get("priority"),
            business_rule_set_pk=get("business_rule_set_id"),
            trigger_context_sample=get("trigger_context_sample"),
            status=get("status"),
            version=get("version"),
            activated_at=get("activated_at"),
            activated_by=get("activated_by"),
            stopped_at=get("stopped_at"),
            created_at=get("created_at"),
            updated_at=get("updated_at"),
            preset_id=get("preset_id"),
            segment_id=get("segment_id"),
            namespace_id=get("namespace_id"),
        )


# The model attributes each field reads (resolvers/projection.py).
Campaign.projection = Projection(
    always=("id", "status", "preset_id", "segment_id", "namespace_id"),
    reads={
        "id": (),
        "name": ("name",),
        "description": ("description",),
        "tags": ("tags",),
        "type": ("type",),
        "category": ("category",),
        "channel": ("channel",),
        "content": ("content",),
        "tracking": ("tracking",),
        "schedule": ("schedule",),
        "experiment": ("experiment",),
        "throttle": ("throttle_per_second",),
        "waves": ("waves",),
        "priority": ("priority",),
        "businessRuleSetId": ("business_rule_set_id",),
        "triggerContextSample": ("trigger_context_sample",),
        "status": (),
        "version": ("version",),
        "activatedAt": ("activated_at",),
        "activatedBy": ("activated_by",),
        "stoppedAt": ("stopped_at",),
        "createdAt": ("created_at",),
        "updatedAt": ("updated_at",),
        "preset": (),
        "segment": (),
        "namespace": (),
        "availableActions": (),
        "summary": (),
        "versions": (),
    },
)
