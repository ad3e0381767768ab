"""People (users signed in with OpenID Connect) and their memberships in this sandbox, managed by ADMINs. Rules and
writes live in models/people; this module translates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.relay.utils import to_base64

from models.people.actions import MembershipNotFoundError, PeopleError, remove_membership, set_membership
from models.people.user import Membership as MembershipRow
from models.people.user import User as UserRow
from models.people.user import user_actor
from models.tenancy.sandbox import Role as RoleEnum
from resolvers.context import Info
from resolvers.errors import InvalidInputError, NotFoundError, not_found, refused_field
from resolvers.nodes import pk_of
from resolvers.pagination import check_page_size
from resolvers.permissions import ADMIN, VIEWER
from resolvers.tenancy.types import Role
from resolvers.vocabulary import INPUT_ARG


@strawberry.type(description="A person who signs in with the identity provider, as a member of this sandbox.")
class User:
    id: strawberry.ID = strawberry.field(description="Global id.")
    sub: str = strawberry.field(description="The identity provider's subject identifier (`sub` claim).")
    actor: str = strawberry.field(description="How audit events name this person: `user:<sub>`.")
    email: str | None = strawberry.field(description="From the latest token's `email` claim, or as provisioned.")
    name: str | None = strawberry.field(description="From the latest token's `name` claim, or as provisioned.")
    role: Role | None = strawberry.field(  # type: ignore[valid-type]
        description="Role in this sandbox through a membership; null when access comes from the roles claim only."
    )
    last_seen_at: datetime | None = strawberry.field(description="When the person first signed in; null before.")

    @classmethod
    def from_row(cls, row: UserRow, role: RoleEnum | None) -> User:
        return cls(
            id=strawberry.ID(to_base64("User", row.id)),
            sub=row.sub,
            actor=user_actor(row.sub),
            email=row.email,
            name=row.name,
            role=role,
            last_seen_at=row.last_seen_at,
        )


@strawberry.input(description="Give a person a role in this sandbox (the person is created if new).")
class UserMembershipSetInput:
    sub: str = strawberry.field(description="The identity provider's subject identifier of the person.")
    role: Role = strawberry.field(description="Their role in this sandbox.")  # type: ignore[valid-type]
    email: str | None = strawberry.field(default=None, description="Shown until their first sign-in.")
    name: str | None = strawberry.field(default=None, description="Shown until their first sign-in.")


@strawberry.input(description="Take a person's membership of this sandbox away.")
class UserMembershipRemoveInput:
    id: strawberry.ID = strawberry.field(description="Global id of the user.")


@strawberry.type(description="The person with their role in this sandbox.")
class UserMembershipSetSuccess:
    user: User = strawberry.field(description="The person.")


@strawberry.type(description="The membership is gone; the person's other sandboxes keep theirs.")
class UserMembershipRemoveSuccess:
    removed_id: strawberry.ID = strawberry.field(description="Global id of the user.")


UserMembershipSetResult = Annotated[
    UserMembershipSetSuccess | InvalidInputError,
    strawberry.union("UserMembershipSetResult", description="Result of `userMembershipSet`."),
]
UserMembershipRemoveResult = Annotated[
    UserMembershipRemoveSuccess | NotFoundError,
    strawberry.union("UserMembershipRemoveResult", description="Result of `userMembershipRemove`."),
]


@strawberry.type
class PeopleQuery:
    @strawberry.field(
        description="Members of this sandbox (people with a membership), oldest first.", permission_classes=ADMIN
    )
    async def users(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description="At most this many, 0 to 100 (default 100).")
        ] = None,
    ) -> list[User]:
        limit = check_page_size(first, info.context.limits.max_page_size, default=info.context.limits.max_page_size)
        sandbox_id = info.context.require_caller().sandbox_id
        rows = await MembershipRow.filter(sandbox_id=sandbox_id).order_by("id").limit(limit).select_related("user")
        return [User.from_row(row.user, row.role) for row in rows]

    @strawberry.field(
        description="The signed-in person; null when the caller is an API key.", permission_classes=VIEWER
    )
    async def me(self, info: Info) -> User | None:
        caller = info.context.require_caller()
        if caller.user_id is None:
            return None
        row = await UserRow.get(id=caller.user_id)
        membership = await MembershipRow.get_or_none(user_id=row.id, sandbox_id=caller.sandbox_id)
        return User.from_row(row, membership.role if membership else None)


@strawberry.type
class PeopleMutation:
    @strawberry.mutation(
        description="Give a person (by their `sub`) a role in this sandbox, or change it. Audited.",
        permission_classes=ADMIN,
    )
    async def user_membership_set(
        self, info: Info, input: Annotated[UserMembershipSetInput, strawberry.argument(description=INPUT_ARG)]
    ) -> UserMembershipSetResult:
        caller = info.context.require_caller()
        try:
            user, membership = await set_membership(
                caller.sandbox_id,
                sub=input.sub,
                role=RoleEnum(input.role.value),
                email=input.email,
                name=input.name,
                actor=caller.actor,
            )
        except PeopleError as refusal:
            return refused_field(refusal.field, refusal.code, str(refusal))
        return UserMembershipSetSuccess(user=User.from_row(user, membership.role))

    @strawberry.mutation(description="Remove a person's membership of this sandbox. Audited.", permission_classes=ADMIN)
    async def user_membership_remove(
        self, info: Info, input: Annotated[UserMembershipRemoveInput, strawberry.argument(description=INPUT_ARG)]
    ) -> UserMembershipRemoveResult:
        caller = info.context.require_caller()
        pk = pk_of(input.id, "User")
        if pk is None:
            return not_found(input.id, "No member with that id in this sandbox.")
        try:
            await remove_membership(caller.sandbox_id, pk, actor=caller.actor)
        except MembershipNotFoundError:
            return not_found(input.id, "No member with that id in this sandbox.")
        return UserMembershipRemoveSuccess(removed_id=input.id)
