"""Campaign versions as GraphQL shows them (models/campaigns/version_rules.py says what a version is)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from models.campaigns.campaign import CampaignVersion as CampaignVersionModel
from models.campaigns.version_rules import FieldChange as FieldChangeValue
from models.campaigns.version_rules import VersionState
from resolvers.campaigns.content_types import CampaignContent, CampaignTracking, tracking_from_stored
from resolvers.vocabulary import described_enum

CampaignVersionState = described_enum(
    VersionState,
    name="CampaignVersionState",
    description="Where a campaign version stands.",
    values={
        VersionState.DRAFT: "Edited while the campaign is activated; not sent until published (at most one "
        "unpublished version: DRAFT, IN_REVIEW or APPROVED).",
        VersionState.IN_REVIEW: "Approval requested (`campaignVersionRequestApproval`): read-only.",
        VersionState.APPROVED: "Every matched approval policy approved: read-only, ready to publish.",
        VersionState.PUBLISHED: "The version the next run (or trigger) sends: one per activated campaign.",
        VersionState.SUPERSEDED: "Was published; a later version replaced it. A rollback can restore it.",
        VersionState.DISCARDED: "A draft discarded (`campaignVersionDiscard`, or by a rollback) before publication.",
    },
)


def _gid(type_name: str, pk: int | None) -> strawberry.ID | None:
    return strawberry.ID(str(relay.GlobalID(type_name, str(pk)))) if pk is not None else None


@strawberry.type(
    description="A numbered version of a campaign's message: content, tracking, preset and throttle. Not the "
    "campaign's `version`, which counts edits for optimistic concurrency."
)
class CampaignVersion:
    number: int = strawberry.field(description="1 for what the campaign was activated with, then 2, 3, …")
    state: CampaignVersionState = strawberry.field(description="Draft, published, superseded or discarded.")  # type: ignore[valid-type]
    content: CampaignContent = strawberry.field(description="The message of this version.")
    tracking: CampaignTracking = strawberry.field(description="Tracked reactions in this version.")
    preset_id: strawberry.ID | None = strawberry.field(description="Global id of the preset this version sends with.")
    throttle: int | None = strawberry.field(description="Messages per second in this version; null = no limit.")
    based_on: int | None = strawberry.field(description="The published version this one was drafted from.")
    restores: int | None = strawberry.field(
        description="For a rollback: the earlier version whose values this one copies."
    )
    created_at: datetime = strawberry.field(description="When the version was made.")
    created_by: str = strawberry.field(description="Who made it (a key or `system:…`).")
    updated_at: datetime = strawberry.field(description="Last edit of the draft.")
    published_at: datetime | None = strawberry.field(description="When it was published; null for a draft.")
    published_by: str | None = strawberry.field(description="Who published it.")

    @classmethod
    def from_model(cls, row: CampaignVersionModel) -> Self:
        values: dict[str, Any] = row.values or {}
        return cls(
            number=row.number,
            state=row.state,
            content=CampaignContent.from_stored(values.get("content") or {}),
            tracking=tracking_from_stored(values.get("tracking") or {}),
            preset_id=_gid("MessagePreset", values.get("preset_id")),
            throttle=values.get("throttle_per_second"),
            based_on=row.based_on,
            restores=row.restores,
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
            published_at=row.published_at,
            published_by=row.published_by,
        )


@strawberry.type(description="One field that differs between two versions.")
class CampaignVersionChange:
    field: str = strawberry.field(
        description="Path as the campaign input names it: `content.email.subject`, `tracking.opens`, "
        "`action.presetId`, `throttle`."
    )
    before: JSON | None = strawberry.field(description="The value in `from`; null when not set there.")
    after: JSON | None = strawberry.field(description="The value in `to`; null when not set there.")

    @classmethod
    def from_value(cls, change: FieldChangeValue) -> Self:
        if change.field == "action.presetId":
            return cls(
                field=change.field,
                before=_gid("MessagePreset", change.before),
                after=_gid("MessagePreset", change.after),
            )
        return cls(field=change.field, before=change.before, after=change.after)


@strawberry.type(description="What changed from one version of a campaign to another.")
class CampaignVersionDiff:
    from_version: CampaignVersion = strawberry.field(description="The version compared from.")
    to_version: CampaignVersion = strawberry.field(description="The version compared to.")
    changes: list[CampaignVersionChange] = strawberry.field(description="Fields that differ, by path.")
