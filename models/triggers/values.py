"""The trigger call as plain values: its input, the pure checks that refuse it field by field, its canonical
hash (Stripe's rule: the same key with another body is a conflict), the stored answer and the errors. No database
access (the context checks reuse models.audience.values)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from models.audience.values import ValueProblem, check_attributes

MAX_RECIPIENTS = 1000
MAX_KEY_LENGTH = 255
DEFAULT_IDEMPOTENCY_HOURS = 24


class MissingProfile(StrEnum):
    REJECT = "REJECT"  # a recipient whose identity matches no profile is rejected
    CREATE = "CREATE"  # ... or the profile is created with that identity (an upsert by identity)


class RejectionReason(StrEnum):
    PROFILE_NOT_FOUND = "PROFILE_NOT_FOUND"
    DUPLICATE_RECIPIENT = "DUPLICATE_RECIPIENT"


REJECTION_DESCRIPTIONS: dict[RejectionReason, str] = {
    RejectionReason.PROFILE_NOT_FOUND: "No profile with that id or identity in this sandbox (onMissingProfile REJECT).",
    RejectionReason.DUPLICATE_RECIPIENT: "The same profile appears earlier in this call: it gets one message.",
}


@dataclass(frozen=True, slots=True)
class TriggerRecipient:
    profile_id: int | None = None
    namespace: str | None = None  # identity namespace code
    value: str | None = None  # identity value
    context: dict[str, Any] = field(default_factory=dict)
    # Sends to this address instead of the profile's, for this call only (checked against the channel).
    address: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    """One call, however it arrived (GraphQL or REST): what is hashed and what is accepted."""

    campaign_id: int
    idempotency_key: str
    recipients: tuple[TriggerRecipient, ...]
    context: dict[str, Any] = field(default_factory=dict)
    on_missing_profile: MissingProfile = MissingProfile.REJECT

    def body(self) -> dict[str, Any]:
        """The request body as the hash sees it (the key and the campaign are the idempotency scope, not body)."""
        return {
            "context": self.context,
            "onMissingProfile": self.on_missing_profile.value,
            "recipients": [
                {
                    "profileId": r.profile_id,
                    "identity": {"namespace": r.namespace, "value": r.value} if r.namespace is not None else None,
                    "context": r.context,
                    # Only when given: the hashes of calls without one stay what they were.
                    **({"address": r.address} if r.address is not None else {}),
                }
                for r in self.recipients
            ],
        }

    def request_hash(self) -> str:
        canonical = json.dumps(self.body(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    code: str  # a models.field_errors.FieldErrorCode value
    message: str


def check_request(request: TriggerRequest, prefix: str = "input") -> list[Problem]:
    """Every refused field of the call; empty when it may be accepted."""
    problems: list[Problem] = []
    key = request.idempotency_key
    if not key or not key.strip():
        problems.append(Problem(f"{prefix}.idempotencyKey", "EMPTY", "give an idempotency key"))
    elif len(key) > MAX_KEY_LENGTH:
        problems.append(Problem(f"{prefix}.idempotencyKey", "TOO_LONG", f"at most {MAX_KEY_LENGTH} characters"))
    elif any(ord(c) < 32 for c in key):
        problems.append(Problem(f"{prefix}.idempotencyKey", "INVALID_CHARACTERS", "no control characters"))
    problems.extend(_check_context(request.context, f"{prefix}.context"))
    if not 1 <= len(request.recipients) <= MAX_RECIPIENTS:
        problems.append(Problem(f"{prefix}.recipients", "COUNT", f"give 1 to {MAX_RECIPIENTS} recipients"))
        return problems
    for index, recipient in enumerate(request.recipients):
        path = f"{prefix}.recipients[{index}]"
        has_identity = recipient.namespace is not None or recipient.value is not None
        if (recipient.profile_id is None) == (not has_identity):
            problems.append(Problem(path, "ONE_OF", "give either profileId or identity"))
        elif has_identity and not (recipient.namespace and recipient.value):
            problems.append(Problem(f"{path}.identity", "REQUIRED", "an identity needs a namespace and a value"))
        problems.extend(_check_context(recipient.context, f"{path}.context"))
    return problems


def _check_context(value: Any, path: str) -> list[Problem]:
    try:
        check_attributes(value)
    except ValueProblem as problem:
        return [Problem(path, problem.code, problem.message.replace("attributes", "context"))]
    return []


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason: RejectionReason


@dataclass(frozen=True, slots=True)
class TriggerAnswer:
    """What the call answers, stored with the trigger: a replay returns exactly this."""

    trigger_id: int
    status: str  # a TriggerStatus value
    accepted: int
    rejected: tuple[Rejection, ...]
    run_id: int | None
    replayed: bool = False  # True when this answer is the stored one of an earlier call
    # The trigger row's other fields, so that the caller answers without reading it again (not stored).
    idempotency_key: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    expires_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.trigger_id,
            "status": self.status,
            "accepted": self.accepted,
            "rejected": [{"index": r.index, "reason": r.reason.value} for r in self.rejected],
            "runId": self.run_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool) -> TriggerAnswer:
        return cls(
            trigger_id=int(data["id"]),
            status=str(data["status"]),
            accepted=int(data["accepted"]),
            rejected=tuple(Rejection(int(r["index"]), RejectionReason(r["reason"])) for r in data["rejected"]),
            run_id=data.get("runId"),
            replayed=replayed,
        )


# ---- errors (the resolvers and the REST route translate them) ------------------------------------------------


class TriggerError(Exception):
    pass


class TriggerInvalidInputError(TriggerError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


class TriggerNotFoundError(TriggerError):
    def __init__(self, field_path: str, value: Any) -> None:
        super().__init__(f"no campaign {value} in this sandbox")
        self.field = field_path
        self.value = value


class TriggerStateError(TriggerError):
    """The campaign is not an API-triggered campaign, or not LIVE."""

    def __init__(self, message: str, current_status: str) -> None:
        super().__init__(message)
        self.current_status = current_status


class IdempotencyConflictError(TriggerError):
    """The key was used for this campaign with another body (within TRIGGER_IDEMPOTENCY_HOURS)."""

    def __init__(self, key: str, trigger_id: int) -> None:
        super().__init__(
            f"idempotency key {key!r} was used with a different request body (trigger {trigger_id}); "
            "use a new key for a new request"
        )
        self.key = key
        self.trigger_id = trigger_id
