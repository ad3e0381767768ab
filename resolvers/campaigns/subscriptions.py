"""`campaignStatusChanged`: status changes of one campaign or of all the sandbox's, from the outbox's events."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry

from models.campaigns.campaign import Campaign as CampaignModel
from models.campaigns.rules import CampaignStatus as CampaignStatusEnum
from models.outbox.payloads import CAMPAIGN_STATUS_TOPIC, CampaignStatusChanged
from resolvers.campaigns.enums import CampaignStatus
from resolvers.campaigns.refusals import campaign_pk
from resolvers.context import Info
from resolvers.event_stream import typed_events
from resolvers.permissions import VIEWER


@strawberry.type(description="A campaign changed status.")
class CampaignStatusChange:
    campaign_id: strawberry.ID = strawberry.field(description="Global id of the campaign.")
    status: CampaignStatus = strawberry.field(description="The new status.")
    previous_status: CampaignStatus | None = strawberry.field(
        description="The status before; null for a new campaign and for the current state sent first."
    )
    version: int = strawberry.field(description="The campaign version after the change.")
    at: datetime = strawberry.field(description="When it changed.")


@strawberry.type
class CampaignSubscription:
    @strawberry.subscription(
        description="Status changes of one campaign (its current status first), or of every campaign of the sandbox "
        "when `id` is null.",
        permission_classes=VIEWER,
    )
    async def campaign_status_changed(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Global id of the campaign to follow; all of the sandbox's campaigns when null."
            ),
        ] = None,
    ) -> AsyncGenerator[CampaignStatusChange, None]:
        caller = info.context.require_caller()
        # An id that names no campaign of this sandbox matches nothing (0 is never a key).
        wanted = (campaign_pk(id) or 0) if id is not None else None
        if info.context.events is None:
            raise RuntimeError("no event bus configured")
        # Subscribed before the state is read, so a change committed in between is not missed; events at or
        # below a version already sent are dropped.
        async with info.context.events.subscribe(caller.sandbox_id, CAMPAIGN_STATUS_TOPIC) as events:
            versions: dict[int, int] = {}
            if wanted is not None:
                row = await CampaignModel.filter(id=wanted, sandbox_id=caller.sandbox_id).first()
                if row is not None:
                    versions[row.id] = row.version
                    yield CampaignStatusChange(
                        campaign_id=_campaign_gid(row.id),
                        status=CampaignStatusEnum(row.status),
                        previous_status=None,
                        version=row.version,
                        at=row.updated_at,
                    )
            async for change in typed_events(events, CAMPAIGN_STATUS_TOPIC):
                assert isinstance(change, CampaignStatusChanged)
                if wanted is not None and change.campaign_id != wanted:
                    continue
                if change.version <= versions.get(change.campaign_id, change.version - 1):
                    continue
                versions[change.campaign_id] = change.version
                yield CampaignStatusChange(
                    campaign_id=_campaign_gid(change.campaign_id),
                    status=change.status,
                    previous_status=change.previous_status,
                    version=change.version,
                    at=change.at,
                )


def _campaign_gid(pk: int) -> strawberry.ID:
    return strawberry.ID(str(strawberry.relay.GlobalID("Campaign", str(pk))))
