"""The plan: what activating now would do (audience figures, next runs, duration, experiment arms, rules)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.campaigns.experiment_rules import ArmSize, expected_sizes
from models.campaigns.review_snapshot import CampaignSnapshot
from models.campaigns.rules import NOT_ACTIVATED, CampaignType
from models.campaigns.schedule import fire_times


@dataclass(frozen=True)
class Plan:
    qualified: int | None
    with_identity: int | None
    contactable: int | None
    excluded_by_reason: tuple[tuple[str, int], ...]
    next_run_times: tuple[datetime, ...]
    estimated_duration: timedelta | None  # None: no throttle or no estimate
    reviewed_version: int
    # A content experiment: the expected recipients of each treatment, of the holdout and (test then winner) of
    # the rest, out of the contactable profiles.
    arms: tuple[ArmSize, ...] = ()
    excluded_by_rules: tuple[tuple[str, int], ...] = ()  # FREQUENCY_CAPPED, QUIET_HOURS (estimated)
    delayed_share: float | None = None  # of the contactable audience; None: no rule set or no estimate


def estimated_duration(contactable: int, throttle: int | None) -> timedelta | None:
    """How long sending to `contactable` profiles takes at `throttle` messages per second."""
    if throttle is None or throttle <= 0:
        return None
    return timedelta(seconds=math.ceil(contactable / throttle))


def next_run_times(snapshot: CampaignSnapshot, now: datetime, *, count: int = 5) -> list[datetime]:
    """The next fire times from `now`; a draft is taken as activated now."""
    if snapshot.type is CampaignType.API_TRIGGERED:
        return []
    activated_at = now if snapshot.status in NOT_ACTIVATED else snapshot.activated_at
    return fire_times(snapshot.schedule, window_start=now, activated_at=activated_at, limit=count)


def plan(snapshot: CampaignSnapshot, now: datetime, *, runs: int = 5) -> Plan:
    estimate = snapshot.audience.estimate
    return Plan(
        qualified=estimate.qualified if estimate else None,
        with_identity=estimate.with_identity if estimate else None,
        contactable=estimate.contactable if estimate else None,
        excluded_by_reason=estimate.excluded_by_reason if estimate else (),
        next_run_times=tuple(next_run_times(snapshot, now, count=runs)),
        estimated_duration=estimated_duration(estimate.contactable, snapshot.throttle) if estimate else None,
        reviewed_version=snapshot.version,
        arms=tuple(expected_sizes(snapshot.experiment, estimate.contactable))
        if estimate and snapshot.experiment
        else (),
        **_rules_plan(snapshot),
    )


def _rules_plan(snapshot: CampaignSnapshot) -> dict:
    rules, estimate = snapshot.business_rules, snapshot.audience.estimate
    if rules is None or estimate is None:
        return {}
    excluded = (("FREQUENCY_CAPPED", rules.capped), ("QUIET_HOURS", rules.quiet_skipped))
    share = rules.delayed / estimate.contactable if estimate.contactable else 0.0
    return {"excluded_by_rules": tuple((r, n) for r, n in excluded if n), "delayed_share": round(share, 4)}
