from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.tenancy.sandbox import Role


class User(Model):
    """A person known by the `sub` claim of the identity provider. Email and name are copied from the latest token."""

    id = fields.BigIntField(primary_key=True)
    sub = fields.CharField(max_length=255, unique=True)
    email = fields.CharField(max_length=320, null=True)
    name = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_seen_at = fields.DatetimeField(null=True)

    class Meta:
        table = "app_user"


class Membership(Model):
    """A user's role in one sandbox (the same roles as API keys), unique per user and sandbox."""

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    user = fields.ForeignKeyField("herald.User", on_delete=fields.CASCADE, related_name=False)
    role = fields.CharEnumField(Role, max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    sandbox_id: int
    user_id: int

    class Meta:
        table = "membership"
        unique_together = (("user_id", "sandbox_id"),)
        indexes = (("sandbox_id", "id"),)


def user_actor(sub: str) -> str:
    """The audit actor of a person: `user:<sub>` (audit actors hold at most 100 characters)."""
    return f"user:{sub}"[:100]
