"""ADMIN actions on approval policies: create, update, delete. One transaction each, audited."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from tortoise.transactions import in_transaction

from models.approvals.model import ApprovalPolicy
from models.approvals.policies import policy_value
from models.approvals.rules import Policy, PolicyProblem, validate_policy
from models.people.user import Membership
from models.tenancy.audit import record_audit

POLICY_OBJECT_TYPE = "ApprovalPolicy"


class PolicyInputError(Exception):
    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


class PolicyNotFoundError(Exception):
    """No such policy in this sandbox."""


def _state(policy: Policy) -> dict[str, Any]:
    state = asdict(policy)
    state.pop("id")
    return {key: list(value) if isinstance(value, tuple) else value for key, value in state.items()}


async def _check(sandbox_id: int, policy: Policy) -> None:
    problems = validate_policy(policy)
    if policy.approver_user_ids:
        members = set(
            await Membership.filter(sandbox_id=sandbox_id, user_id__in=list(policy.approver_user_ids)).values_list(
                "user_id", flat=True
            )
        )
        strangers = [str(pk) for pk in policy.approver_user_ids if pk not in members]
        if strangers:
            problems.append(
                PolicyProblem(
                    "input.approverUserIds", "INVALID", f"Not members of this sandbox: {', '.join(strangers)}."
                )
            )
    if problems:
        raise PolicyInputError(problems)


def _columns(policy: Policy) -> dict[str, Any]:
    return {
        "name": policy.name.strip(),
        "enabled": policy.enabled,
        "channels": list(policy.channels),
        "categories": list(policy.categories),
        "audience_above": policy.audience_above,
        "requester_roles": list(policy.requester_roles),
        "approver_roles": list(policy.approver_roles),
        "approver_user_ids": list(policy.approver_user_ids),
        "required_approvals": policy.required_approvals,
    }


async def create_policy(sandbox_id: int, policy: Policy, *, actor: str) -> ApprovalPolicy:
    await _check(sandbox_id, policy)
    async with in_transaction() as conn:
        row = await ApprovalPolicy.create(sandbox_id=sandbox_id, using_db=conn, **_columns(policy))
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="CREATE",
            object_type=POLICY_OBJECT_TYPE,
            object_id=row.id,
            after=_state(policy_value(row)),
            using_db=conn,
        )
    return row


async def update_policy(sandbox_id: int, policy_id: int, changes: dict[str, Any], *, actor: str) -> ApprovalPolicy:
    """`changes`: Policy fields to replace (absent ones stay)."""
    async with in_transaction() as conn:
        row = (
            await ApprovalPolicy.filter(id=policy_id, sandbox_id=sandbox_id).select_for_update().using_db(conn).first()
        )
        if row is None:
            raise PolicyNotFoundError(policy_id)
        before = policy_value(row)
        after = replace(before, **changes)
        await _check(sandbox_id, after)
        await ApprovalPolicy.filter(id=row.id).using_db(conn).update(**_columns(after))
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="UPDATE",
            object_type=POLICY_OBJECT_TYPE,
            object_id=row.id,
            before=_state(before),
            after=_state(after),
            using_db=conn,
        )
        return await ApprovalPolicy.get(id=row.id).using_db(conn)


async def delete_policy(sandbox_id: int, policy_id: int, *, actor: str) -> None:
    """Requests already made keep the policies they matched as they were decided by (their ids stay recorded)."""
    async with in_transaction() as conn:
        row = (
            await ApprovalPolicy.filter(id=policy_id, sandbox_id=sandbox_id).select_for_update().using_db(conn).first()
        )
        if row is None:
            raise PolicyNotFoundError(policy_id)
        await ApprovalPolicy.filter(id=row.id).using_db(conn).delete()
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="DELETE",
            object_type=POLICY_OBJECT_TYPE,
            object_id=row.id,
            before=_state(policy_value(row)),
            using_db=conn,
        )
