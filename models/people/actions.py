"""Domain actions on users and memberships: one transaction each, audited in the membership's sandbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from models.people.role_claims import higher_role
from models.people.user import Membership, User
from models.tenancy.audit import record_audit
from models.tenancy.sandbox import Role, Sandbox

MEMBERSHIP_OBJECT_TYPE = "Membership"
MAX_SUB = 255
MAX_EMAIL = 320
MAX_NAME = 200


class PeopleError(Exception):
    """An expected refusal, with the input field it concerns."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code


class MembershipNotFoundError(Exception):
    """No such user in this sandbox."""


_CHANGED_LISTENERS: list[Callable[[int], None]] = []


def on_membership_changed(listener: Callable[[int], None]) -> None:
    """`listener(user_id)` runs after a membership change commits in this process (the API's caller cache listens)."""
    _CHANGED_LISTENERS.append(listener)


def _membership_state(user: User, role: Role | None) -> dict[str, object]:
    return {"sub": user.sub, "email": user.email, "role": role.value if role else None}


async def set_membership(
    sandbox_id: int, *, sub: str, role: Role, email: str | None = None, name: str | None = None, actor: str
) -> tuple[User, Membership]:
    """Gives the user `sub` (created if Herald has not seen them sign in yet) `role` in the sandbox."""
    sub = sub.strip()
    if not sub or len(sub) > MAX_SUB:
        raise PeopleError("input.sub", "INVALID", f"A subject identifier of 1 to {MAX_SUB} characters.")
    if email is not None and len(email) > MAX_EMAIL:
        raise PeopleError("input.email", "TOO_LONG", f"At most {MAX_EMAIL} characters.")
    if name is not None and len(name) > MAX_NAME:
        raise PeopleError("input.name", "TOO_LONG", f"At most {MAX_NAME} characters.")
    async with in_transaction() as conn:
        user = await User.get_or_none(sub=sub).using_db(conn)
        if user is None:
            user = await User.create(sub=sub, email=email, name=name, using_db=conn)
        membership = await Membership.get_or_none(user_id=user.id, sandbox_id=sandbox_id).using_db(conn)
        before = _membership_state(user, membership.role if membership else None)
        if membership is None:
            membership = await Membership.create(user_id=user.id, sandbox_id=sandbox_id, role=role, using_db=conn)
        elif membership.role is not role:
            membership.role = role
            await membership.save(update_fields=["role", "updated_at"], using_db=conn)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="CREATE" if before["role"] is None else "UPDATE",
            object_type=MEMBERSHIP_OBJECT_TYPE,
            object_id=user.id,
            before=None if before["role"] is None else before,
            after=_membership_state(user, role),
            using_db=conn,
        )
    for listener in _CHANGED_LISTENERS:
        listener(user.id)
    return user, membership


async def remove_membership(sandbox_id: int, user_id: int, *, actor: str) -> User:
    """Takes the user's access to this sandbox away (their other sandboxes keep theirs)."""
    async with in_transaction() as conn:
        membership = await Membership.get_or_none(user_id=user_id, sandbox_id=sandbox_id).using_db(conn)
        if membership is None:
            raise MembershipNotFoundError(user_id)
        user = await User.get(id=user_id).using_db(conn)
        await Membership.filter(id=membership.id).using_db(conn).delete()
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="DELETE",
            object_type=MEMBERSHIP_OBJECT_TYPE,
            object_id=user.id,
            before=_membership_state(user, membership.role),
            using_db=conn,
        )
    for listener in _CHANGED_LISTENERS:
        listener(user.id)
    return user


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who a verified token stands for, in the sandbox the request acts in."""

    user_id: int
    sub: str
    sandbox_id: int
    sandbox_name: str
    role: Role


class NoAccessError(Exception):
    """The person has no role in any sandbox (or not in the one asked for), or must say which sandbox."""


async def sign_in(
    *,
    sub: str,
    email: str | None,
    name: str | None,
    claimed_roles: dict[str, str],
    sandbox_name: str | None,
    now: datetime | None = None,
) -> SignedIn:
    """The sandbox and role of a verified person: their membership or the role the roles claim grants there,
    whichever is higher. `sandbox_name` picks one; without it the person must have access to exactly one.
    The user row is created at the first sign-in with any access, and their email and name kept current."""
    if not sub or len(sub) > MAX_SUB:
        raise NoAccessError(f"a subject identifier of 1 to {MAX_SUB} characters is needed")
    access: dict[str, tuple[int, str]] = {}  # sandbox name -> (id, role)
    user = await User.get_or_none(sub=sub)
    if user is not None:
        for membership in await Membership.filter(user_id=user.id).select_related("sandbox"):
            access[membership.sandbox.name] = (membership.sandbox_id, membership.role.value)
    if claimed_roles:
        for sandbox in await Sandbox.filter(name__in=list(claimed_roles)):
            current = access.get(sandbox.name)
            role = higher_role(current[1] if current else None, claimed_roles[sandbox.name])
            access[sandbox.name] = (sandbox.id, role or claimed_roles[sandbox.name])
    if sandbox_name is not None:
        chosen = access.get(sandbox_name)
        if chosen is None:
            raise NoAccessError(f"no role in sandbox {sandbox_name!r}")
        picked = sandbox_name
    elif len(access) == 1:
        picked = next(iter(access))
    elif not access:
        raise NoAccessError("no role in any sandbox")
    else:
        raise NoAccessError("access to several sandboxes: choose one with the X-Herald-Sandbox header")
    sandbox_id, role = access[picked]
    now = now or datetime.now(UTC)
    # Claims are the provider's to fill: keep what fits the columns.
    email, name = (email or None) and email[:MAX_EMAIL], (name or None) and name[:MAX_NAME]
    if user is None:
        user = await User.create(sub=sub, email=email, name=name, last_seen_at=now)
    else:
        email, name = email or user.email, name or user.name
        if (user.email, user.name) != (email, name) or user.last_seen_at is None:
            await User.filter(id=user.id).update(email=email, name=name, last_seen_at=now)
    return SignedIn(user_id=user.id, sub=sub, sandbox_id=sandbox_id, sandbox_name=picked, role=Role(role))
