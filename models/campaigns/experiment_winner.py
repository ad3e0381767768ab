"""Choosing a content experiment's winner, by a person (`campaignExperimentSelectWinner`) or by the dispatcher
once a test-then-winner experiment's test duration is over (the significant winner, else the fallback). One
transaction: the winner recorded in the experiment (compare-and-set on the version), the audit row, and for
TEST_THEN_WINNER the campaign's second run, which sends the winner to the rest of the first run's audience."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise.transactions import in_transaction

from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.experiment_results import ExperimentStatus, results_of
from models.campaigns.experiment_rules import LOWER_IS_BETTER, ExperimentFallback, ExperimentMetric, ExperimentMode
from models.campaigns.experiment_stats import best_so_far
from models.campaigns.rules import CampaignStatus, CampaignType
from models.campaigns.transitions import DISPATCHER
from models.campaigns.values import (
    OBJECT_TYPE,
    CampaignError,
    CampaignInvalidInputError,
    CampaignNotFoundError,
    FieldProblem,
)
from models.tenancy.audit import record_audit


class ChoiceReason(StrEnum):
    MANUAL = "MANUAL"
    SIGNIFICANT = "SIGNIFICANT"
    FALLBACK_CONTROL = "FALLBACK_CONTROL"
    FALLBACK_BEST_SO_FAR = "FALLBACK_BEST_SO_FAR"


class ExperimentStateError(CampaignError):
    def __init__(self, current: CampaignStatus, message: str) -> None:
        self.current = current
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class WinnerChoice:
    campaign: Campaign
    run: CampaignRun | None  # TEST_THEN_WINNER: the run sending the winner to the rest, to enqueue after commit


async def select_winner(
    sandbox_id: int,
    campaign_id: int,
    treatment: str,
    *,
    actor: str,
    now: datetime | None = None,
    reason: ChoiceReason = ChoiceReason.MANUAL,
) -> WinnerChoice:
    """Records `treatment` as the winner; refused when the experiment already has one or the campaign is a draft.
    `reason`: MANUAL, SIGNIFICANT, FALLBACK_CONTROL or FALLBACK_BEST_SO_FAR (the automatic choices)."""
    now = now or datetime.now(UTC)
    async with in_transaction() as conn:
        row = await Campaign.filter(id=campaign_id, sandbox_id=sandbox_id).select_for_update().using_db(conn).first()
        if row is None or not row.experiment:
            raise CampaignNotFoundError("input.id", campaign_id)
        experiment: dict[str, Any] = dict(row.experiment)
        if treatment not in [t["key"] for t in experiment["treatments"]]:
            raise CampaignInvalidInputError([FieldProblem("input.treatment", "NOT_FOUND", "no such treatment here")])
        if row.status is CampaignStatus.DRAFT:
            raise ExperimentStateError(row.status, "a draft's experiment has no results to choose from")
        if (experiment.get("winner") or {}).get("treatment"):
            raise ExperimentStateError(row.status, f"the winner is already {experiment['winner']['treatment']!r}")
        experiment["winner"] = {"treatment": treatment, "by": actor, "at": now.isoformat(), "reason": reason.value}
        updated = (
            await Campaign.filter(id=row.id, version=row.version)
            .using_db(conn)
            .update(experiment=experiment, version=row.version + 1, updated_at=now)
        )
        if updated != 1:
            raise ExperimentStateError(row.status, "the campaign changed meanwhile: read it again")
        row.experiment, row.version = experiment, row.version + 1
        run = None
        rest = experiment.get("mode") == ExperimentMode.TEST_THEN_WINNER.value
        if rest and row.status is CampaignStatus.LIVE and row.type is CampaignType.SCHEDULED:
            run = await CampaignRun.create(
                sandbox_id=row.sandbox_id, campaign_id=row.id, scheduled_for=now, using_db=conn
            )
        await record_audit(
            sandbox_id=row.sandbox_id,
            actor=actor,
            action="SELECT_WINNER",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before={"winner": None},
            after={"winner": treatment, "reason": reason.value, "restRunId": run.id if run else None},
            using_db=conn,
        )
    return WinnerChoice(row, run)


async def choose_due_winners(now: datetime) -> list[WinnerChoice]:
    """The dispatcher's step: every LIVE test-then-winner experiment whose test is over and has no winner gets
    one: the statistically significant winner, else its fallback (the control, or the best rate so far)."""
    chosen: list[WinnerChoice] = []
    for campaign in await Campaign.filter(status=CampaignStatus.LIVE, experiment__isnull=False):
        experiment = campaign.experiment or {}
        if experiment.get("mode") != ExperimentMode.TEST_THEN_WINNER.value or experiment.get("winner"):
            continue
        results = await results_of(campaign, now, None)
        if results.status is ExperimentStatus.RUNNING:
            continue
        if results.winner is not None:
            treatment, reason = results.winner, ChoiceReason.SIGNIFICANT
        elif experiment.get("fallback") == ExperimentFallback.BEST_SO_FAR.value:
            metric = ExperimentMetric(experiment["metric"])
            lower = metric in LOWER_IS_BETTER
            treatment = best_so_far(results.comparison.arms, lower_is_better=lower)
            reason = ChoiceReason.FALLBACK_BEST_SO_FAR
        else:
            treatment, reason = experiment["treatments"][0]["key"], ChoiceReason.FALLBACK_CONTROL
        try:
            chosen.append(
                await select_winner(
                    campaign.sandbox_id, campaign.id, treatment, actor=DISPATCHER, now=now, reason=reason
                )
            )
        except ExperimentStateError:  # chosen meanwhile (by a person, or another dispatcher)
            continue
    return chosen
