"""The validation job run directly (real database, Redis and providers): idempotence, deadlines, locking."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from jobs.context import job_ctx
from jobs.presets import validate_preset
from jobs.queue import JobQueue
from models.presets.actions import PresetInvalidStateError, SettingsChange, create_preset, update_preset
from models.presets.lifecycle import deactivate_preset, submit_validation
from models.presets.preset import MessagePreset
from models.presets.rules import Channel, PresetCategory, PresetStatus
from models.presets.secret_box import SecretBox
from models.tenancy.audit import AuditEvent
from models.tenancy.sandbox import Sandbox
from tests.conftest import REDIS_URL, TEST_SECRET, RunningServer, make_settings, new_sandbox
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER, silent_server, smtp_server

BOX = SecretBox(TEST_SECRET)


@pytest.fixture
async def sandbox_id(server: RunningServer) -> int:
    keys = await new_sandbox("jobs")
    return (await Sandbox.get(name=keys.name)).id


@pytest.fixture
async def ctx(server: RunningServer, database_url: str, redis: Redis) -> AsyncIterator[dict]:
    yield job_ctx(make_settings(database_url, preset_check_timeout_seconds=0.5), redis)


def email_change(port: int, *, auth: bool = True) -> SettingsChange:
    settings = {
        "sender_name": "Acme",
        "sender_address": "news@example.com",
        "list_unsubscribe": True,
        "execution_field": "personalEmail.address",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "tls_mode": "NONE",
        "max_connections": 2,
        "retry_period_minutes": 600,
    }
    if auth:
        settings["smtp_username"] = SMTP_USER
    return SettingsChange(Channel.EMAIL, settings, {"smtp_password": SMTP_PASSWORD} if auth else {})


async def submitted(sandbox_id: int, name: str, change: SettingsChange) -> MessagePreset:
    preset = await create_preset(
        sandbox_id=sandbox_id,
        actor="test",
        box=BOX,
        name=name,
        description="",
        channel=change.channel,
        category=PresetCategory.MARKETING,
        change=change,
    )
    return await submit_validation(sandbox_id=sandbox_id, preset_id=preset.id, actor="test")


async def outcomes(preset_id: int) -> list[str]:
    events = await AuditEvent.filter(object_type="MessagePreset", object_id=str(preset_id)).order_by("id")
    return [event.action for event in events if event.action.startswith(("VALIDATION_", "UPDATE_"))]


async def test_running_the_job_twice_records_the_outcome_once(ctx: dict, sandbox_id: int) -> None:
    with smtp_server(auth=True) as smtp:
        preset = await submitted(sandbox_id, "Twice", email_change(smtp.port))
        concurrent = await asyncio.gather(
            validate_preset(ctx, preset.id, preset.version), validate_preset(ctx, preset.id, preset.version)
        )
        again = await validate_preset(ctx, preset.id, preset.version)
    assert sorted(result["recorded"] for result in concurrent) == [False, True]
    assert again["recorded"] is False
    row = await MessagePreset.get(id=preset.id)
    assert row.status is PresetStatus.ACTIVE and row.version == preset.version + 1
    assert await outcomes(preset.id) == ["VALIDATION_SUCCEEDED"]


async def test_a_hanging_smtp_server_fails_the_preset_with_a_timeout(ctx: dict, sandbox_id: int) -> None:
    async with silent_server() as port:
        preset = await submitted(sandbox_id, "Hangs", email_change(port, auth=False))
        started = time.monotonic()
        result = await validate_preset(ctx, preset.id, preset.version)
        elapsed = time.monotonic() - started
    assert result == {"presetId": preset.id, "recorded": True, "status": "FAILED"}
    assert elapsed < 3
    row = await MessagePreset.get(id=preset.id)
    assert [(c["check"], c["code"]) for c in row.checks] == [("smtp.connect", "TIMEOUT")]


async def test_secrets_sealed_under_another_key_fail_as_unreadable(
    ctx: dict, sandbox_id: int, database_url: str
) -> None:
    preset = await submitted(sandbox_id, "Rotated", email_change(25))
    rotated = job_ctx(make_settings(database_url, secret_key="x" * 48), ctx["redis"])
    await validate_preset(rotated, preset.id, preset.version)
    row = await MessagePreset.get(id=preset.id)
    assert row.status is PresetStatus.FAILED
    assert [c["code"] for c in row.checks] == ["SECRETS_UNREADABLE"]


async def test_a_preset_being_validated_is_locked(ctx: dict, sandbox_id: int) -> None:
    preset = await submitted(sandbox_id, "Locked", email_change(25, auth=False))
    with pytest.raises(PresetInvalidStateError) as refused:
        await update_preset(sandbox_id=sandbox_id, preset_id=preset.id, actor="test", box=BOX, description="x")
    assert refused.value.status is PresetStatus.PROCESSING
    with pytest.raises(PresetInvalidStateError):
        await deactivate_preset(sandbox_id=sandbox_id, preset_id=preset.id, actor="test")
    # Submitting again changes nothing: same version, so the same deterministic job id.
    again = await submit_validation(sandbox_id=sandbox_id, preset_id=preset.id, actor="test")
    assert again.version == preset.version and again.status is PresetStatus.PROCESSING


async def test_validation_is_enqueued_once_per_version(sandbox_id: int, drain_jobs) -> None:
    preset = await submitted(sandbox_id, "Queued", SettingsChange(Channel.IN_APP, {"app_id": "com.example.app"}))
    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    try:
        queue = JobQueue(pool)
        assert await queue.validate_preset(preset.id, preset.version) is not None
        assert await queue.validate_preset(preset.id, preset.version) is None
    finally:
        await pool.aclose()

    await drain_jobs()  # (with what earlier tests of this module left queued)
    assert (await MessagePreset.get(id=preset.id)).status is PresetStatus.ACTIVE
    assert await outcomes(preset.id) == ["VALIDATION_SUCCEEDED"]


async def test_an_update_applies_only_for_the_version_it_was_queued_for(ctx: dict, sandbox_id: int) -> None:
    with smtp_server() as smtp:
        preset = await submitted(sandbox_id, "Pending", email_change(smtp.port, auth=False))
        await validate_preset(ctx, preset.id, preset.version)
        outcome = await update_preset(
            sandbox_id=sandbox_id,
            preset_id=preset.id,
            actor="test",
            box=BOX,
            change=email_change(smtp.port, auth=False),
        )
        assert outcome.needs_validation
        stale = await validate_preset(ctx, preset.id, outcome.preset.version - 1)
        fresh = await validate_preset(ctx, preset.id, outcome.preset.version)
    assert stale["recorded"] is False and fresh["recorded"] is True
    assert await outcomes(preset.id) == ["VALIDATION_SUCCEEDED", "UPDATE_APPLIED"]
