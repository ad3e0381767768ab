"""Resuming a PAUSED run (`campaignRunResume`): the provider refused the preset and the run stopped sending
(jobs/pausing.py); once the preset is fixed and has passed validation again (ACTIVE, no edit failing or being
checked), the run goes back to RUNNING with no lease and the executor sends its QUEUED rows, none twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from models import outbox
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.rules import CampaignStatus
from models.campaigns.run_rules import RunStatus
from models.campaigns.transitions import unpause_run
from models.ledger.waves import progress_waves, wave_figures
from models.outbox.payloads import RunProgress
from models.presets.preset import MessagePreset
from models.presets.rules import PresetStatus

# A stopped campaign cancels its paused runs; these are the statuses whose runs may still send.
SENDING_CAMPAIGN_STATUSES = frozenset({CampaignStatus.LIVE, CampaignStatus.SCHEDULED})


class ResumeError(Exception):
    pass


class RunNotFound(ResumeError):
    pass


class RunNotPaused(ResumeError):
    def __init__(self, message: str, current_status: str) -> None:
        super().__init__(message)
        self.current_status = current_status


class PresetNotReady(ResumeError):
    """The preset that paused the run still fails validation, is being validated, or is not ACTIVE."""

    def __init__(self, message: str, preset_id: int | None, preset_status: str | None) -> None:
        super().__init__(message)
        self.preset_id = preset_id
        self.preset_status = preset_status


def _preset_problem(preset: MessagePreset | None) -> str | None:
    if preset is None:
        return "the campaign has no preset"
    if preset.status is not PresetStatus.ACTIVE:
        return f"the preset is {preset.status.value}: fix it and run messagePresetValidate until it is ACTIVE"
    if preset.update_status is not None:
        return f"the preset's pending change is {preset.update_status.value}: wait for its validation to pass"
    return None


async def resume_paused_run(sandbox_id: int, run_id: int, *, actor: str, now: datetime | None = None) -> CampaignRun:
    """PAUSED → RUNNING (no lease) in one transaction, with its audit row and a progress event; the caller
    enqueues the run job after commit (the dispatcher resumes a RUNNING run without a lease should that be lost)."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        run = await CampaignRun.filter(id=run_id, sandbox_id=sandbox_id).select_for_update().using_db(conn).first()
        if run is None:
            raise RunNotFound(f"no campaign run with id {run_id} in this sandbox")
        if run.status is not RunStatus.PAUSED:
            raise RunNotPaused(f"only a PAUSED run can be resumed; this one is {run.status.value}", run.status.value)
        campaign = await Campaign.get(id=run.campaign_id).using_db(conn)
        if campaign.status not in SENDING_CAMPAIGN_STATUSES:
            raise RunNotPaused(f"the campaign is {campaign.status.value}", run.status.value)
        preset = await MessagePreset.get_or_none(id=campaign.preset_id).using_db(conn) if campaign.preset_id else None
        problem = _preset_problem(preset)
        if problem is not None:
            raise PresetNotReady(problem, preset.id if preset else None, preset.status.value if preset else None)
        event = RunProgress(
            campaign_id=run.campaign_id, run_id=run.id, status=RunStatus.RUNNING.value, targeted=run.targeted,
            excluded=run.excluded, sent=run.sent, failed=run.failed, pending=run.pending, rate_per_second=None,
            eta_seconds=None, at=now, final=False, delivered=run.delivered, retrying=run.retrying,
            last_error_reason=run.last_error_reason, last_error_count=run.last_error_count,
            waves=progress_waves(await wave_figures(run.id, conn)) if run.wave is not None else (),
        )  # fmt: skip
        if not await unpause_run(conn, run, actor=actor, now=now, event=event):
            raise RunNotPaused("the run changed meanwhile; read it again", run.status.value)
    outbox.committed()
    return run
