from __future__ import annotations

import hashlib
import re
import secrets
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

SANDBOX_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
API_KEY_PREFIX = "hrld_"


class Role(StrEnum):
    VIEWER = "VIEWER"
    MANAGER = "MANAGER"
    PUBLISHER = "PUBLISHER"
    ADMIN = "ADMIN"

    @property
    def rank(self) -> int:
        return _ROLE_ORDER.index(self)

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


_ROLE_ORDER = [Role.VIEWER, Role.MANAGER, Role.PUBLISHER, Role.ADMIN]


class Sandbox(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=40, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # IANA zone of profiles without one, for caps' calendar periods and quiet hours (a rule set may name its
    # own); null = UTC.
    time_zone = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "sandbox"


class ApiKey(Model):
    """An API key, bound to one sandbox and one role. Only its SHA-256 is stored."""

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    name = fields.CharField(max_length=100)
    role = fields.CharEnumField(Role, max_length=16)
    # First characters of the key, shown to operators so they can tell keys apart.
    display_prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    revoked_at = fields.DatetimeField(null=True)

    sandbox_id: int

    class Meta:
        table = "api_key"


def validate_sandbox_name(name: str) -> str | None:
    if not SANDBOX_NAME_RE.match(name):
        return "must start with a lower-case letter and hold only a-z, 0-9 and '-' (at most 40 characters)"
    return None


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # Keys carry 256 bits of entropy, so a plain digest is enough and stays valid across SECRET_KEY changes.
    return hashlib.sha256(key.encode()).hexdigest()
