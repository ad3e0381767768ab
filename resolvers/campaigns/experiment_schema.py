"""`campaignExperimentResults` and `campaignExperimentSelectWinner`: a content experiment's statistics per
treatment, and the manual choice of its winner. The domain decides (models/campaigns/experiment_results.py,
experiment_winner.py); this module translates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from models.campaigns.experiment_results import ExperimentResults as ExperimentResultsValue
from models.campaigns.experiment_results import ExperimentStatus as ExperimentStatusEnum
from models.campaigns.experiment_results import experiment_results
from models.campaigns.experiment_stats import CONFIDENCE
from models.campaigns.experiment_winner import ChoiceReason as ChoiceReasonEnum
from models.campaigns.experiment_winner import ExperimentStateError, select_winner
from models.campaigns.values import CampaignError
from resolvers.campaigns.enums import ExperimentMetric
from resolvers.campaigns.refusals import campaign_error, campaign_not_found, campaign_pk
from resolvers.campaigns.run_types import CampaignRun
from resolvers.campaigns.types import Campaign
from resolvers.context import Info
from resolvers.errors import InvalidInputError, InvalidStateError, NotFoundError
from resolvers.permissions import PUBLISHER, VIEWER
from resolvers.vocabulary import INPUT_ARG, described_enum

ExperimentStatus = described_enum(
    ExperimentStatusEnum,
    name="ExperimentStatus",
    description="Where a content experiment stands.",
    values={
        ExperimentStatusEnum.RUNNING: "Still sending, or a test-then-winner test whose duration is not over.",
        ExperimentStatusEnum.WINNER: "A winner: chosen (see `winnerChosenBy`), or significantly better by the test.",
        ExperimentStatusEnum.INCONCLUSIVE: "Over, and no treatment is significantly better than the others.",
    },
)


ExperimentChoiceReason = described_enum(
    ChoiceReasonEnum,
    name="ExperimentChoiceReason",
    description="Why an experiment's treatment was chosen.",
    values={
        ChoiceReasonEnum.MANUAL: "Chosen by a person (campaignExperimentSelectWinner).",
        ChoiceReasonEnum.SIGNIFICANT: "Chosen by the dispatcher: significantly better at the end of the test.",
        ChoiceReasonEnum.FALLBACK_CONTROL: "No winner at the end of the test: the control went to the rest.",
        ChoiceReasonEnum.FALLBACK_BEST_SO_FAR: "No winner at the end of the test: the best rate went to the rest.",
    },
)


@strawberry.type(description="One treatment's figures on the primary metric (docs/guide.md gives the formulas).")
class TreatmentResult:
    key: str = strawberry.field(description="The treatment's key.")
    name: str = strawberry.field(description="The treatment's name.")
    control: bool = strawberry.field(description="Whether this is the control (the first treatment).")
    recipients: int = strawberry.field(
        description="The metric's denominator: messages sent (CLICK_TO_OPEN: messages opened)."
    )
    count: int = strawberry.field(description="The metric's numerator: messages opened, clicked, unsubscribed from.")
    rate: float | None = strawberry.field(description="count / recipients; null without recipients.")
    rate_low: float | None = strawberry.field(description="Lower bound of the rate's 95 % Wilson score interval.")
    rate_high: float | None = strawberry.field(description="Upper bound of the rate's 95 % Wilson score interval.")
    difference: float | None = strawberry.field(description="rate - the control's rate; null for the control.")
    difference_low: float | None = strawberry.field(description="Lower bound of the difference's 95 % interval.")
    difference_high: float | None = strawberry.field(description="Upper bound of the difference's 95 % interval.")
    relative_lift: float | None = strawberry.field(description="difference / the control's rate.")
    p_value: float | None = strawberry.field(
        description="Two-sided two-proportion z-test (pooled) against the control; null for the control."
    )
    adjusted_p_value: float | None = strawberry.field(
        description="The p-value adjusted by Holm's method over the comparisons with the control."
    )


@strawberry.type(description="A content experiment's results on its primary metric.")
class ExperimentResults:
    campaign: Campaign = strawberry.field(description="The campaign.")
    metric: ExperimentMetric = strawberry.field(description="The primary metric.")
    status: ExperimentStatus = strawberry.field(description="RUNNING, WINNER or INCONCLUSIVE.")
    winner: str | None = strawberry.field(description="The winning treatment's key (status WINNER).")
    winner_chosen_by: str | None = strawberry.field(
        description="Who chose the winner (an API key, or `system:dispatcher`); null while it is only the test's."
    )
    chosen: str | None = strawberry.field(
        description="The treatment recorded as chosen: the winner, or (status INCONCLUSIVE) the fallback sent to "
        "the rest of a test-then-winner audience."
    )
    chosen_reason: ExperimentChoiceReason | None = strawberry.field(description="Why `chosen` was chosen.")
    confidence: float = strawberry.field(description="The confidence level of every interval and test (0.95).")
    held_out: int = strawberry.field(description="Profiles in the holdout (EXCLUDED with reason HOLDOUT).")
    test_ends_at: datetime | None = strawberry.field(description="TEST_THEN_WINNER: when the test duration is over.")
    chi_squared: float | None = strawberry.field(
        description="More than two treatments: the chi-squared statistic of homogeneity over all of them."
    )
    chi_squared_p_value: float | None = strawberry.field(description="Its p-value.")
    treatments: list[TreatmentResult] = strawberry.field(description="Per treatment, the control first.")

    @classmethod
    def from_value(cls, value: ExperimentResultsValue) -> ExperimentResults:
        names = {t["key"]: t.get("name") or "" for t in (value.campaign.experiment or {}).get("treatments", [])}
        return cls(
            campaign=Campaign.from_model(value.campaign),
            metric=value.metric,
            status=value.status,
            winner=value.winner,
            winner_chosen_by=value.chosen_by,
            chosen=value.chosen,
            chosen_reason=ChoiceReasonEnum(value.chosen_reason) if value.chosen_reason else None,
            confidence=CONFIDENCE,
            held_out=value.held_out,
            test_ends_at=value.test_ends_at,
            chi_squared=value.comparison.chi_squared,
            chi_squared_p_value=value.comparison.chi_squared_p_value,
            treatments=[
                TreatmentResult(
                    key=a.key,
                    name=names.get(a.key, ""),
                    control=a.control,
                    recipients=a.recipients,
                    count=a.count,
                    rate=a.rate,
                    rate_low=a.rate_low,
                    rate_high=a.rate_high,
                    difference=a.difference,
                    difference_low=a.difference_low,
                    difference_high=a.difference_high,
                    relative_lift=a.relative_lift,
                    p_value=a.p_value,
                    adjusted_p_value=a.adjusted_p_value,
                )
                for a in value.comparison.arms
            ],
        )


CampaignExperimentResultsResult = Annotated[
    ExperimentResults | NotFoundError,
    strawberry.union("CampaignExperimentResultsResult", description="Result of `campaignExperimentResults`."),
]


@strawberry.input(description="Choose the winner of a campaign's content experiment.")
class CampaignExperimentSelectWinnerInput:
    id: strawberry.ID = strawberry.field(description="The campaign (not a DRAFT).")
    treatment: str = strawberry.field(description="The key of the winning treatment.")


@strawberry.type(description="The winner is recorded (and audited).")
class CampaignExperimentSelectWinnerSuccess:
    campaign: Campaign = strawberry.field(description="The campaign, its experiment's `winner` set.")
    run: CampaignRun | None = strawberry.field(
        description="TEST_THEN_WINNER on a LIVE campaign: the run sending the winner to the rest of the audience."
    )


CampaignExperimentSelectWinnerResult = Annotated[
    CampaignExperimentSelectWinnerSuccess | InvalidInputError | NotFoundError | InvalidStateError,
    strawberry.union("CampaignExperimentSelectWinnerResult", description="Result of `campaignExperimentSelectWinner`."),
]


@strawberry.type
class ExperimentQuery:
    @strawberry.field(
        description="A campaign's content experiment results per treatment: rates with 95 % intervals, the "
        "difference against the control, p-values and the status. NotFoundError when the campaign has none.",
        permission_classes=VIEWER,
    )
    async def campaign_experiment_results(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the campaign.")]
    ) -> CampaignExperimentResultsResult:
        pk = campaign_pk(id)
        if pk is None:
            return campaign_not_found(id)
        try:
            value = await experiment_results(info.context.require_caller().sandbox_id, pk)
        except CampaignError as exc:
            return campaign_error(exc)
        return ExperimentResults.from_value(value)


@strawberry.type
class ExperimentMutation:
    @strawberry.mutation(
        description="Choose the winner of a campaign's content experiment (once; audited). In TEST_THEN_WINNER "
        "mode on a LIVE campaign, a second run sends it to the rest of the audience.",
        permission_classes=PUBLISHER,
    )
    async def campaign_experiment_select_winner(
        self,
        info: Info,
        input: Annotated[CampaignExperimentSelectWinnerInput, strawberry.argument(description=INPUT_ARG)],
    ) -> CampaignExperimentSelectWinnerResult:
        caller = info.context.require_caller()
        pk = campaign_pk(input.id)
        if pk is None:
            return campaign_not_found(input.id)
        try:
            choice = await select_winner(caller.sandbox_id, pk, input.treatment, actor=caller.actor)
        except ExperimentStateError as exc:
            return InvalidStateError(message=str(exc), current_status=exc.current.value, allowed_actions=[])
        except CampaignError as exc:
            return campaign_error(exc)
        if choice.run is not None and info.context.queue is not None:
            await info.context.queue.execute_run(choice.run.id)
        return CampaignExperimentSelectWinnerSuccess(
            campaign=Campaign.from_model(choice.campaign),
            run=CampaignRun.from_model(choice.run) if choice.run is not None else None,
        )
