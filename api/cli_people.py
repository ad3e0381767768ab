"""`herald user …`: people's memberships from the command line (audited as `cli`), for the first ADMIN of a
sandbox and for operators without a GraphQL client."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

ROLES = ["VIEWER", "MANAGER", "PUBLISHER", "ADMIN"]


async def _sandbox_id(name: str) -> int:
    from models.tenancy.actions import TenancyError
    from models.tenancy.sandbox import Sandbox

    sandbox = await Sandbox.get_or_none(name=name)
    if sandbox is None:
        raise TenancyError(f"sandbox {name!r} does not exist")
    return sandbox.id


def cmd_user_set_role(args: argparse.Namespace) -> int:
    from api.cli import CLI_ACTOR, _settings, _with_orm
    from models.people.actions import PeopleError, set_membership
    from models.tenancy.actions import TenancyError
    from models.tenancy.sandbox import Role

    async def action() -> Any:
        try:
            return await set_membership(
                await _sandbox_id(args.sandbox),
                sub=args.sub,
                role=Role(args.role),
                email=args.email,
                name=args.name,
                actor=CLI_ACTOR,
            )
        except PeopleError as exc:
            raise TenancyError(str(exc)) from None

    user, membership = asyncio.run(_with_orm(_settings(), action))
    print(f"User {user.sub!r} (id {user.id}) is {membership.role.value} in sandbox {args.sandbox!r}.")
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    from api.cli import CLI_ACTOR, _settings, _with_orm
    from models.people.actions import MembershipNotFoundError, remove_membership
    from models.people.user import User
    from models.tenancy.actions import TenancyError

    async def action() -> Any:
        user = await User.get_or_none(sub=args.sub)
        try:
            if user is None:
                raise MembershipNotFoundError(args.sub)
            return await remove_membership(await _sandbox_id(args.sandbox), user.id, actor=CLI_ACTOR)
        except MembershipNotFoundError:
            raise TenancyError(f"{args.sub!r} is not a member of sandbox {args.sandbox!r}") from None

    asyncio.run(_with_orm(_settings(), action))
    print(f"User {args.sub!r} is no longer a member of sandbox {args.sandbox!r}.")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from api.cli import _settings, _with_orm
    from models.people.user import Membership

    async def rows() -> list[Any]:
        sandbox_id = await _sandbox_id(args.sandbox)
        return await Membership.filter(sandbox_id=sandbox_id).order_by("id").select_related("user")

    for row in asyncio.run(_with_orm(_settings(), rows)):
        print(f"{row.user.id}\t{row.role.value}\t{row.user.sub}\t{row.user.email or ''}")
    return 0


def add_user_commands(sub: Any) -> None:
    user = sub.add_parser("user", help="Manage people's memberships (OpenID Connect sign-in).").add_subparsers(
        dest="action", required=True
    )
    set_role = user.add_parser("set-role", help="Give a person (by `sub`) a role in a sandbox.")
    set_role.add_argument("--sandbox", required=True)
    set_role.add_argument("--sub", required=True, help="The identity provider's subject identifier.")
    set_role.add_argument("--role", required=True, choices=ROLES)
    set_role.add_argument("--email", default=None)
    set_role.add_argument("--name", default=None)
    set_role.set_defaults(func=cmd_user_set_role)
    remove = user.add_parser("remove", help="Take a person's membership of a sandbox away.")
    remove.add_argument("--sandbox", required=True)
    remove.add_argument("--sub", required=True)
    remove.set_defaults(func=cmd_user_remove)
    listing = user.add_parser("list", help="Members of a sandbox.")
    listing.add_argument("--sandbox", required=True)
    listing.set_defaults(func=cmd_user_list)
