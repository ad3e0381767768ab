"""Domain actions on message presets: one transaction each, row locked and compare-and-set on `version`,
audited in the same transaction. Enqueuing and publishing are the caller's job, after commit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.campaigns.campaign import campaigns_using
from models.egress_rules import EgressPolicy
from models.presets.channel_rules import validate_settings
from models.presets.preset import MessagePreset
from models.presets.rules import (
    SECRET_FIELDS,
    Channel,
    PresetAction,
    PresetCategory,
    PresetStatus,
    PresetUpdateStatus,
    Problem,
    allowed_actions,
    camel,
    channel_mismatch,
    validate_description,
    validate_name,
)
from models.presets.secret_box import SecretBox, SecretsUnreadableError
from models.tenancy.audit import record_audit

OBJECT_TYPE = "MessagePreset"


class PresetError(Exception):
    """An expected refusal."""


class PresetNotFoundError(PresetError):
    pass


class PresetInvalidInputError(PresetError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("The input was refused; nothing was changed.")
        self.problems = problems


class PresetInvalidStateError(PresetError):
    def __init__(self, preset: MessagePreset, action: PresetAction) -> None:
        state = preset.status.value
        if preset.update_status is PresetUpdateStatus.PROCESSING:
            state += " (an update is being validated)"
        super().__init__(f"Cannot {action.value.lower()} a preset that is {state}.")
        self.status = preset.status
        self.allowed = allowed_actions(preset.status, preset.update_status)


class PresetConflictError(PresetError):
    def __init__(self, message: str, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


class PresetInUseError(PresetError):
    def __init__(self, campaigns: list[str], action: PresetAction) -> None:
        super().__init__(f"Cannot {action.value.lower()} the preset: it is used by campaign(s) {', '.join(campaigns)}.")
        self.campaigns = campaigns


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """New channel settings. `secrets_patch`: a value sets, None clears, an absent key keeps the stored."""

    channel: Channel
    settings: dict[str, Any]
    secrets_patch: dict[str, str | None] = field(default_factory=dict)


async def preset_in_use(preset_id: int, using_db: Any = None) -> list[str]:
    """Names of non-draft campaigns using the preset: deactivate and delete refuse while there are any."""
    return await campaigns_using(preset_id=preset_id, using_db=using_db)


def _merge_secrets(stored: Mapping[str, str], patch: Mapping[str, str | None], channel: Channel) -> dict[str, str]:
    merged = {k: v for k, v in stored.items() if k in SECRET_FIELDS[channel]}
    for key, value in patch.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


async def _locked(conn: BaseDBAsyncClient, sandbox_id: int, preset_id: int) -> MessagePreset:
    # FOR UPDATE on PostgreSQL; SQLite serialises writers, and the version compare-and-set covers both.
    row = await MessagePreset.filter(id=preset_id, sandbox_id=sandbox_id).select_for_update().using_db(conn).first()
    if row is None:
        raise PresetNotFoundError(f"No message preset {preset_id} in this sandbox.")
    return row


async def _write(conn: BaseDBAsyncClient, row: MessagePreset, changes: dict[str, Any]) -> MessagePreset:
    """Compare-and-set on version; applies `changes` to `row` in memory and bumps its version."""
    now = datetime.now(UTC)
    updated = (
        await MessagePreset.filter(id=row.id, version=row.version)
        .using_db(conn)
        .update(**changes, version=row.version + 1, updated_at=now)
    )
    if updated != 1:
        raise PresetConflictError("The preset was changed concurrently; read it again and retry.")
    for key, value in changes.items():
        setattr(row, key, value)
    row.version += 1
    row.updated_at = now
    return row


async def _name_taken(conn: BaseDBAsyncClient, sandbox_id: int, name: str, exclude_id: int | None) -> bool:
    query = MessagePreset.filter(sandbox_id=sandbox_id, name=name)
    if exclude_id is not None:
        query = query.exclude(id=exclude_id)
    return await query.using_db(conn).exists()


NAME_TAKEN = Problem("input.name", "NAME_TAKEN", "Another preset of this sandbox has this name.")


def _settings_problems(
    channel: Channel,
    category: PresetCategory,
    settings: Mapping[str, Any],
    secrets: Mapping[str, str],
    egress: EgressPolicy | None = None,
) -> list[Problem]:
    return validate_settings(
        channel, category, settings, secrets, prefix=f"input.settings.{camel(channel.value.lower())}", egress=egress
    )


async def create_preset(
    *,
    sandbox_id: int,
    actor: str,
    box: SecretBox,
    name: str,
    description: str,
    channel: Channel,
    category: PresetCategory,
    change: SettingsChange,
    egress: EgressPolicy | None = None,
) -> MessagePreset:
    """`egress`: the policy the settings' host or provider URL must pass (checked again at connect time)."""
    problems = [*validate_name(name), *validate_description(description)]
    problems += channel_mismatch(channel, change.channel, "input.settings")
    if not problems:
        secrets = _merge_secrets({}, change.secrets_patch, channel)
        problems += _settings_problems(channel, category, change.settings, secrets, egress)
    if problems:
        raise PresetInvalidInputError(problems)
    try:
        async with in_transaction() as conn:
            if await _name_taken(conn, sandbox_id, name, None):
                raise PresetInvalidInputError([NAME_TAKEN])
            row = await MessagePreset.create(
                sandbox_id=sandbox_id,
                name=name,
                description=description,
                channel=channel,
                category=category,
                status=PresetStatus.DRAFT,
                settings=change.settings,
                secrets=box.seal(secrets, sandbox_id=sandbox_id),
                secret_names=sorted(secrets),
                using_db=conn,
            )
            await record_audit(
                sandbox_id=sandbox_id,
                actor=actor,
                action="CREATE",
                object_type=OBJECT_TYPE,
                object_id=row.id,
                after=row.public_state(),
                using_db=conn,
            )
    except IntegrityError as error:  # a concurrent create won the unique (sandbox, name)
        raise PresetInvalidInputError([NAME_TAKEN]) from error
    return row


