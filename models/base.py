from tortoise import fields
from tortoise.models import Model


class SandboxModel(Model):
    """Every tenant-owned row carries its sandbox; all look-ups filter on it."""

    id = fields.BigIntField(primary_key=True)
    sandbox = fields.ForeignKeyField("herald.Sandbox", on_delete=fields.RESTRICT, related_name=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    sandbox_id: int

    class Meta:
        abstract = True
