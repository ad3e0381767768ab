"""Waves: valid, not with local-time delivery, and warned of when some starts have passed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from models.campaigns.review.alerts import Alert, AlertCode, alert
from models.campaigns.review_snapshot import CampaignSnapshot
from models.campaigns.waves import validate_waves


def check_waves(s: CampaignSnapshot, now: datetime) -> Iterator[Alert]:
    if s.waves is None:
        return
    for problem in validate_waves(s.waves):
        yield alert(AlertCode.WAVES_INVALID, f"waves.{problem.field}", problem.message)
    if s.schedule.local_time:
        yield alert(AlertCode.WAVES_INVALID, "waves", "Waves cannot be combined with PROFILE_TIME_ZONE delivery.")
    if s.waves.start_times and s.waves.start_times[0] < now:
        yield alert(
            AlertCode.WAVE_START_IN_PAST,
            "waves.startTimes",
            "Some wave start times have passed: those waves start as soon as the previous one is finished.",
        )
