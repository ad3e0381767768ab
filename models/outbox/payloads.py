"""Typed event payloads, one per topic: what the outbox stores, the relay publishes and subscriptions read.

Pure (no tortoise, no strawberry). Keys on the wire are camelCase, as GraphQL shows them. `parse` refuses
malformed input with PayloadError naming the topic and the field, so a subscriber can log and skip it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from models.campaigns.rules import CampaignStatus
from models.outbox.payload_fields import PayloadError, read_campaign_status, read_field, read_time

# Per-recipient facts, written for webhook endpoints: their own module, part of this one's vocabulary.
from models.outbox.recipient_payloads import (
    DELIVERY_OUTCOMES,
    DELIVERY_OUTCOMES_TOPIC,
    RECIPIENT_EVENT_KINDS,
    RECIPIENT_EVENT_TOPIC,
    DeliveryOutcomes,
    DeliveryRef,
    RecipientEvent,
)

CAMPAIGN_STATUS_TOPIC = "campaign.status"
CAMPAIGN_RUN_PROGRESS_TOPIC = "campaign.run.progress"
CAMPAIGN_VERSION_TOPIC = "campaign.version.published"
TRIGGER_ACCEPTED_TOPIC = "trigger.accepted"
TRIGGER_PROGRESS_TOPIC = "trigger.progress"

__all__ = [
    "DELIVERY_OUTCOMES",
    "DELIVERY_OUTCOMES_TOPIC",
    "RECIPIENT_EVENT_KINDS",
    "RECIPIENT_EVENT_TOPIC",
    "DeliveryOutcomes",
    "DeliveryRef",
    "PayloadError",
    "RecipientEvent",
]

RUN_STATUSES = frozenset({"PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "PAUSED"})


@dataclass(frozen=True)
class CampaignStatusChanged:
    topic: ClassVar[str] = CAMPAIGN_STATUS_TOPIC

    campaign_id: int
    status: CampaignStatus
    previous_status: CampaignStatus | None  # None when the campaign was created
    version: int  # the campaign's version after the change
    at: datetime
    actor: str | None = None  # an API key's actor, or "system:dispatcher" / "system:worker"

    def to_json(self) -> dict[str, Any]:
        return {
            "campaignId": self.campaign_id,
            "status": self.status.value,
            "previousStatus": self.previous_status.value if self.previous_status else None,
            "version": self.version,
            "at": self.at.isoformat(),
            "actor": self.actor,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CampaignStatusChanged:
        t = cls.topic
        status = read_campaign_status(data, t, "status")
        assert status is not None
        return cls(
            campaign_id=read_field(data, t, "campaignId", (int,)),
            status=status,
            previous_status=read_campaign_status(data, t, "previousStatus", optional=True),
            version=read_field(data, t, "version", (int,)),
            at=read_time(data, t, "at"),
            actor=read_field(data, t, "actor", (str,), optional=True),
        )


_WAVE_COUNTERS = ("targeted", "excluded", "sent", "delivered", "failed", "pending", "retrying", "delayed")


@dataclass(frozen=True)
class WaveProgress:
    """One wave of a run sent in waves, in its progress events (models.ledger.waves.WaveFigures)."""

    wave: int
    starts_at: datetime | None  # the wave's earliest start; None when the campaign lost its waves
    finished: bool  # opened, and none of its messages queued or being sent
    targeted: int = 0
    excluded: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    retrying: int = 0
    delayed: int = 0

    def to_json(self) -> dict[str, Any]:
        counters = {name: getattr(self, name) for name in _WAVE_COUNTERS}
        starts_at = self.starts_at.isoformat() if self.starts_at else None
        return {"wave": self.wave, "startsAt": starts_at, "finished": self.finished, **counters}

    @classmethod
    def from_json(cls, data: Any, topic: str) -> WaveProgress:
        if not isinstance(data, dict):
            raise PayloadError(f"{topic}: a wave is {type(data).__name__}, not an object")
        return cls(
            wave=read_field(data, topic, "wave", (int,)),
            starts_at=read_time(data, topic, "startsAt") if data.get("startsAt") is not None else None,
            finished=read_field(data, topic, "finished", (bool,)),
            **{name: read_field(data, topic, name, (int,)) for name in _WAVE_COUNTERS},
        )


@dataclass(frozen=True)
class RunProgress:
    topic: ClassVar[str] = CAMPAIGN_RUN_PROGRESS_TOPIC

    campaign_id: int
    run_id: int
    status: str  # a RunStatus value
    # Counters as models.ledger.figures defines them; audience is targeted + excluded.
    targeted: int
    excluded: int
    sent: int
    failed: int
    pending: int
    rate_per_second: float | None
    eta_seconds: float | None
    at: datetime
    final: bool  # the run's last event: it comes through the outbox, so it is never lost
    delivered: int = 0
    retrying: int = 0
    last_error_reason: str | None = None  # a DeliveryReason value
    last_error_count: int = 0
    pause_reason: str | None = None  # a RunPauseReason value, while PAUSED
    resent: int = 0  # messages handed to the provider again after a worker died (CampaignRun.resent)
    waves: tuple[WaveProgress, ...] = ()  # a run sent in waves: each wave's counters; empty without waves

    @property
    def audience(self) -> int:
        return self.targeted + self.excluded

    def to_json(self) -> dict[str, Any]:
        return {
            "campaignId": self.campaign_id,
            "runId": self.run_id,
            "status": self.status,
            "targeted": self.targeted,
            "excluded": self.excluded,
            "sent": self.sent,
            "failed": self.failed,
            "pending": self.pending,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "lastErrorReason": self.last_error_reason,
            "lastErrorCount": self.last_error_count,
            "pauseReason": self.pause_reason,
            "resent": self.resent,
            "ratePerSecond": self.rate_per_second,
            "etaSeconds": self.eta_seconds,
            "at": self.at.isoformat(),
            "final": self.final,
            "waves": [wave.to_json() for wave in self.waves],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunProgress:
        t = cls.topic
        status = read_field(data, t, "status", (str,))
        if status not in RUN_STATUSES:
            raise PayloadError(f"{t}: 'status' is not a run status: {status!r}")
        rate = read_field(data, t, "ratePerSecond", (int, float), optional=True)
        eta = read_field(data, t, "etaSeconds", (int, float), optional=True)
        return cls(
            campaign_id=read_field(data, t, "campaignId", (int,)),
            run_id=read_field(data, t, "runId", (int,)),
            status=status,
            targeted=read_field(data, t, "targeted", (int,)),
            excluded=read_field(data, t, "excluded", (int,)),
            sent=read_field(data, t, "sent", (int,)),
            failed=read_field(data, t, "failed", (int,)),
            pending=read_field(data, t, "pending", (int,)),
            rate_per_second=float(rate) if rate is not None else None,
            eta_seconds=float(eta) if eta is not None else None,
            at=read_time(data, t, "at"),
            final=read_field(data, t, "final", (bool,)),
            # Absent from events written before these counters existed.
            delivered=read_field(data, t, "delivered", (int,), optional=True) or 0,
            retrying=read_field(data, t, "retrying", (int,), optional=True) or 0,
            last_error_reason=read_field(data, t, "lastErrorReason", (str,), optional=True),
            last_error_count=read_field(data, t, "lastErrorCount", (int,), optional=True) or 0,
            pause_reason=read_field(data, t, "pauseReason", (str,), optional=True),
            resent=read_field(data, t, "resent", (int,), optional=True) or 0,
            waves=tuple(
                WaveProgress.from_json(w, t) for w in read_field(data, t, "waves", (list,), optional=True) or ()
            ),
        )


@dataclass(frozen=True)
class CampaignVersionPublished:
    """A campaign version became the published one: the next run sends it."""

    topic: ClassVar[str] = CAMPAIGN_VERSION_TOPIC

    campaign_id: int
    number: int  # the CampaignVersion.number now published
    previous_number: int  # the one it replaced
    restores: int | None  # for a rollback: the earlier version it copies
    campaign_version: int  # the campaign's edit counter after the publication
    at: datetime
    actor: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "campaignId": self.campaign_id,
            "number": self.number,
            "previousNumber": self.previous_number,
            "restores": self.restores,
            "campaignVersion": self.campaign_version,
            "at": self.at.isoformat(),
            "actor": self.actor,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CampaignVersionPublished:
        t = cls.topic
        return cls(
            campaign_id=read_field(data, t, "campaignId", (int,)),
            number=read_field(data, t, "number", (int,)),
            previous_number=read_field(data, t, "previousNumber", (int,)),
            restores=read_field(data, t, "restores", (int,), optional=True),
            campaign_version=read_field(data, t, "campaignVersion", (int,)),
            at=read_time(data, t, "at"),
            actor=read_field(data, t, "actor", (str,), optional=True),
        )


@dataclass(frozen=True)
class TriggerAccepted:
    """An API trigger was accepted (models.triggers): its recipients are in the ledger of run `run_id`."""

    topic: ClassVar[str] = TRIGGER_ACCEPTED_TOPIC

    campaign_id: int
    trigger_id: int
    run_id: int | None  # None when every recipient was rejected
    status: str  # a TriggerStatus value
    accepted: int
    rejected: int
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "campaignId": self.campaign_id,
            "triggerId": self.trigger_id,
            "runId": self.run_id,
            "status": self.status,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TriggerAccepted:
        t = cls.topic
        return cls(
            campaign_id=read_field(data, t, "campaignId", (int,)),
            trigger_id=read_field(data, t, "triggerId", (int,)),
            run_id=read_field(data, t, "runId", (int,), optional=True),
            status=read_field(data, t, "status", (str,)),
            accepted=read_field(data, t, "accepted", (int,)),
            rejected=read_field(data, t, "rejected", (int,)),
            at=read_time(data, t, "at"),
        )


@dataclass(frozen=True)
class TriggerCounts:
    """One trigger's ledger rows by outcome (models/triggers/progress.py); done once none is pending."""

    trigger_id: int
    sent: int
    failed: int
    excluded: int
    pending: int

    def to_json(self) -> dict[str, Any]:
        return {
            "triggerId": self.trigger_id,
            "sent": self.sent,
            "failed": self.failed,
            "excluded": self.excluded,
            "pending": self.pending,
        }


