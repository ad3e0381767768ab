"""The message preset (channel surface): the technical settings a campaign's messages are sent with."""

from __future__ import annotations

from typing import Any

from tortoise import fields

from models.base import SandboxModel
from models.presets.rules import Channel, PresetCategory, PresetStatus, PresetUpdateStatus

# Event-bus topic of status changes; payload built by `status_event`.
PRESET_STATUS_TOPIC = "preset.status"


class MessagePreset(SandboxModel):
    name = fields.CharField(max_length=100)
    description = fields.TextField(default="")
    channel = fields.CharEnumField(Channel, max_length=16)
    category = fields.CharEnumField(PresetCategory, max_length=16)
    status = fields.CharEnumField(PresetStatus, max_length=16, default=PresetStatus.DRAFT)
    # Non-secret settings in force (snake_case keys; see preset_rules).
    settings = fields.JSONField(default=dict)
    # Secrets: an encrypted blob (SecretBox) and, in clear, only the names of those that are set.
    secrets = fields.TextField(null=True)
    secret_names = fields.JSONField(default=list)
    # An edit of an ACTIVE preset waits here until its validation passes.
    pending_settings = fields.JSONField(null=True)
    pending_secrets = fields.TextField(null=True)
    pending_secret_names = fields.JSONField(null=True)
    update_status = fields.CharEnumField(PresetUpdateStatus, max_length=16, null=True)
    # The last validation's checks: [{check, ok, code, message, durationMs}].
    checks = fields.JSONField(default=list)
    validated_at = fields.DatetimeField(null=True)
    version = fields.IntField(default=1)

    class Meta:
        table = "message_preset"
        unique_together = (("sandbox_id", "name"),)
        indexes = (("sandbox_id", "channel", "status"),)

    def public_state(self) -> dict[str, Any]:
        """What the audit log records: never the secrets, only which are set."""
        return {
            "name": self.name,
            "description": self.description,
            "channel": self.channel.value,
            "category": self.category.value,
            "status": self.status.value,
            "updateStatus": self.update_status.value if self.update_status else None,
            "settings": self.settings,
            "secretsSet": sorted(self.secret_names or []),
            "pendingSettings": self.pending_settings,
            "version": self.version,
        }

    def status_event(self) -> dict[str, Any]:
        return {
            "presetId": self.id,
            "status": self.status.value,
            "updateStatus": self.update_status.value if self.update_status else None,
            "version": self.version,
            "failedChecks": [check for check in self.checks or [] if not check.get("ok")],
        }