UNCHANGED: Any = object()


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    preset: MessagePreset
    needs_validation: bool
    status_changed: bool = False


async def update_preset(
    *,
    sandbox_id: int,
    preset_id: int,
    actor: str,
    box: SecretBox,
    expected_version: int | None = None,
    name: Any = UNCHANGED,
    description: Any = UNCHANGED,
    category: Any = UNCHANGED,
    channel: Any = UNCHANGED,
    change: SettingsChange | None = None,
    egress: EgressPolicy | None = None,
) -> UpdateOutcome:
    """DRAFT/FAILED: everything is editable (a FAILED preset returns to DRAFT). ACTIVE: name and channel are
    read-only; description and category apply at once; new settings wait as pending until validated."""
    problems: list[Problem] = []
    if name is not UNCHANGED:
        problems += validate_name(name)
    if description is not UNCHANGED:
        problems += validate_description(description)
    if problems:
        raise PresetInvalidInputError(problems)
    try:
        async with in_transaction() as conn:
            row = await _locked(conn, sandbox_id, preset_id)
            if expected_version is not None and expected_version != row.version:
                raise PresetConflictError(
                    f"The preset is at version {row.version}, not {expected_version}; read it again.",
                    current_version=row.version,
                )
            if PresetAction.UPDATE not in allowed_actions(row.status, row.update_status):
                raise PresetInvalidStateError(row, PresetAction.UPDATE)
            outcome = await _apply_update(
                conn,
                row,
                actor=actor,
                box=box,
                name=name,
                description=description,
                category=category,
                channel=channel,
                change=change,
                egress=egress,
            )
    except IntegrityError as error:
        raise PresetInvalidInputError([NAME_TAKEN]) from error
    return outcome


async def _apply_update(
    conn: BaseDBAsyncClient,
    row: MessagePreset,
    *,
    actor: str,
    box: SecretBox,
    name: Any,
    description: Any,
    category: Any,
    channel: Any,
    change: SettingsChange | None,
    egress: EgressPolicy | None,
) -> UpdateOutcome:
    before = row.public_state()
    active = row.status is PresetStatus.ACTIVE
    new_channel = row.channel if channel is UNCHANGED else channel
    new_category = row.category if category is UNCHANGED else category
    problems: list[Problem] = []
    if active and name is not UNCHANGED and name != row.name:
        problems.append(Problem("input.name", "READ_ONLY", "The name of an ACTIVE preset cannot change."))
    if new_channel is not row.channel:
        if active:
            problems.append(Problem("input.channel", "READ_ONLY", "The channel of an ACTIVE preset cannot change."))
        elif change is None:
            problems.append(Problem("input.settings", "REQUIRED", "A new channel needs its settings."))
    if change is not None:
        problems += channel_mismatch(new_channel, change.channel, "input.settings")
    if problems:
        raise PresetInvalidInputError(problems)

    # The secrets the settings will be validated with: stored ones of the same channel, patched.
    stored: dict[str, str] = {}
    if new_channel is row.channel:
        try:
            stored = box.open(row.secrets, sandbox_id=row.sandbox_id)
        except SecretsUnreadableError:
            # Sealed under another SECRET_KEY: the rules then ask for the secrets to be entered again.
            stored = {}
    if change is not None:
        secrets = _merge_secrets(stored, change.secrets_patch, new_channel)
        problems += _settings_problems(new_channel, new_category, change.settings, secrets, egress)
    if category is not UNCHANGED and (change is None or active):
        # The settings in force must also hold under the new category (e.g. the retry period bounds).
        problems += _settings_problems(row.channel, new_category, row.settings, stored)
    if name is not UNCHANGED and name != row.name and await _name_taken(conn, row.sandbox_id, name, row.id):
        problems.append(NAME_TAKEN)
    if problems:
        raise PresetInvalidInputError(list(dict.fromkeys(problems)))

    changes: dict[str, Any] = {}
    if name is not UNCHANGED:
        changes["name"] = name
    if description is not UNCHANGED:
        changes["description"] = description
    if category is not UNCHANGED:
        changes["category"] = new_category
    needs_validation = False
    if change is not None and active:
        changes.update(
            pending_settings=change.settings,
            pending_secrets=box.seal(secrets, sandbox_id=row.sandbox_id),
            pending_secret_names=sorted(secrets),
            update_status=PresetUpdateStatus.PROCESSING,
        )
        needs_validation = True
    elif change is not None:
        changes.update(
            channel=new_channel,
            settings=change.settings,
            secrets=box.seal(secrets, sandbox_id=row.sandbox_id),
            secret_names=sorted(secrets),
        )
    if row.status is PresetStatus.FAILED and (change is not None or "category" in changes):
        # The recorded failure was about the old settings.
        changes.update(status=PresetStatus.DRAFT, checks=[])
    if not changes:
        return UpdateOutcome(row, False)
    status_before = (row.status, row.update_status)
    await _write(conn, row, changes)
    await record_audit(
        sandbox_id=row.sandbox_id,
        actor=actor,
        action="UPDATE",
        object_type=OBJECT_TYPE,
        object_id=row.id,
        before=before,
        after=row.public_state(),
        using_db=conn,
    )
    return UpdateOutcome(row, needs_validation, status_before != (row.status, row.update_status))
