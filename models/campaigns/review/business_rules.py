"""Business rules: a warning when they would exclude most of the contactable audience now."""

from __future__ import annotations

from collections.abc import Iterator

from models.campaigns.review.alerts import Alert, AlertCode, alert
from models.campaigns.review_snapshot import CampaignSnapshot


def check_business_rules(s: CampaignSnapshot) -> Iterator[Alert]:
    rules, estimate = s.business_rules, s.audience.estimate
    if rules is None or estimate is None or estimate.contactable == 0:
        return
    excluded = rules.capped + rules.quiet_skipped
    if excluded * 2 > estimate.contactable:
        yield alert(
            AlertCode.BUSINESS_RULES_EXCLUDE_MOST,
            "businessRuleSetId",
            f"The business rules of {rules.rule_set_name!r} would exclude about {excluded} of the "
            f"{estimate.contactable} contactable profiles now (frequency caps: {rules.capped}, quiet hours: "
            f"{rules.quiet_skipped}).",
        )
