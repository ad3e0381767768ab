"""The run's status machine (DESIGN §6), beside campaign_rules. Pure: imports neither Tortoise nor Strawberry.

`models.campaigns.transitions.transition_run` is the one writer of a run's status; it asks `run_target` here.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class RunEvent(StrEnum):
    CLAIM = "CLAIM"  # a worker takes a PENDING run
    RESUME = "RESUME"  # a worker takes over a RUNNING run whose lease expired
    SUCCEED = "SUCCEED"
    FAIL = "FAIL"
    CANCEL = "CANCEL"  # a stop (a running run only when the stop aborts it), or a stopped campaign's first claim
    RESEND = "RESEND"  # campaignRunResendFailed re-opens a finished run


class RunOutcomeReason(StrEnum):
    """Why a run ended as it did, when its counters alone would mislead."""

    # The snapshot found nobody in the segment: SUCCEEDED with nothing to send, on purpose.
    AUDIENCE_EMPTY = "AUDIENCE_EMPTY"


_R = RunStatus
_E = RunEvent

# event -> (statuses it may start from, status it leads to). The only place the run's machine is written down.
RUN_TRANSITIONS: dict[RunEvent, tuple[frozenset[RunStatus], RunStatus]] = {
    _E.CLAIM: (frozenset({_R.PENDING}), _R.RUNNING),
    _E.RESUME: (frozenset({_R.RUNNING}), _R.RUNNING),
    _E.SUCCEED: (frozenset({_R.RUNNING}), _R.SUCCEEDED),
    _E.FAIL: (frozenset({_R.RUNNING}), _R.FAILED),
    _E.CANCEL: (frozenset({_R.PENDING, _R.RUNNING}), _R.CANCELLED),
    _E.RESEND: (frozenset({_R.SUCCEEDED, _R.FAILED}), _R.RUNNING),
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
