"""A campaign run in GraphQL: its status and counters (`Campaign` runs, `campaignRuns`, activation's run)."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry
from strawberry import relay

from models.campaigns.campaign import CampaignRun as CampaignRunModel
from models.ledger.waves import wave_figures
from resolvers.campaigns.enums import RunOutcomeReason, RunPauseReason, RunStatus
from resolvers.campaigns.wave_types import CampaignRunWave
from resolvers.nodes import SandboxNode
from resolvers.vocabulary import LAST_ERROR_DESCRIPTION, RESENT_DESCRIPTION, ReasonCount, RunCounters, last_error


@strawberry.type(description="One execution of a campaign at one scheduled time.")
class CampaignRun(SandboxNode, RunCounters):
    model = CampaignRunModel

    pk: relay.NodeID[int]
    scheduled_for: datetime = strawberry.field(description="The scheduled time of this run.")
    status: RunStatus = strawberry.field(description="Run status.")
    resent: int = strawberry.field(description=RESENT_DESCRIPTION)
    last_error: ReasonCount | None = strawberry.field(description=LAST_ERROR_DESCRIPTION)
    started_at: datetime | None = strawberry.field(description="When the run started.")
    finished_at: datetime | None = strawberry.field(description="When the run finished.")
    outcome_reason: RunOutcomeReason | None = strawberry.field(
        description="Why the run ended as it did when its counters alone would mislead (e.g. AUDIENCE_EMPTY: a "
        "SUCCEEDED run that sent nothing because nobody was in the segment); null otherwise."
    )
    campaign_version: int | None = strawberry.field(
        description="The campaign version (`CampaignVersion.number`) this run sends, fixed when it took its "
        "audience; its deliveries carry that message. Null before the run started (or for runs older than versions)."
    )
    pause_reason: RunPauseReason | None = strawberry.field(
        description="Why the run is PAUSED (the provider refused the preset); null when it is not paused."
    )
    pause_detail: str | None = strawberry.field(
        description="The provider's answer that paused the run, for a person; null when it is not paused."
    )
    paused_at: datetime | None = strawberry.field(description="When the run paused; null when it is not paused.")
    current_wave: int | None = strawberry.field(
        description="A run sent in waves: the wave being sent (later waves wait for it); null without waves."
    )

    @strawberry.field(description="A run sent in waves: each wave's counters, from the ledger; empty without waves.")
    async def waves(self) -> list[CampaignRunWave]:
        return [CampaignRunWave.from_figures(w) for w in await wave_figures(self.pk)]

    @classmethod
    def from_model(cls, row: CampaignRunModel) -> Self:
        return cls(
            pk=row.id,
            scheduled_for=row.scheduled_for,
            status=row.status,
            audience=row.targeted + row.excluded,
            targeted=row.targeted,
            excluded=row.excluded,
            sent=row.sent,
            delivered=row.delivered,
            failed=row.failed,
            pending=row.pending,
            retrying=row.retrying,
            resent=row.resent,
            last_error=last_error(row.last_error_reason, row.last_error_count),
            started_at=row.started_at,
            finished_at=row.finished_at,
            outcome_reason=RunOutcomeReason[row.outcome_reason.value] if row.outcome_reason else None,
            campaign_version=row.campaign_version,
            pause_reason=RunPauseReason[row.pause_reason.value] if row.pause_reason else None,
            pause_detail=row.pause_detail,
            paused_at=row.paused_at,
            current_wave=row.wave,
        )
