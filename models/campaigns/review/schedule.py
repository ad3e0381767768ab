"""When and how fast: a valid schedule, and a throttle that serves the audience within 12 hours."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from models.campaigns.review.alerts import Alert, AlertCode, alert
from models.campaigns.review.plan import estimated_duration
from models.campaigns.review_snapshot import CampaignSnapshot
from models.campaigns.rules import NOT_ACTIVATED, CampaignType, Channel
from models.campaigns.schedule import ScheduleCode, validate_schedule

THROTTLE_MIN, THROTTLE_MAX = 1, 2000
THROTTLE_WINDOW = timedelta(hours=12)


def check_schedule(s: CampaignSnapshot, now: datetime) -> Iterator[Alert]:
    if s.type is CampaignType.API_TRIGGERED:
        return
    schedule = s.schedule
    problems = validate_schedule(schedule)
    for problem in problems:
        code = (
            AlertCode.END_BEFORE_START if problem.code is ScheduleCode.END_BEFORE_START else AlertCode.FREQUENCY_INVALID
        )
        yield alert(code, f"schedule.{problem.field}", problem.message)
    if schedule.recurring and s.channel is Channel.IN_APP:
        yield alert(AlertCode.FREQUENCY_INVALID, "schedule.frequency", "In-app messages cannot recur.")
    if problems:
        return
    if s.status in NOT_ACTIVATED:
        if schedule.start_at is not None and schedule.start_at < now:
            yield alert(AlertCode.START_IN_PAST, "schedule.startAt", "The start is in the past.")
        elif schedule.start_at is None and schedule.end_at is not None and schedule.end_at < now:
            yield alert(AlertCode.END_BEFORE_START, "schedule.endAt", "The end is before an activation now.")
    if schedule.recurring and schedule.end_at is None:
        yield alert(
            AlertCode.RECURRING_WITHOUT_END, "schedule.endAt", "A recurring campaign without an end runs until stopped."
        )


def check_throttle(s: CampaignSnapshot) -> Iterator[Alert]:
    if s.throttle is None:
        return
    if not THROTTLE_MIN <= s.throttle <= THROTTLE_MAX:
        yield alert(
            AlertCode.THROTTLE_OUT_OF_RANGE,
            "throttle",
            f"The throttle must be between {THROTTLE_MIN} and {THROTTLE_MAX} messages per second.",
        )
        return
    estimate = s.audience.estimate
    if s.type is CampaignType.SCHEDULED and estimate is not None:
        duration = estimated_duration(estimate.contactable, s.throttle)
        if duration is not None and duration > THROTTLE_WINDOW:
            served = int(THROTTLE_WINDOW.total_seconds()) * s.throttle
            yield alert(
                AlertCode.THROTTLE_TOO_SLOW,
                "throttle",
                f"At {s.throttle}/s only {served} of {estimate.contactable} profiles can be served in 12 hours; "
                "the rest will be excluded.",
            )
