"""The review of a campaign in GraphQL: its alerts and its plan (`campaignReview`, `ReviewFailedError`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import strawberry

from models.campaigns.reviewing import ReviewResult
from models.ledger.vocabulary import DeliveryReason as DeliveryReasonEnum
from resolvers.campaigns.enums import AlertCode, AlertSeverity, ExperimentArm
from resolvers.errors import Error
from resolvers.vocabulary import DeliveryReason


@strawberry.type(description="A finding of the review: errors block activation, warnings do not.")
class ReviewAlert:
    severity: AlertSeverity = strawberry.field(description="ERROR or WARNING.")
    code: AlertCode = strawberry.field(description="Stable code.")
    field: str = strawberry.field(description="Path of the campaign field concerned, e.g. `content.email.subject`.")
    message: str = strawberry.field(description="What is wrong, for a person.")


@strawberry.type(description="A count of excluded profiles for one reason.")
class ExclusionCount:
    reason: DeliveryReason = strawberry.field(  # type: ignore[valid-type]
        description="The reason, as the run's audience snapshot will write it."
    )
    count: int = strawberry.field(description="Profiles excluded for it.")


@strawberry.type(description="The expected size of one arm of a content experiment.")
class ExperimentArmEstimate:
    treatment: str | None = strawberry.field(description="The treatment's key; null for the holdout and the rest.")
    arm: ExperimentArm = strawberry.field(description="TEST (sent the treatment), HOLDOUT or REST.")
    expected: float = strawberry.field(description="Expected recipients (a share of the contactable profiles).")


@strawberry.type(description="What activating now would do.")
class CampaignPlan:
    qualified: int | None = strawberry.field(description="Profiles in the segment now.")
    with_identity: int | None = strawberry.field(description="Of those, with an identity in the namespace.")
    contactable: int | None = strawberry.field(description="Of those, reachable (address, consent, not suppressed).")
    excluded_by_reason: list[ExclusionCount] = strawberry.field(description="Why the others are excluded.")
    next_run_times: list[datetime] = strawberry.field(description="The next scheduled runs (UTC).")
    estimated_duration_seconds: int | None = strawberry.field(
        description="Time to send one run at the throttle; null without throttle."
    )
    reviewed_version: int = strawberry.field(description="The campaign version this review judged.")
    experiment_arms: list[ExperimentArmEstimate] = strawberry.field(
        default_factory=list,
        description="A content experiment: the expected recipients of each treatment, of the holdout and (test "
        "then winner) of the rest awaiting the winner; empty without an experiment.",
    )
    excluded_by_business_rules: list[ExclusionCount] = strawberry.field(
        description="Of the contactable, the sends the business rules would exclude now (FREQUENCY_CAPPED, "
        "QUIET_HOURS), estimated from a sample of up to 2,000 profiles; empty without a rule set."
    )
    delayed_share: float | None = strawberry.field(
        description="Of the contactable, the share quiet hours would delay now (0 to 1, estimated); null without "
        "a rule set."
    )


@strawberry.type(description="The review of a campaign: alerts and the plan.")
class CampaignReview:
    can_activate: bool = strawberry.field(description="True when no alert is an ERROR.")
    alerts: list[ReviewAlert] = strawberry.field(description="Errors and warnings.")
    plan: CampaignPlan = strawberry.field(description="Audience estimate and next runs.")


def seconds(value: timedelta | None) -> int | None:
    return int(value.total_seconds()) if value is not None else None


@strawberry.type(
    name="ReviewFailedError", description="Activation refused: the review found errors. Nothing was changed."
)
class ReviewFailedErrorType(Error):  # GraphQL name: ReviewFailedError (the domain exception has the plain name)
    alerts: list[ReviewAlert] = strawberry.field(description="All alerts of the review, errors and warnings.")


def review_alert(alert: Any) -> ReviewAlert:
    return ReviewAlert(severity=alert.severity, code=alert.code, field=alert.field, message=alert.message)


def review_answer(result: ReviewResult) -> CampaignReview:
    """The GraphQL answer of `campaignReview` from the domain's review (models/campaigns/reviewing.py)."""
    p = result.plan
    return CampaignReview(
        can_activate=result.can_activate,
        alerts=[review_alert(a) for a in result.alerts],
        plan=CampaignPlan(
            qualified=p.qualified,
            with_identity=p.with_identity,
            contactable=p.contactable,
            excluded_by_reason=[
                ExclusionCount(reason=DeliveryReasonEnum.of(r), count=n) for r, n in p.excluded_by_reason
            ],
            next_run_times=list(p.next_run_times),
            estimated_duration_seconds=seconds(p.estimated_duration),
            reviewed_version=p.reviewed_version,
            experiment_arms=[
                ExperimentArmEstimate(treatment=a.treatment, arm=a.arm, expected=a.expected) for a in p.arms
            ],
            excluded_by_business_rules=[
                ExclusionCount(reason=DeliveryReasonEnum.of(r), count=n) for r, n in p.excluded_by_rules
            ],
            delayed_share=p.delayed_share,
        ),
    )
