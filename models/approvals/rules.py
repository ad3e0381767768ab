"""Approval policies as plain values: which policies a campaign matches, who may approve, when enough have.
Pure: imports neither Tortoise nor Strawberry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ROLE_NAMES = ("VIEWER", "MANAGER", "PUBLISHER", "ADMIN")
CHANNELS = ("EMAIL", "SMS", "PUSH", "IN_APP")
CATEGORIES = ("MARKETING", "TRANSACTIONAL")
MAX_APPROVALS = 10
# Approving needs at least MANAGER (models.campaigns.rules.ACTION_MIN_ROLE): a VIEWER approver role would be moot.
APPROVER_MIN_ROLE = "MANAGER"


@dataclass(frozen=True, slots=True)
class Policy:
    id: int
    name: str
    channels: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    audience_above: int | None = None
    requester_roles: tuple[str, ...] = ()
    approver_roles: tuple[str, ...] = ()
    approver_user_ids: tuple[int, ...] = ()
    required_approvals: int = 1
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class CampaignFacts:
    channel: str | None
    category: str
    contactable: int | None  # the estimated contactable audience; None when it cannot be estimated
    requester_role: str


@dataclass(frozen=True, slots=True)
class Approver:
    actor: str
    role: str
    user_id: int | None = None


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    field: str
    code: str
    message: str


def matches(policy: Policy, facts: CampaignFacts) -> bool:
    """Every condition the policy sets holds. An audience that cannot be estimated matches `audience_above`
    (when in doubt, ask a person)."""
    if not policy.enabled:
        return False
    if policy.channels and facts.channel not in policy.channels:
        return False
    if policy.categories and facts.category not in policy.categories:
        return False
    if policy.requester_roles and facts.requester_role not in policy.requester_roles:
        return False
    if policy.audience_above is not None and facts.contactable is not None:
        return facts.contactable > policy.audience_above
    return True


def matching(policies: Iterable[Policy], facts: CampaignFacts) -> list[Policy]:
    return [policy for policy in policies if matches(policy, facts)]


def may_approve(policy: Policy, approver: Approver) -> bool:
    """A named user, or anyone holding a role the policy names or a higher one (each role includes the rights of
    those before it)."""
    if approver.user_id is not None and approver.user_id in policy.approver_user_ids:
        return True
    rank = _rank(approver.role)
    return any(rank >= _rank(role) for role in policy.approver_roles)


def _rank(role: str) -> int:
    return ROLE_NAMES.index(role) if role in ROLE_NAMES else -1


def approved(policies: Sequence[Policy], approvals: Sequence[Approver]) -> bool:
    """Every policy has `required_approvals` distinct approvers it accepts."""
    for policy in policies:
        approvers = {approver.actor for approver in approvals if may_approve(policy, approver)}
        if len(approvers) < policy.required_approvals:
            return False
    return True


def validate_policy(policy: Policy) -> list[PolicyProblem]:
    problems: list[PolicyProblem] = []
    if not policy.name.strip() or len(policy.name) > 100:
        problems.append(PolicyProblem("input.name", "INVALID", "A name of 1 to 100 characters."))
    for field, values, allowed in (
        ("input.channels", policy.channels, CHANNELS),
        ("input.categories", policy.categories, CATEGORIES),
        ("input.requesterRoles", policy.requester_roles, ROLE_NAMES),
        ("input.approverRoles", policy.approver_roles, ROLE_NAMES),
    ):
        unknown = [value for value in values if value not in allowed]
        if unknown:
            problems.append(PolicyProblem(field, "INVALID", f"Unknown: {', '.join(unknown)}."))
    low = [role for role in policy.approver_roles if role in ROLE_NAMES and ROLE_NAMES.index(role) < 1]
    if low:
        problems.append(
            PolicyProblem("input.approverRoles", "INVALID", f"Approvers need {APPROVER_MIN_ROLE} or above.")
        )
    if not policy.approver_roles and not policy.approver_user_ids:
        problems.append(PolicyProblem("input.approverRoles", "REQUIRED", "Name approver roles or approver users."))
    if not 1 <= policy.required_approvals <= MAX_APPROVALS:
        problems.append(
            PolicyProblem("input.requiredApprovals", "OUT_OF_RANGE", f"From 1 to {MAX_APPROVALS} approvals.")
        )
    elif not policy.approver_roles and 0 < len(policy.approver_user_ids) < policy.required_approvals:
        problems.append(
            PolicyProblem(
                "input.requiredApprovals", "OUT_OF_RANGE", "More approvals required than named approvers can give."
            )
        )
    if policy.audience_above is not None and policy.audience_above < 0:
        problems.append(PolicyProblem("input.audienceAbove", "OUT_OF_RANGE", "Zero or more."))
    return problems
