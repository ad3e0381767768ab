"""Per-recipient event payloads, written for webhook endpoints (models/webhooks): a batch's sends, a receipt, an
open or a click. Part of models/outbox/payloads (which registers their topics)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from models.outbox.payload_fields import PayloadError, read_field, read_time

DELIVERY_OUTCOMES_TOPIC = "delivery.outcomes"
RECIPIENT_EVENT_TOPIC = "recipient.event"

# What became of deliveries (one kind per event): SENT, DELIVERED, BOUNCED or FAILED.
DELIVERY_OUTCOMES = frozenset({"SENT", "DELIVERED", "BOUNCED", "FAILED"})
# What a recipient did, or a provider reported of them.
RECIPIENT_EVENT_KINDS = frozenset({"OPEN", "CLICK", "UNSUBSCRIBE", "COMPLAINT"})


@dataclass(frozen=True)
class DeliveryRef:
    """One delivery of a DeliveryOutcomes event."""

    delivery_id: int
    profile_id: int
    reason: str | None = None  # a DeliveryReason value for BOUNCED and FAILED

    def to_json(self) -> dict[str, Any]:
        return {"deliveryId": self.delivery_id, "profileId": self.profile_id, "reason": self.reason}


@dataclass(frozen=True)
class DeliveryOutcomes:
    """Deliveries of one run that reached one outcome in one transaction (a batch's sends, or one receipt):
    a partner gets a 500-row batch as one webhook, not 500."""

    topic: ClassVar[str] = DELIVERY_OUTCOMES_TOPIC

    outcome: str  # one of DELIVERY_OUTCOMES
    campaign_id: int
    run_id: int
    at: datetime
    deliveries: tuple[DeliveryRef, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "campaignId": self.campaign_id,
            "runId": self.run_id,
            "at": self.at.isoformat(),
            "deliveries": [d.to_json() for d in self.deliveries],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeliveryOutcomes:
        t = cls.topic
        outcome = read_field(data, t, "outcome", (str,))
        if outcome not in DELIVERY_OUTCOMES:
            raise PayloadError(f"{t}: 'outcome' is not a delivery outcome: {outcome!r}")
        items = read_field(data, t, "deliveries", (list,))
        deliveries = []
        for item in items:
            if not isinstance(item, dict):
                raise PayloadError(f"{t}: 'deliveries' holds a {type(item).__name__}, not an object")
            deliveries.append(
                DeliveryRef(
                    delivery_id=read_field(item, t, "deliveryId", (int,)),
                    profile_id=read_field(item, t, "profileId", (int,)),
                    reason=read_field(item, t, "reason", (str,), optional=True),
                )
            )
        return cls(
            outcome=outcome,
            campaign_id=read_field(data, t, "campaignId", (int,)),
            run_id=read_field(data, t, "runId", (int,)),
            at=read_time(data, t, "at"),
            deliveries=tuple(deliveries),
        )


@dataclass(frozen=True)
class RecipientEvent:
    """An open, a click, an unsubscribe or a complaint, on one delivery."""

    topic: ClassVar[str] = RECIPIENT_EVENT_TOPIC

    kind: str  # one of RECIPIENT_EVENT_KINDS
    campaign_id: int
    run_id: int
    delivery_id: int
    profile_id: int
    at: datetime
    link_id: int | None = None  # CLICK: the tracked link

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "campaignId": self.campaign_id,
            "runId": self.run_id,
            "deliveryId": self.delivery_id,
            "profileId": self.profile_id,
            "at": self.at.isoformat(),
            "linkId": self.link_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecipientEvent:
        t = cls.topic
        kind = read_field(data, t, "kind", (str,))
        if kind not in RECIPIENT_EVENT_KINDS:
            raise PayloadError(f"{t}: 'kind' is not a recipient event: {kind!r}")
        return cls(
            kind=kind,
            campaign_id=read_field(data, t, "campaignId", (int,)),
            run_id=read_field(data, t, "runId", (int,)),
            delivery_id=read_field(data, t, "deliveryId", (int,)),
            profile_id=read_field(data, t, "profileId", (int,)),
            at=read_time(data, t, "at"),
            link_id=read_field(data, t, "linkId", (int,), optional=True),
        )
