"""The preset validation job: DRAFT → PROCESSING → ACTIVE | FAILED (or an ACTIVE preset's pending edit
applied or marked FAILED). Safe to run twice: the outcome is recorded by compare-and-set on the version the
job was queued for, so a second run finds nothing to do."""

from __future__ import annotations

import logging
from typing import Any

from jobs.context import worker_context
from jobs.events import publish
from jobs.preset_checks import CheckResult, provider_checks
from models.presets.lifecycle import finish_validation, is_validating, settings_under_validation
from models.presets.preset import PRESET_STATUS_TOPIC, MessagePreset
from models.presets.rules import CheckCode
from models.presets.secret_box import SecretBox, SecretsUnreadableError

logger = logging.getLogger(__name__)


async def validate_preset(ctx: dict[str, Any], preset_id: int, version: int) -> dict[str, Any]:
    settings = worker_context(ctx).settings
    row = await MessagePreset.get_or_none(id=preset_id)
    if row is None or row.version != version or not is_validating(row):
        return {"presetId": preset_id, "recorded": False}
    values, sealed = settings_under_validation(row)
    try:
        secrets = SecretBox(settings.secret_key.get_secret_value()).open(sealed, sandbox_id=row.sandbox_id)
    except SecretsUnreadableError:
        checks = [
            CheckResult(
                "secrets",
                False,
                CheckCode.SECRETS_UNREADABLE,
                "The stored secrets cannot be decrypted with the current SECRET_KEY; enter them again.",
                0,
            )
        ]
    else:
        checks = await provider_checks(
            row.channel, values, secrets, settings.preset_check_timeout_seconds, egress=settings.egress_policy
        )
    updated = await finish_validation(preset_id=preset_id, version=version, checks=[c.as_dict() for c in checks])
    if updated is None:
        return {"presetId": preset_id, "recorded": False}
    logger.info(
        "preset validation recorded",
        extra={
            "preset_id": preset_id,
            "status": updated.status.value,
            "failed": [c.check for c in checks if not c.ok],
        },
    )
    await publish(ctx["redis"], updated.sandbox_id, PRESET_STATUS_TOPIC, updated.status_event())
    return {"presetId": preset_id, "recorded": True, "status": updated.status.value}
