"""Campaign vocabulary and status machine (DESIGN §3, §4). Pure: imports neither Tortoise nor Strawberry.

Every status change of a campaign goes through `check_transition`; `available_actions` answers what a
caller with a given role may do now. The table below is the only place the machine is written down.
"""

from __future__ import annotations

from enum import StrEnum


class CampaignStatus(StrEnum):
    DRAFT = "DRAFT"
    IN_REVIEW = "IN_REVIEW"
    APPROVED = "APPROVED"
    SCHEDULED = "SCHEDULED"
    LIVE = "LIVE"
    STOPPED = "STOPPED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    ARCHIVED = "ARCHIVED"


class CampaignType(StrEnum):
    SCHEDULED = "SCHEDULED"
    API_TRIGGERED = "API_TRIGGERED"


class Category(StrEnum):
    MARKETING = "MARKETING"
    TRANSACTIONAL = "TRANSACTIONAL"


class Channel(StrEnum):
    EMAIL = "EMAIL"
    SMS = "SMS"
    PUSH = "PUSH"
    IN_APP = "IN_APP"


class Frequency(StrEnum):
    ONCE = "ONCE"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"


class CampaignAction(StrEnum):
    """What a caller can ask for; `availableActions` lists these."""

    EDIT = "EDIT"
    REVIEW = "REVIEW"
    ACTIVATE = "ACTIVATE"
    STOP = "STOP"
    DUPLICATE = "DUPLICATE"
    ARCHIVE = "ARCHIVE"
    DELETE = "DELETE"
    REQUEST_APPROVAL = "REQUEST_APPROVAL"
    APPROVE = "APPROVE"
    REQUEST_CHANGES = "REQUEST_CHANGES"


class CampaignEvent(StrEnum):
    """What the system does on its own (dispatcher, run executor); never offered to callers."""

    START = "START"  # SCHEDULED -> LIVE when startAt is reached
    COMPLETE = "COMPLETE"  # LIVE -> COMPLETED after endAt, last run finished
    FAIL = "FAIL"  # LIVE/SCHEDULED -> FAILED when a run fails beyond retry


Trigger = CampaignAction | CampaignEvent

_S = CampaignStatus
_A = CampaignAction
_E = CampaignEvent

# status -> trigger -> possible targets. A target equal to the status means "allowed, status unchanged"
# (EDIT, REVIEW, DUPLICATE: the copy is a new DRAFT); None means the campaign is gone (DELETE).
# ACTIVATE has two targets: LIVE when it starts now, SCHEDULED when startAt is in the future.
# Approvals (models/approvals): a DRAFT that an approval policy matches goes IN_REVIEW (read-only) instead of
# LIVE; APPROVE keeps it IN_REVIEW until every matched policy has its k approvals, then APPROVED; REQUEST_CHANGES
# sends it back to DRAFT. APPROVED is read-only too, and ACTIVATE leaves it as it leaves a DRAFT.
TRANSITIONS: dict[CampaignStatus, dict[Trigger, tuple[CampaignStatus | None, ...]]] = {
    _S.DRAFT: {
        _A.EDIT: (_S.DRAFT,),
        _A.REVIEW: (_S.DRAFT,),
        _A.ACTIVATE: (_S.LIVE, _S.SCHEDULED),
        _A.DUPLICATE: (_S.DRAFT,),
        _A.DELETE: (None,),
        _A.REQUEST_APPROVAL: (_S.IN_REVIEW,),
    },
    _S.IN_REVIEW: {
        _A.REVIEW: (_S.IN_REVIEW,),
        _A.DUPLICATE: (_S.IN_REVIEW,),
        _A.APPROVE: (_S.APPROVED, _S.IN_REVIEW),
        _A.REQUEST_CHANGES: (_S.DRAFT,),
    },
    _S.APPROVED: {
        _A.REVIEW: (_S.APPROVED,),
        _A.ACTIVATE: (_S.LIVE, _S.SCHEDULED),
        _A.DUPLICATE: (_S.APPROVED,),
        _A.REQUEST_CHANGES: (_S.DRAFT,),
    },
    _S.SCHEDULED: {
        _A.REVIEW: (_S.SCHEDULED,),
        _A.STOP: (_S.STOPPED,),
        _A.DUPLICATE: (_S.SCHEDULED,),
        _E.START: (_S.LIVE,),
        _E.FAIL: (_S.FAILED,),
    },
    _S.LIVE: {
        _A.REVIEW: (_S.LIVE,),
        _A.STOP: (_S.STOPPED,),
        _A.DUPLICATE: (_S.LIVE,),
        _E.COMPLETE: (_S.COMPLETED,),
        _E.FAIL: (_S.FAILED,),
    },
    # STOPPED is final: it cannot be activated again; duplicate it instead.
    _S.STOPPED: {_A.DUPLICATE: (_S.STOPPED,), _A.ARCHIVE: (_S.ARCHIVED,)},
    _S.COMPLETED: {_A.DUPLICATE: (_S.COMPLETED,), _A.ARCHIVE: (_S.ARCHIVED,)},
    _S.FAILED: {_A.DUPLICATE: (_S.FAILED,), _A.ARCHIVE: (_S.ARCHIVED,)},
    _S.ARCHIVED: {_A.DUPLICATE: (_S.ARCHIVED,)},
}

