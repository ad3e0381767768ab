"""Campaign versions: publish a draft (after approval when a policy matches), discard it, roll back to an earlier
version (or draft the rollback, for approval), compare two (models/campaigns/versions.py and version_restores.py
decide; this module translates)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from models.campaigns.values import CampaignError, CampaignNotFoundError
from models.campaigns.version_restores import restore_version, rollback_version
from models.campaigns.version_rules import diff_versions
from models.campaigns.versions import Publication, discard_version, publish_version, versions_by_number
from resolvers.approvals.types import ApprovalRequiredError
from resolvers.campaigns.refusals import campaign_error, campaign_not_found, campaign_pk
from resolvers.campaigns.review_types import ReviewFailedErrorType
from resolvers.campaigns.types import Campaign
from resolvers.campaigns.version_types import CampaignVersion, CampaignVersionChange, CampaignVersionDiff
from resolvers.context import Info
from resolvers.errors import ConflictError, InvalidStateError, NotFoundError
from resolvers.permissions import MANAGER, PUBLISHER, VIEWER
from resolvers.vocabulary import INPUT_ARG


@strawberry.input(description="A version of a campaign, by its number.")
class CampaignVersionInput:
    campaign_id: strawberry.ID = strawberry.field(description="Global id of the campaign.")
    number: int = strawberry.field(description="The version's number (`CampaignVersion.number`).")


@strawberry.type(description="The campaign and the version now published.")
class CampaignVersionSuccess:
    campaign: Campaign = strawberry.field(description="The campaign, carrying the published version's values.")
    version: CampaignVersion = strawberry.field(description="The version now PUBLISHED.")


@strawberry.type(
    description="The draft version is DISCARDED; the next edit starts a new one from the published version."
)
class CampaignVersionDiscardSuccess:
    campaign: Campaign = strawberry.field(description="The campaign (its `version` counter moved).")
    version: CampaignVersion = strawberry.field(description="The version now DISCARDED.")


@strawberry.type(
    description="A DRAFT restoring an earlier version: request approval for it (`campaignVersionRequestApproval`), "
    "then publish it."
)
class CampaignVersionRestoreSuccess:
    campaign: Campaign = strawberry.field(description="The campaign (its `version` counter moved).")
    version: CampaignVersion = strawberry.field(description="The new DRAFT; `restores` names the version it copies.")


CampaignVersionResult = Annotated[
    CampaignVersionSuccess
    | ReviewFailedErrorType
    | ApprovalRequiredError
    | NotFoundError
    | InvalidStateError
    | ConflictError,
    strawberry.union(
        "CampaignVersionResult", description="Result of `campaignVersionPublish` and `campaignVersionRollback`."
    ),
]
CampaignVersionDiscardResult = Annotated[
    CampaignVersionDiscardSuccess | NotFoundError | InvalidStateError | ConflictError,
    strawberry.union("CampaignVersionDiscardResult", description="Result of `campaignVersionDiscard`."),
]
CampaignVersionRestoreResult = Annotated[
    CampaignVersionRestoreSuccess | NotFoundError | InvalidStateError | ConflictError,
    strawberry.union("CampaignVersionRestoreResult", description="Result of `campaignVersionRestore`."),
]
CampaignVersionDiffResult = Annotated[
    CampaignVersionDiff | NotFoundError,
    strawberry.union("CampaignVersionDiffResult", description="Result of `campaignVersionDiff`."),
]


async def _publication(info: Info, data: CampaignVersionInput, action: Any, **options: Any) -> Any:
    caller = info.context.require_caller()
    pk = campaign_pk(data.campaign_id)
    if pk is None:
        return campaign_not_found(data.campaign_id)
    try:
        done: Publication = await action(
            caller.sandbox_id, pk, data.number, actor=caller.actor, links=info.context.links, **options
        )
    except CampaignError as exc:
        return campaign_error(exc)
    return CampaignVersionSuccess(
        campaign=Campaign.from_model(done.campaign), version=CampaignVersion.from_model(done.version)
    )


@strawberry.type
class CampaignVersionQuery:
    @strawberry.field(
        description="What changed between two versions of a campaign: each differing field with its value before "
        "(in `from`) and after (in `to`).",
        permission_classes=VIEWER,
    )
    async def campaign_version_diff(
        self,
        info: Info,
        campaign_id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign.")],
        from_: Annotated[int, strawberry.argument(name="from", description="Number of the version compared from.")],
        to: Annotated[int, strawberry.argument(description="Number of the version compared to.")],
    ) -> CampaignVersionDiffResult:
        pk = campaign_pk(campaign_id)
        if pk is None:
            return campaign_not_found(campaign_id)
        found = await versions_by_number(info.context.require_caller().sandbox_id, pk, [from_, to])
        for number in (from_, to):
            if number not in found:
                return campaign_error(CampaignNotFoundError("number", f"{campaign_id} version {number}"))
        before, after = found[from_], found[to]
        return CampaignVersionDiff(
            from_version=CampaignVersion.from_model(before),
            to_version=CampaignVersion.from_model(after),
            changes=[CampaignVersionChange.from_value(c) for c in diff_versions(before.values, after.values)],
        )


@strawberry.type
class CampaignVersionMutation:
    @strawberry.mutation(
        description="Publish the DRAFT (or APPROVED) version of a LIVE or SCHEDULED recurring (or API-triggered) "
        "campaign: the review runs on the campaign as the draft makes it, under a lock; any ERROR refuses. A DRAFT "
        "an approval policy matches answers ApprovalRequiredError: `campaignVersionRequestApproval` first. The next "
        "run (or trigger) sends it; a run already sending keeps its version.",
        permission_classes=PUBLISHER,
    )
    async def campaign_version_publish(
        self, info: Info, input: Annotated[CampaignVersionInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignVersionResult:
        role = info.context.require_caller().role.value
        return await _publication(info, input, publish_version, requester_role=role)

    @strawberry.mutation(
        description="Discard the unpublished version (DRAFT, IN_REVIEW or APPROVED) of a campaign. Audited.",
        permission_classes=MANAGER,
    )
    async def campaign_version_discard(
        self, info: Info, input: Annotated[CampaignVersionInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignVersionDiscardResult:
        caller = info.context.require_caller()
        pk = campaign_pk(input.campaign_id)
        if pk is None:
            return campaign_not_found(input.campaign_id)
        try:
            done = await discard_version(caller.sandbox_id, pk, input.number, actor=caller.actor)
        except CampaignError as exc:
            return campaign_error(exc)
        return CampaignVersionDiscardSuccess(
            campaign=Campaign.from_model(done.campaign), version=CampaignVersion.from_model(done.version)
        )

    @strawberry.mutation(
        description="Roll back to an earlier published version: a new version equal to it, reviewed and published "
        "(an open draft is discarded). As a publication, it needs approval where a policy matches the campaign as "
        "that version makes it: ApprovalRequiredError, nothing changed (`campaignVersionRestore` drafts it for "
        "approval). Runs already sending keep their version.",
        permission_classes=PUBLISHER,
    )
    async def campaign_version_rollback(
        self, info: Info, input: Annotated[CampaignVersionInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignVersionResult:
        role = info.context.require_caller().role.value
        return await _publication(info, input, rollback_version, requester_role=role)

    @strawberry.mutation(
        description="Draft a rollback: a new DRAFT equal to an earlier published version (`restores` names it), "
        "nothing published. For a rollback that needs approval: request it, then publish the version once APPROVED "
        "(audited as VERSION_ROLLBACK). An open DRAFT is discarded; one IN_REVIEW or APPROVED is refused.",
        permission_classes=MANAGER,
    )
    async def campaign_version_restore(
        self, info: Info, input: Annotated[CampaignVersionInput, strawberry.argument(description=INPUT_ARG)]
    ) -> CampaignVersionRestoreResult:
        caller = info.context.require_caller()
        pk = campaign_pk(input.campaign_id)
        if pk is None:
            return campaign_not_found(input.campaign_id)
        try:
            done = await restore_version(caller.sandbox_id, pk, input.number, actor=caller.actor)
        except CampaignError as exc:
            return campaign_error(exc)
        return CampaignVersionRestoreSuccess(
            campaign=Campaign.from_model(done.campaign), version=CampaignVersion.from_model(done.version)
        )
