"""Campaign queries: one campaign, the list, the review, the preview and the runs (mutations.py and
subscriptions.py hold the area's other root fields)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry

from models.audience.entities import Profile as ProfileModel
from models.campaigns.campaign import Campaign as CampaignModel
from models.campaigns.campaign import CampaignRun as CampaignRunModel
from models.campaigns.campaign import list_filter_sql
from models.campaigns.previews import PreviewError, preview_campaign
from models.campaigns.reviewing import review_campaign
from models.campaigns.rules import CampaignStatus as CampaignStatusEnum
from models.campaigns.rules import Channel as ChannelEnum
from models.campaigns.values import CampaignError
from models.campaigns.versions import review_version, version_campaign
from models.sql.reads import sql_params
from resolvers.campaigns.enums import CampaignStatus, Channel
from resolvers.campaigns.reads import campaign_by_pk, one_statement_reads
from resolvers.campaigns.refusals import campaign_error, campaign_not_found, campaign_pk
from resolvers.campaigns.review_types import CampaignReview, review_answer
from resolvers.campaigns.run_types import CampaignRun
from resolvers.campaigns.types import Campaign, campaign_page
from resolvers.context import Info
from resolvers.errors import Error, NotFoundError
from resolvers.nodes import pk_of
from resolvers.pagination import Connection, SortKey, SqlListing, paginate, selected_node_tree
from resolvers.permissions import MANAGER, VIEWER
from resolvers.vocabulary import described_enum

DEFAULT_LIST_STATUSES = [
    CampaignStatusEnum.DRAFT,
    CampaignStatusEnum.IN_REVIEW,
    CampaignStatusEnum.APPROVED,
    CampaignStatusEnum.SCHEDULED,
    CampaignStatusEnum.LIVE,
]


@described_enum(description="Order of a campaign list.")
class CampaignSort(Enum):
    CREATED_DESC = "CREATED_DESC"
    CREATED_ASC = "CREATED_ASC"
    MODIFIED_DESC = "MODIFIED_DESC"
    NAME_ASC = "NAME_ASC"


SORT_KEYS = {
    CampaignSort.CREATED_DESC: SortKey(None, True),
    CampaignSort.CREATED_ASC: SortKey(None, False),
    CampaignSort.MODIFIED_DESC: SortKey("updated_at", True),
    CampaignSort.NAME_ASC: SortKey("name", False),
}


@strawberry.input(description="Filters of the campaign list; all given filters apply.")
class CampaignFilter:
    statuses: list[CampaignStatus] | None = strawberry.field(
        default=None,
        description="Statuses to list (default: DRAFT, IN_REVIEW, APPROVED, SCHEDULED, LIVE, "
        "the ones still in play, as AJO's list).",
    )
    channel: Channel | None = strawberry.field(default=None, description="Only this channel.")
    tags: list[str] | None = strawberry.field(default=None, description="Campaigns having any of these tags.")
    search: str | None = strawberry.field(default=None, description="Name contains this text (any case).")


@strawberry.type(description="The message rendered for one profile.")
class CampaignPreview:
    subject: str | None = strawberry.field(description="Email subject.")
    preheader: str | None = strawberry.field(description="Email preheader.")
    html: str | None = strawberry.field(description="Email HTML.")
    text: str | None = strawberry.field(description="Email text or SMS text.")
    title: str | None = strawberry.field(description="Push or in-app title.")
    body: str | None = strawberry.field(description="Push or in-app body.")


@strawberry.type(description="A template could not be rendered for this profile.")
class TemplateRenderError(Error):
    field: str = strawberry.field(description="The content field whose template failed.")


CampaignReviewResult = Annotated[
    CampaignReview | NotFoundError,
    strawberry.union("CampaignReviewResult", description="Result of `campaignReview`."),
]
CampaignPreviewResult = Annotated[
    CampaignPreview | NotFoundError | TemplateRenderError,
    strawberry.union("CampaignPreviewResult", description="Result of `campaignPreview`."),
]


@strawberry.type
class CampaignQuery:
    @strawberry.field(description="A campaign by id.", permission_classes=VIEWER)
    async def campaign(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign.")]
    ) -> Campaign | None:
        pk = campaign_pk(id)
        if pk is None:
            return None
        if one_statement_reads(info):
            return await campaign_by_pk(info, pk)
        row = await CampaignModel.get_or_none(id=pk, sandbox_id=info.context.require_caller().sandbox_id)
        return Campaign.from_model(row) if row else None

    @strawberry.field(description="Campaigns of this sandbox.", permission_classes=VIEWER)
    async def campaigns(
        self,
        info: Info,
        filter: Annotated[
            CampaignFilter | None, strawberry.argument(description="Which campaigns; all when null.")
        ] = None,
        sort: Annotated[
            CampaignSort, strawberry.argument(description="Order of the list.")
        ] = CampaignSort.CREATED_DESC,
        first: Annotated[int | None, strawberry.argument(description="Page size, 0 to 100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor to continue from.")] = None,
    ) -> Connection[Campaign]:
        filter = filter or CampaignFilter()
        statuses = [CampaignStatusEnum(s.value) for s in filter.statuses] if filter.statuses else DEFAULT_LIST_STATUSES
        params = sql_params()
        where = list_filter_sql(
            params,
            sandbox_id=info.context.require_caller().sandbox_id,
            statuses=statuses,
            channel=ChannelEnum(filter.channel.value) if filter.channel is not None else None,
            search=filter.search[:200] if filter.search else None,
            tags=filter.tags[:20] if filter.tags else (),
        )
        return await campaign_page(
            SqlListing(CampaignModel, where, params),
            first=first,
            after=after,
            sort=SORT_KEYS[sort],
            max_page_size=info.context.limits.max_page_size,
            selected=selected_node_tree(info),
            loaders=info.context.loaders,
        )

    @strawberry.field(
        description="Review a campaign: alerts (errors block activation) and the plan.", permission_classes=MANAGER
    )
    async def campaign_review(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign to review.")],
        version: Annotated[
            int | None,
            strawberry.argument(
                description="Review the campaign as this `CampaignVersion.number` makes it (e.g. the draft version "
                "of a live campaign, before `campaignVersionPublish`); the campaign as it is when null."
            ),
        ] = None,
    ) -> CampaignReviewResult:
        pk = campaign_pk(id)
        if pk is None:
            return campaign_not_found(id)
        sandbox_id = info.context.require_caller().sandbox_id
        try:
            if version is not None:
                result = await review_version(sandbox_id, pk, version, links=info.context.links)
            else:
                result = await review_campaign(sandbox_id, pk, links=info.context.links)
        except CampaignError as exc:
            return campaign_error(exc)
        return review_answer(result)

    @strawberry.field(description="Render the campaign's message for one profile.", permission_classes=MANAGER)
    async def campaign_preview(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign.")],
        profile_id: Annotated[
            strawberry.ID, strawberry.argument(description="Global id of the profile to render it for.")
        ],
        version: Annotated[
            int | None,
            strawberry.argument(description="Render this version (`CampaignVersion.number`, e.g. the draft)."),
        ] = None,
    ) -> CampaignPreviewResult:
        sandbox_id = info.context.require_caller().sandbox_id
        pk = campaign_pk(id)
        found = await CampaignModel.get_or_none(id=pk, sandbox_id=sandbox_id) if pk else None
        if found is None:
            return campaign_not_found(id)
        row = await version_campaign(found, version)
        if row is None:
            return NotFoundError(message="No version with that number on this campaign.", id=str(version))
        profile_pk = pk_of(profile_id, "Profile")
        profile = await ProfileModel.get_or_none(id=profile_pk, sandbox_id=sandbox_id) if profile_pk else None
        if profile is None:
            return NotFoundError(message="No profile with that id in this sandbox.", id=str(profile_id))
        try:
            rendered = preview_campaign(row, profile)
        except PreviewError as exc:
            return TemplateRenderError(message=str(exc), field=exc.field)
        return CampaignPreview(**rendered)

    @strawberry.field(description="Runs of a campaign, newest first.", permission_classes=VIEWER)
    async def campaign_runs(
        self,
        info: Info,
        campaign_id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign.")],
        first: Annotated[int | None, strawberry.argument(description="Page size, 0 to 100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor to continue from.")] = None,
    ) -> Connection[CampaignRun]:
        query = CampaignRunModel.filter(
            sandbox_id=info.context.require_caller().sandbox_id, campaign_id=campaign_pk(campaign_id) or 0
        )
        return await paginate(
            query,
            first=first,
            after=after,
            max_page_size=info.context.limits.max_page_size,
            to_node=CampaignRun.from_model,
        )