# Role names in rank order, as models.sandbox.Role (which imports Tortoise, so it is not imported here).
ROLE_NAMES: tuple[str, ...] = ("VIEWER", "MANAGER", "PUBLISHER", "ADMIN")

# Lowest role allowed to ask for each action (DESIGN §2): MANAGER authors drafts, PUBLISHER goes live.
ACTION_MIN_ROLE: dict[CampaignAction, str] = {
    _A.EDIT: "MANAGER",
    _A.REVIEW: "MANAGER",
    _A.DUPLICATE: "MANAGER",
    _A.DELETE: "MANAGER",
    _A.ACTIVATE: "PUBLISHER",
    _A.STOP: "PUBLISHER",
    _A.ARCHIVE: "PUBLISHER",
    # Who may approve is the matched policies' say (models/approvals/rules.py); the role is a floor.
    _A.REQUEST_APPROVAL: "MANAGER",
    _A.APPROVE: "MANAGER",
    _A.REQUEST_CHANGES: "MANAGER",
}

# Not activated yet: a review judges these as if activated now (start in the past, next run times).
NOT_ACTIVATED = frozenset({CampaignStatus.DRAFT, CampaignStatus.IN_REVIEW, CampaignStatus.APPROVED})

# Fields that stay editable whatever the status (DESIGN §4).
ALWAYS_EDITABLE_FIELDS = frozenset({"tags", "description"})


class InvalidTransition(Exception):
    """A trigger that the campaign's current status does not allow."""

    def __init__(self, current: CampaignStatus, action: Trigger, allowed_actions: list[CampaignAction]):
        self.current = current
        self.action = action
        self.allowed_actions = allowed_actions
        allowed = ", ".join(allowed_actions) or "none"
        super().__init__(f"cannot {action.value.lower()} a {current.value} campaign (allowed: {allowed})")


def role_rank(role: str) -> int:
    """Rank of a role name (VIEWER 0 … ADMIN 3); unknown names rank below VIEWER."""
    try:
        return ROLE_NAMES.index(str(role))
    except ValueError:
        return -1


def allowed_triggers(status: CampaignStatus) -> list[Trigger]:
    return list(TRANSITIONS[CampaignStatus(status)])


def status_actions(status: CampaignStatus) -> list[CampaignAction]:
    """Caller actions the status allows, whatever the role, in enum order."""
    triggers = TRANSITIONS[CampaignStatus(status)]
    return [action for action in CampaignAction if action in triggers]


def check_transition(
    current: CampaignStatus, action: Trigger, *, starts_later: bool = False, approved: bool = False
) -> CampaignStatus | None:
    """The status after `action`, or InvalidTransition naming the allowed actions.

    `starts_later` only matters for ACTIVATE: True when `startAt` is in the future (→ SCHEDULED).
    `approved` only matters for APPROVE: True when this approval completes every matched policy (→ APPROVED).
    Returns None for DELETE (the campaign is gone).
    """
    current = CampaignStatus(current)
    targets = TRANSITIONS[current].get(action)
    if targets is None:
        raise InvalidTransition(current, action, status_actions(current))
    if action is CampaignAction.APPROVE:
        return CampaignStatus.APPROVED if approved else CampaignStatus.IN_REVIEW
    if len(targets) > 1:
        return CampaignStatus.SCHEDULED if starts_later else CampaignStatus.LIVE
    return targets[0]


def is_editable(status: CampaignStatus, field: str) -> bool:
    """Whether `field` may change in `status`: everything in DRAFT, tags and description always."""
    return CampaignStatus(status) is CampaignStatus.DRAFT or field in ALWAYS_EDITABLE_FIELDS


def available_actions(status: CampaignStatus, role: str) -> list[CampaignAction]:
    """Actions a caller with `role` (a Role name, e.g. Role.MANAGER) may ask for now, in enum order."""
    rank = role_rank(role)
    return [action for action in status_actions(status) if rank >= role_rank(ACTION_MIN_ROLE[action])]
