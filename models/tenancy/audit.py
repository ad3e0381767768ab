from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model


class AuditEvent(Model):
    """Who changed what, when, with the state before and after."""

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    actor = fields.CharField(max_length=100)
    action = fields.CharField(max_length=50)
    object_type = fields.CharField(max_length=50)
    object_id = fields.CharField(max_length=50)
    before = fields.JSONField(null=True)
    after = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    sandbox_id: int

    class Meta:
        table = "audit_event"
        indexes = (("sandbox_id", "object_type", "object_id"),)


async def record_audit(
    *,
    sandbox_id: int,
    actor: str,
    action: str,
    object_type: str,
    object_id: Any,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    using_db: BaseDBAsyncClient | None = None,
) -> AuditEvent:
    """Write an audit event in the caller's transaction (pass `using_db`) so it commits with the change."""
    return await AuditEvent.create(
        sandbox_id=sandbox_id,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=before,
        after=after,
        using_db=using_db,
    )
