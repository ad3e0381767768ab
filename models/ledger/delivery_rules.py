"""The delivery's status machine. Pure: imports neither Tortoise nor Strawberry.

Every status write on deliveries is a set-based function of the ledger package whose WHERE is built from
`sources_sql(transition)`, so a row outside the allowed from-statuses is never touched. Deliveries get no
audit row per change, unlike runs and campaigns: a run writes millions of them (claim, outcome, receipt), and
the ledger row itself (status, reason, attempts, timestamps) is their record.
"""

from __future__ import annotations

from enum import StrEnum

from models.ledger.vocabulary import DeliveryStatus


class DeliveryTransition(StrEnum):
    THROTTLE_CUT = "THROTTLE_CUT"  # the snapshot cuts what the throttle cannot send in its window
    HOLDOUT = "HOLDOUT"  # the snapshot keeps an experiment's holdout (and the rest awaiting a winner) back
    CLAIM = "CLAIM"  # a sender takes due rows (or rows whose lease expired) with a lease
    OUTCOME = "OUTCOME"  # the send's result: sent, retry later, failed, soft bounce
    CANCEL = "CANCEL"  # an aborted run's unsent rows
    RECEIPT = "RECEIPT"  # the provider says it was delivered
    BOUNCE = "BOUNCE"  # the provider says it bounced (possibly after a receipt)
    RESEND = "RESEND"  # campaignRunResendFailed: a retryable failure goes back to the queue
    CONFIRM = "CONFIRM"  # a status callback names an UNCONFIRMED send: the provider has it
    SETTLE = "SETTLE"  # the unconfirmed window ended without a callback: failed, or queued again (policy)
    BUSINESS_RULE = "BUSINESS_RULE"  # a claimed row is capped or skipped (EXCLUDED), or delayed by quiet hours
    # An in-app message: taken, written to the inbox and recorded in one transaction (jobs/inapp_direct.py).
    DELIVER = "DELIVER"


_D = DeliveryStatus
_T = DeliveryTransition

# transition -> (from-statuses, to-statuses). Rows are inserted QUEUED or EXCLUDED by the snapshot only.
DELIVERY_TRANSITIONS: dict[DeliveryTransition, tuple[tuple[DeliveryStatus, ...], frozenset[DeliveryStatus]]] = {
    _T.THROTTLE_CUT: ((_D.QUEUED,), frozenset({_D.EXCLUDED})),
    _T.HOLDOUT: ((_D.QUEUED,), frozenset({_D.EXCLUDED})),
    _T.CLAIM: ((_D.QUEUED, _D.SENDING), frozenset({_D.SENDING})),
    _T.OUTCOME: ((_D.SENDING,), frozenset({_D.SENT, _D.QUEUED, _D.FAILED, _D.BOUNCED, _D.UNCONFIRMED})),
    _T.CANCEL: ((_D.TARGETED, _D.QUEUED, _D.SENDING), frozenset({_D.CANCELLED})),
    _T.RECEIPT: ((_D.SENT,), frozenset({_D.DELIVERED})),
    # A bounce can follow a delivery receipt (accepted by the next hop, refused later), never the reverse.
    _T.BOUNCE: ((_D.SENT, _D.DELIVERED), frozenset({_D.BOUNCED})),
    _T.RESEND: ((_D.FAILED,), frozenset({_D.QUEUED})),
    _T.CONFIRM: ((_D.UNCONFIRMED,), frozenset({_D.SENT})),
    _T.SETTLE: ((_D.UNCONFIRMED,), frozenset({_D.FAILED, _D.QUEUED})),
    # Checked after the claim, under a lock per profile (models/business_rules/enforcement.py).
    _T.BUSINESS_RULE: ((_D.SENDING,), frozenset({_D.EXCLUDED, _D.QUEUED})),
    # SENDING: a row whose lease expired, taken over from a sender of the leased path.
    _T.DELIVER: ((_D.QUEUED, _D.SENDING), frozenset({_D.SENT, _D.FAILED})),
}
SNAPSHOT_STATUSES = frozenset({_D.QUEUED, _D.EXCLUDED})


def sources(transition: DeliveryTransition) -> tuple[DeliveryStatus, ...]:
    return DELIVERY_TRANSITIONS[transition][0]


def sources_sql(transition: DeliveryTransition, column: str = "status") -> str:
    """`status IN ('A', 'B')` for the transition's from-statuses (constants of this module, no user input)."""
    return f"{column} IN ({', '.join(repr(s.value) for s in sources(transition))})"


def check_target(transition: DeliveryTransition, target: DeliveryStatus) -> DeliveryStatus:
    if target not in DELIVERY_TRANSITIONS[transition][1]:
        raise ValueError(f"{transition.value} cannot lead to {target.value}")
    return target
