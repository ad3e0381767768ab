"""Preset lifecycle actions after authoring: validation submitted and finished, activate, deactivate, delete.
One transaction each, audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models.campaigns.campaign import detach_drafts
from models.presets.actions import (
    OBJECT_TYPE,
    PresetConflictError,
    PresetInUseError,
    PresetInvalidStateError,
    _locked,
    _write,
    preset_in_use,
)
from models.presets.preset import MessagePreset
from models.presets.rules import (
    CheckCode,
    PresetAction,
    PresetStatus,
    PresetUpdateStatus,
    allowed_actions,
)
from models.tenancy.audit import record_audit


async def submit_validation(*, sandbox_id: int, preset_id: int, actor: str) -> MessagePreset:
    """DRAFT/FAILED → PROCESSING. On a preset already being validated, changes nothing (the caller re-queues
    the same deterministic job, which recovers a job lost from Redis)."""
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, preset_id)
        if PresetAction.VALIDATE not in allowed_actions(row.status, row.update_status):
            raise PresetInvalidStateError(row, PresetAction.VALIDATE)
        if row.status in (PresetStatus.DRAFT, PresetStatus.FAILED):
            before = row.public_state()
            await _write(conn, row, {"status": PresetStatus.PROCESSING, "checks": []})
            await record_audit(
                sandbox_id=sandbox_id,
                actor=actor,
                action="VALIDATE",
                object_type=OBJECT_TYPE,
                object_id=row.id,
                before=before,
                after=row.public_state(),
                using_db=conn,
            )
    return row


def is_validating(row: MessagePreset) -> bool:
    return row.status is PresetStatus.PROCESSING or (
        row.status is PresetStatus.ACTIVE and row.update_status is PresetUpdateStatus.PROCESSING
    )


def settings_under_validation(row: MessagePreset) -> tuple[dict[str, Any], str | None]:
    """The settings and sealed secrets the validation job must check."""
    if row.status is PresetStatus.ACTIVE:
        return row.pending_settings or {}, row.pending_secrets
    return row.settings, row.secrets


async def finish_validation(
    *, preset_id: int, version: int, checks: list[dict[str, Any]], actor: str = "system"
) -> MessagePreset | None:
    """Record the job's outcome. None when the preset moved on meanwhile (deleted, edited, or another run
    of the same job already recorded it): running the job twice changes nothing the second time."""
    ok = all(check["ok"] for check in checks)
    async with in_transaction() as conn:
        row = await MessagePreset.filter(id=preset_id).select_for_update().using_db(conn).first()
        if row is None or row.version != version or not is_validating(row):
            return None
        before = row.public_state()
        now = datetime.now(UTC)
        changes: dict[str, Any] = {"checks": checks, "validated_at": now}
        if row.status is PresetStatus.PROCESSING:
            changes["status"] = PresetStatus.ACTIVE if ok else PresetStatus.FAILED
            action = "VALIDATION_SUCCEEDED" if ok else "VALIDATION_FAILED"
        elif ok:
            changes.update(
                settings=row.pending_settings,
                secrets=row.pending_secrets,
                secret_names=row.pending_secret_names,
                pending_settings=None,
                pending_secrets=None,
                pending_secret_names=None,
                update_status=None,
            )
            action = "UPDATE_APPLIED"
        else:
            changes["update_status"] = PresetUpdateStatus.FAILED
            action = "UPDATE_FAILED"
        try:
            await _write(conn, row, changes)
        except PresetConflictError:
            return None
        await record_audit(
            sandbox_id=row.sandbox_id,
            actor=actor,
            action=action,
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before=before,
            after={**row.public_state(), "failedChecks": [c for c in checks if not c["ok"]]},
            using_db=conn,
        )
    return row


# The check name of the failure a run recorded on its preset (beside the validation job's checks).
SENDING_CHECK = "sending"


async def record_sending_failure(
    conn: BaseDBAsyncClient, *, preset_id: int, code: CheckCode, message: str, run_id: int, actor: str = "system:worker"
) -> MessagePreset | None:
    """A run paused on this preset (credentials or configuration refused by the provider): ACTIVE → FAILED with
    the failure as its check, so the preset shows the alert and must pass `messagePresetValidate` again before
    a paused run can resume. An edit waiting for validation is dropped (it was checked against the old secrets
    or is about to fail the same way). In the caller's transaction: the run's pause and its alert commit together.
    None when the preset is not ACTIVE (already flagged by another run)."""
    row = await MessagePreset.filter(id=preset_id).select_for_update().using_db(conn).first()
    if row is None or row.status is not PresetStatus.ACTIVE:
        return None
    before = row.public_state()
    check = {"check": SENDING_CHECK, "ok": False, "code": code.value, "message": message[:2000], "durationMs": 0}
    changes: dict[str, Any] = {
        "status": PresetStatus.FAILED,
        "checks": [check],
        "validated_at": datetime.now(UTC),
        "pending_settings": None,
        "pending_secrets": None,
        "pending_secret_names": None,
        "update_status": None,
    }
    try:
        await _write(conn, row, changes)
    except PresetConflictError:
        return None
    await record_audit(
        sandbox_id=row.sandbox_id,
        actor=actor,
        action="SENDING_FAILED",
        object_type=OBJECT_TYPE,
        object_id=row.id,
        before=before,
        after={**row.public_state(), "failedChecks": [check], "runId": run_id},
        using_db=conn,
    )
    return row


async def _transition(
    *, sandbox_id: int, preset_id: int, actor: str, action: PresetAction, to: PresetStatus, check_in_use: bool
) -> MessagePreset:
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, preset_id)
        if action not in allowed_actions(row.status, row.update_status):
            raise PresetInvalidStateError(row, action)
        if check_in_use and (campaigns := await preset_in_use(row.id, conn)):
            raise PresetInUseError(campaigns, action)
        before = row.public_state()
        await _write(conn, row, {"status": to})
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action=action.value,
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before=before,
            after=row.public_state(),
            using_db=conn,
        )
    return row


async def deactivate_preset(*, sandbox_id: int, preset_id: int, actor: str) -> MessagePreset:
    return await _transition(
        sandbox_id=sandbox_id,
        preset_id=preset_id,
        actor=actor,
        action=PresetAction.DEACTIVATE,
        to=PresetStatus.DEACTIVATED,
        check_in_use=True,
    )


async def activate_preset(*, sandbox_id: int, preset_id: int, actor: str) -> MessagePreset:
    """DEACTIVATED → ACTIVE: its settings passed validation before and have not changed since."""
    return await _transition(
        sandbox_id=sandbox_id,
        preset_id=preset_id,
        actor=actor,
        action=PresetAction.ACTIVATE,
        to=PresetStatus.ACTIVE,
        check_in_use=False,
    )


async def delete_preset(*, sandbox_id: int, preset_id: int, actor: str) -> MessagePreset:
    async with in_transaction() as conn:
        row = await _locked(conn, sandbox_id, preset_id)
        if PresetAction.DELETE not in allowed_actions(row.status, row.update_status):
            raise PresetInvalidStateError(row, PresetAction.DELETE)
        if campaigns := await preset_in_use(row.id, conn):
            raise PresetInUseError(campaigns, PresetAction.DELETE)
        await detach_drafts(preset_id=row.id, using_db=conn)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="DELETE",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            before=row.public_state(),
            using_db=conn,
        )
        await MessagePreset.filter(id=row.id).using_db(conn).delete()
    return row
