"""One wave of a run (or of a report's window) sent in waves: `CampaignRun.waves` and `CampaignReport.waves`."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from models.ledger.waves import WaveFigures
from models.outbox.payloads import WaveProgress
from resolvers.vocabulary import RunCounters, counter


@strawberry.type(description="One wave of a run sent in waves: its plan and its counters, from the ledger.")
class CampaignRunWave(RunCounters):
    wave: int = strawberry.field(description="Wave number, from 1.")
    planned_size: int = strawberry.field(
        description="Recipients the snapshot put in this wave (its rows in the ledger; fixed when the run started)."
    )
    starts_at: datetime | None = strawberry.field(
        description="The wave's earliest start (its due time); it also waits for the previous wave to finish. "
        "Null when the campaign no longer has waves."
    )
    finished: bool = strawberry.field(
        description="True once the wave was opened and none of its messages is queued or being sent."
    )
    delayed: int = counter("delayed")

    @classmethod
    def from_figures(cls, w: WaveFigures) -> Self:
        f = w.figures
        return cls(
            wave=w.wave,
            planned_size=f.audience,
            starts_at=w.starts_at,
            finished=w.finished,
            audience=f.audience,
            targeted=f.targeted,
            excluded=f.excluded,
            sent=f.sent,
            delivered=f.delivered,
            failed=f.failed,
            pending=f.pending,
            retrying=f.retrying,
            delayed=f.delayed,
        )

    @classmethod
    def from_progress(cls, w: WaveProgress) -> Self:
        audience = w.targeted + w.excluded
        return cls(
            wave=w.wave,
            planned_size=audience,
            starts_at=w.starts_at,
            finished=w.finished,
            audience=audience,
            targeted=w.targeted,
            excluded=w.excluded,
            sent=w.sent,
            delivered=w.delivered,
            failed=w.failed,
            pending=w.pending,
            retrying=w.retrying,
            delayed=w.delayed,
        )
