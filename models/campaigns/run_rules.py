"""The run's status machine (DESIGN §6), beside campaign_rules. Pure: imports neither Tortoise nor Strawberry.

`models.campaigns.transitions.transition_run` is the one writer of a run's status; it asks `run_target` here.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    # Sending stopped by a credential or configuration failure at the provider; resumed by campaignRunResume.
    PAUSED = "PAUSED"


class RunEvent(StrEnum):
    CLAIM = "CLAIM"  # a worker takes a PENDING run
    RESUME = "RESUME"  # a worker takes over a RUNNING run whose lease expired
    SUCCEED = "SUCCEED"
    FAIL = "FAIL"
    CANCEL = "CANCEL"  # a stop (a running run only when the stop aborts it), or a stopped campaign's first claim
    RESEND = "RESEND"  # campaignRunResendFailed re-opens a finished run
    PAUSE = "PAUSE"  # a batch showed a credential or configuration failure: stop sending, keep the rest QUEUED
    UNPAUSE = "UNPAUSE"  # campaignRunResume, once the preset is fixed and ACTIVE again


class RunOutcomeReason(StrEnum):
    """Why a run ended as it did, when its counters alone would mislead."""

    # The snapshot found nobody in the segment: SUCCEEDED with nothing to send, on purpose.
    AUDIENCE_EMPTY = "AUDIENCE_EMPTY"


class RunPauseReason(StrEnum):
    """Why a run stopped sending without failing: the provider refused the sender, not the recipients."""

    CREDENTIALS_REFUSED = "CREDENTIALS_REFUSED"  # SMTP login refused, Twilio 401, FCM access token refused
    PROVIDER_CONFIGURATION = "PROVIDER_CONFIGURATION"  # STARTTLS missing, an untrusted certificate
    SENDER_REFUSED = "SENDER_REFUSED"  # most of a batch refused for the sender (SMTP 5.7.x policy, relaying)


# Delivery reasons (models.ledger.vocabulary.DeliveryReason values) that pause a run wherever they appear: the
# preset's credentials or setup, the same for every recipient.
PAUSING_REASONS: dict[str, RunPauseReason] = {
    "AUTH_FAILED": RunPauseReason.CREDENTIALS_REFUSED,
    "CONFIGURATION": RunPauseReason.PROVIDER_CONFIGURATION,
}
# Sender-side refusals pause when they are at least this share of a batch's sends and at least
# SENDER_REFUSED_MIN of them (one remote domain's blocklist should not stop a run).
SENDER_REFUSED_REASON = "SENDER_REJECTED"
SENDER_REFUSED_SHARE = 0.5
SENDER_REFUSED_MIN = 3


def pause_reason_of(reasons: Sequence[str | None]) -> RunPauseReason | None:
    """Whether a batch's send outcomes (their reasons, None for a sent message) pause the run, and why."""
    for reason in reasons:
        if reason in PAUSING_REASONS:
            return PAUSING_REASONS[reason]
    refused = sum(1 for r in reasons if r == SENDER_REFUSED_REASON)
    if refused and refused >= min(SENDER_REFUSED_MIN, len(reasons)) and refused >= SENDER_REFUSED_SHARE * len(reasons):
        return RunPauseReason.SENDER_REFUSED
    return None


_R = RunStatus
_E = RunEvent

# event -> (statuses it may start from, status it leads to). The only place the run's machine is written down.
RUN_TRANSITIONS: dict[RunEvent, tuple[frozenset[RunStatus], RunStatus]] = {
    _E.CLAIM: (frozenset({_R.PENDING}), _R.RUNNING),
    _E.RESUME: (frozenset({_R.RUNNING}), _R.RUNNING),
    _E.SUCCEED: (frozenset({_R.RUNNING}), _R.SUCCEEDED),
    _E.FAIL: (frozenset({_R.RUNNING}), _R.FAILED),
    _E.CANCEL: (frozenset({_R.PENDING, _R.RUNNING, _R.PAUSED}), _R.CANCELLED),
    _E.RESEND: (frozenset({_R.SUCCEEDED, _R.FAILED}), _R.RUNNING),
    _E.PAUSE: (frozenset({_R.RUNNING}), _R.PAUSED),
    _E.UNPAUSE: (frozenset({_R.PAUSED}), _R.RUNNING),
}

FINAL_RUN_STATUSES = frozenset({_R.SUCCEEDED, _R.FAILED, _R.CANCELLED})


class InvalidRunTransition(Exception):
    def __init__(self, current: RunStatus, event: RunEvent) -> None:
        self.current, self.event = current, event
        super().__init__(f"a {current.value} run cannot {event.value.lower()}")


def run_target(current: RunStatus, event: RunEvent) -> RunStatus:
    """The status `event` leads to from `current`, or InvalidRunTransition."""
    sources, target = RUN_TRANSITIONS[event]
    if RunStatus(current) not in sources:
        raise InvalidRunTransition(RunStatus(current), event)
    return target


def run_sources(event: RunEvent) -> frozenset[RunStatus]:
    return RUN_TRANSITIONS[event][0]
