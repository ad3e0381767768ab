"""The audience: a segment (scheduled campaigns) and an identity namespace that exist, and someone to contact."""

from __future__ import annotations

from collections.abc import Iterator

from models.campaigns.review.alerts import Alert, AlertCode, alert
from models.campaigns.review_snapshot import CampaignSnapshot
from models.campaigns.rules import CampaignType


def check_audience(s: CampaignSnapshot) -> Iterator[Alert]:
    a = s.audience
    triggered = s.type is CampaignType.API_TRIGGERED
    if not triggered:
        if a.segment_id is None:
            yield alert(AlertCode.AUDIENCE_MISSING, "audience.segment", "Choose the audience to target.")
        elif not a.segment_exists:
            yield alert(AlertCode.SEGMENT_NOT_FOUND, "audience.segment", "The selected segment no longer exists.")
    if a.namespace_code is None:
        yield alert(AlertCode.NAMESPACE_MISSING, "audience.namespace", "Choose the identity namespace.")
    elif not a.namespace_exists:
        yield alert(AlertCode.NAMESPACE_NOT_FOUND, "audience.namespace", f"No identity namespace {a.namespace_code!r}.")
    if not triggered and a.segment_exists and a.estimate is not None and a.estimate.contactable == 0:
        what = "has no member" if a.estimate.qualified == 0 else "has no member that can be contacted"
        yield alert(AlertCode.AUDIENCE_EMPTY, "audience.segment", f"The audience {what}.")
