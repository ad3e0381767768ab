"""The roles claim of a token (OIDC_ROLES_CLAIM): group values `<sandbox>:<ROLE>` grant ROLE in that sandbox.
Pure: imports neither Tortoise nor Strawberry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ROLE_NAMES = ("VIEWER", "MANAGER", "PUBLISHER", "ADMIN")


def claim_values(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The strings under `claim`; a dotted name walks nested objects (`realm_access.roles`)."""
    value: Any = claims
    for part in claim.split("."):
        if not isinstance(value, Mapping):
            return []
        value = value.get(part)
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def roles_by_sandbox(values: list[str]) -> dict[str, str]:
    """`["prod:ADMIN", "dev:VIEWER", "other-group"]` → `{"prod": "ADMIN", "dev": "VIEWER"}`; the highest role wins
    when a sandbox is named twice; values of any other shape are ignored (groups meant for other applications)."""
    granted: dict[str, str] = {}
    for value in values:
        sandbox, sep, role = value.rpartition(":")
        if not sep or not sandbox or role not in ROLE_NAMES:
            continue
        current = granted.get(sandbox)
        if current is None or ROLE_NAMES.index(role) > ROLE_NAMES.index(current):
            granted[sandbox] = role
    return granted


def higher_role(first: str | None, second: str | None) -> str | None:
    if first is None or second is None:
        return first or second
    return first if ROLE_NAMES.index(first) >= ROLE_NAMES.index(second) else second
