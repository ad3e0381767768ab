"""One campaign by id in one statement (issue 22): `campaign(id:)` and `node(id:)` read the columns their selection
needs, with the preset and segment joined and the summary summed beside, as a page of one
(`campaign_page`). Stock execution (GRAPHQL_PLANNED_EXECUTION=false) keeps the general path, the whole row and a
DataLoader per relation, which the differential tests compare this one against."""

from __future__ import annotations

from models.campaigns.campaign import Campaign as CampaignModel
from models.sql.reads import sql_params
from resolvers.campaigns.types import Campaign, campaign_page
from resolvers.context import Info
from resolvers.pagination import SortKey, SqlListing
from resolvers.selection import selected_object_tree


def one_statement_reads(info: Info) -> bool:
    """Planned execution is on for this schema (resolvers/schema.py HeraldSchema)."""
    return bool(getattr(info.schema, "planned_execution", False))


async def campaign_by_pk(info: Info, pk: int) -> Campaign | None:
    """The caller's campaign `pk` with what the query selects on it, in one statement (more only for relations
    without a projection, such as `namespace`); None when it is not the caller's."""
    sandbox_id = info.context.require_caller().sandbox_id
    params = sql_params()
    where = f'"sandbox_id" = {params.add(sandbox_id)} AND "id" = {params.add(pk)}'
    page = await campaign_page(
        SqlListing(CampaignModel, where, params),
        first=1,
        after=None,
        sort=SortKey(),
        max_page_size=1,
        selected=selected_object_tree(info, "Campaign"),
        loaders=info.context.loaders,
    )
    return page.edges[0].node if page.edges else None