@dataclass(frozen=True)
class TriggerProgress:
    """The triggers a sent batch touched, recounted in the transaction after its outcomes: one event per batch
    (not per message), read by `campaignTriggerStatus`."""

    topic: ClassVar[str] = TRIGGER_PROGRESS_TOPIC

    campaign_id: int
    run_id: int
    at: datetime
    triggers: tuple[TriggerCounts, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "campaignId": self.campaign_id,
            "runId": self.run_id,
            "at": self.at.isoformat(),
            "triggers": [t.to_json() for t in self.triggers],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TriggerProgress:
        t = cls.topic
        triggers = []
        for item in read_field(data, t, "triggers", (list,)):
            if not isinstance(item, dict):
                raise PayloadError(f"{t}: 'triggers' holds a {type(item).__name__}, not an object")
            triggers.append(
                TriggerCounts(
                    *(read_field(item, t, k, (int,)) for k in ("triggerId", "sent", "failed", "excluded", "pending"))
                )
            )
        return cls(
            campaign_id=read_field(data, t, "campaignId", (int,)),
            run_id=read_field(data, t, "runId", (int,)),
            at=read_time(data, t, "at"),
            triggers=tuple(triggers),
        )


Payload = (
    CampaignStatusChanged
    | RunProgress
    | DeliveryOutcomes
    | RecipientEvent
    | CampaignVersionPublished
    | TriggerAccepted
    | TriggerProgress
)
PAYLOADS: dict[str, type[Payload]] = {
    CampaignStatusChanged.topic: CampaignStatusChanged,
    RunProgress.topic: RunProgress,
    DeliveryOutcomes.topic: DeliveryOutcomes,
    RecipientEvent.topic: RecipientEvent,
    CampaignVersionPublished.topic: CampaignVersionPublished,
    TriggerAccepted.topic: TriggerAccepted,
    TriggerProgress.topic: TriggerProgress,
}


def parse(topic: str, data: Any) -> Payload:
    """The typed payload of `data` published on `topic`; PayloadError when it does not match."""
    kind = PAYLOADS.get(topic)
    if kind is None:
        raise PayloadError(f"unknown topic {topic!r}")
    if not isinstance(data, dict):
        raise PayloadError(f"{topic}: the payload is {type(data).__name__}, not an object")
    return kind.from_json(data)


# ---- the envelope on Redis ----------------------------------------------------------------------------------
# {"id": <outbox row id, or null for a best-effort direct publish>, "data": <payload.to_json()>}. Publishing is
# at-least-once: a subscriber drops ids it has already seen.


def envelope(outbox_id: int | None, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": outbox_id, "data": data}


def open_envelope(topic: str, message: Any) -> tuple[int | None, Payload]:
    """(outbox id or None, typed payload) of a message received on `topic`; PayloadError when malformed."""
    if not isinstance(message, dict) or "data" not in message:
        raise PayloadError(f"{topic}: not an event envelope")
    outbox_id = message.get("id")
    if outbox_id is not None and (not isinstance(outbox_id, int) or isinstance(outbox_id, bool)):
        raise PayloadError(f"{topic}: the envelope's 'id' is not an integer")
    return outbox_id, parse(topic, message["data"])
