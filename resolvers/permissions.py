"""One declared permission per field: `permission_classes=[Requires(Role.MANAGER)]`."""

from __future__ import annotations

from functools import cache
from typing import Any

from strawberry.permission import BasePermission

from models.tenancy.sandbox import Role
from resolvers.context import Info


@cache
def Requires(role: Role) -> type[BasePermission]:
    """A permission class admitting callers whose role is `role` or above."""

    class _Requires(BasePermission):
        message = f"This field requires the {role.value} role or above."
        error_extensions = {"code": "FORBIDDEN", "requiredRole": role.value}
        required_role = role

        def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
            caller = info.context.caller
            return caller is not None and caller.role.allows(role)

    _Requires.__name__ = f"Requires{role.value.title()}"
    return _Requires


VIEWER = [Requires(Role.VIEWER)]
MANAGER = [Requires(Role.MANAGER)]
PUBLISHER = [Requires(Role.PUBLISHER)]
ADMIN = [Requires(Role.ADMIN)]
