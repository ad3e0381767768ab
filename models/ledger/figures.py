"""The one definition of every delivery counter (DESIGN §7), shared by `CampaignRun`, `CampaignRunProgress`,
`campaign.summary` and `campaignReport`: a pure fold of `(status, reason, bounce_type, n)` ledger groups, and
one description per counter name that every GraphQL type reuses. Pure: no tortoise, no strawberry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.ledger.vocabulary import DeliveryReason, DeliveryStatus

HARD, SOFT = "HARD", "SOFT"
HARD_BOUNCE_REASON = DeliveryReason.HARD_BOUNCE.value
_QUIET = DeliveryReason.QUIET_HOURS.value
_EX, _SENT, _DEL = DeliveryStatus.EXCLUDED.value, DeliveryStatus.SENT.value, DeliveryStatus.DELIVERED.value
_BOUNCED, _FAILED, _Q = DeliveryStatus.BOUNCED.value, DeliveryStatus.FAILED.value, DeliveryStatus.QUEUED.value

# One meaning per name, written once: the four types take their field descriptions from here.
COUNTER_DESCRIPTIONS: dict[str, str] = {
    "audience": "Profiles in the audience snapshot, before exclusions (one per run and profile).",
    "targeted": "Profiles to send to: the audience minus the excluded.",
    "excluded": "Profiles excluded before sending, each with a reason (no identity, no consent, suppressed, …).",
    "sent": "Messages the provider took: the delivered plus those bounced since (errors were never sent).",
    "delivered": "Messages accepted by the provider and not bounced since (SENT or DELIVERED in the ledger).",
    "failed": "Messages that will not arrive and are not retried: bounces plus errors.",
    "pending": "Messages not sent yet: queued, being sent, waiting for a retry, or sent with no answer yet "
    "(UNCONFIRMED, until the provider's callback or the window settles it).",
    "retrying": "Messages waiting for another attempt after a temporary failure (counted in pending).",
    "delayed": "Messages held back by quiet hours, waiting for them to end (counted in pending).",
}


@dataclass(frozen=True, slots=True)
class DeliveryFigures:
    audience: int = 0
    excluded: int = 0
    excluded_by_reason: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    delivered: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    bounces_by_reason: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    retrying: int = 0
    retrying_by_reason: dict[str, int] = field(default_factory=dict)
    delayed: int = 0
    cancelled: int = 0
    unconfirmed: int = 0  # counted in pending

    @property
    def targeted(self) -> int:
        return self.audience - self.excluded

    @property
    def bounces(self) -> int:
        return self.hard_bounces + self.soft_bounces

    @property
    def failed(self) -> int:
        return self.bounces + self.errors

    def error_count(self, reason: str | None) -> int:
        """Deliveries now failed, bounced or waiting for a retry with `reason`."""
        if reason is None:
            return 0
        return (
            self.errors_by_reason.get(reason, 0)
            + self.bounces_by_reason.get(reason, 0)
            + self.retrying_by_reason.get(reason, 0)
        )


def delivery_figures(groups: list[Mapping[str, Any]]) -> DeliveryFigures:
    """Folds `(status, reason, bounce_type, n)` groups into the figures:
    - audience: every ledger row; excluded: EXCLUDED rows, by reason; targeted: audience - excluded
    - delivered: SENT or DELIVERED (accepted by the provider and not bounced since)
    - bounces: BOUNCED rows (soft unless bounce_type is HARD) plus FAILED rows whose reason is HARD_BOUNCE (an
      SMTP 5xx refusal of the recipient during the send); sent: delivered + bounces
    - errors: the other FAILED rows (the message could not be sent), by reason; failed: bounces + errors
    - pending: TARGETED, QUEUED, SENDING or UNCONFIRMED; unconfirmed: UNCONFIRMED
    - retrying: QUEUED rows with a reason (a temporary failure), but delayed: QUEUED rows held back by quiet
      hours (reason QUIET_HOURS)
    - cancelled: CANCELLED"""
    totals: dict[str, int] = {}
    excluded_by: dict[str, int] = {}
    bounces_by: dict[str, int] = {}
    errors_by: dict[str, int] = {}
    retrying_by: dict[str, int] = {}
    hard = soft = delayed = 0
    for row in groups:
        status, n = row["status"], int(row["n"])
        reason = row["reason"] or DeliveryReason.UNKNOWN.value
        totals[status] = totals.get(status, 0) + n
        if status == _EX:
            excluded_by[reason] = excluded_by.get(reason, 0) + n
        elif (status == _FAILED and reason == HARD_BOUNCE_REASON) or (
            status == _BOUNCED and row["bounce_type"] == HARD
        ):
            hard += n
            bounces_by[reason] = bounces_by.get(reason, 0) + n
        elif status == _BOUNCED:
            soft += n
            bounces_by[reason] = bounces_by.get(reason, 0) + n
        elif status == _FAILED:
            errors_by[reason] = errors_by.get(reason, 0) + n
        elif status == _Q and row["reason"] == _QUIET:
            delayed += n
        elif status == _Q and row["reason"]:
            retrying_by[reason] = retrying_by.get(reason, 0) + n
    delivered = totals.get(_SENT, 0) + totals.get(_DEL, 0)
    pending = sum(
        totals.get(s.value, 0)
        for s in (DeliveryStatus.TARGETED, DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.UNCONFIRMED)
    )
    return DeliveryFigures(
        audience=sum(totals.values()),
        excluded=totals.get(_EX, 0),
        excluded_by_reason=_sorted(excluded_by),
        sent=delivered + hard + soft,
        delivered=delivered,
        hard_bounces=hard,
        soft_bounces=soft,
        bounces_by_reason=_sorted(bounces_by),
        errors=sum(errors_by.values()),
        errors_by_reason=_sorted(errors_by),
        pending=pending,
        retrying=sum(retrying_by.values()),
        retrying_by_reason=_sorted(retrying_by),
        delayed=delayed,
        cancelled=totals.get(DeliveryStatus.CANCELLED.value, 0),
        unconfirmed=totals.get(DeliveryStatus.UNCONFIRMED.value, 0),
    )


def _sorted(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
