"""What the crash tests do on the Herald side, in a process of its own (`python -m tests.crash.actions CMD JSON`).

The test process only talks SQL (asyncpg) to check the ledger: keeping Tortoise out of it leaves the session's
own ORM context (other suites) untouched. DATABASE_URL, REDIS_URL and SECRET_KEY come from the environment.
Prints one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise import Tortoise

from api.settings import Settings, tortoise_config

GOLD = {"condition": {"path": "tier", "operator": "EQ", "value": "gold"}}


def address(index: int, domain: str = "example.com") -> str:
    return f"p{index:05d}@{domain}"


async def add_profiles(sandbox_id: int, start: int, count: int, rejected_every: int = 0) -> None:
    from models.audience.entities import Consent, ContactChannel
    from models.audience.profiles import IdentityValue, ProfileChanges, upsert_profiles

    items = []
    for index in range(start, start + count):
        # Every `rejected_every`-th profile has an address the sink refuses with 550.
        domain = "gone.example.com" if rejected_every and index % rejected_every == 0 else "example.com"
        consent = {ContactChannel.EMAIL: Consent.N} if index % 97 == 1 else {}
        items.append(
            ProfileChanges(
                identities=[IdentityValue("Email", address(index, domain))],
                attributes={"tier": "gold", "person": {"name": {"firstName": f"N{index}"}}},
                consent=consent,
            )
        )
    for chunk in range(0, len(items), 1000):
        await upsert_profiles(sandbox_id, items[chunk : chunk + 1000], actor="crash-test")


async def seed(spec: dict[str, Any]) -> dict[str, Any]:
    from models.audience.entities import SegmentKind
    from models.audience.segments import create_segment
    from models.campaigns.actions import activate_campaign, create_campaign
    from models.presets.preset import MessagePreset
    from models.presets.rules import Channel, PresetCategory, PresetStatus
    from models.presets.secret_box import SecretBox
    from models.tenancy.actions import create_sandbox

    settings = Settings()
    sandbox = await create_sandbox(spec.get("sandbox") or f"crash-{datetime.now(UTC).timestamp():.0f}", actor="t")
    await add_profiles(sandbox.id, 0, spec["profiles"], spec.get("rejected_every", 0))
    in_app = spec.get("channel") == "IN_APP"
    preset = await MessagePreset.create(
        sandbox_id=sandbox.id,
        name="sink",
        channel=Channel.IN_APP if in_app else Channel.EMAIL,
        category=PresetCategory.MARKETING,
        status=PresetStatus.ACTIVE,
        settings={"app_id": "com.example.crash"}
        if in_app
        else {
            "sender_name": "Crash",
            "sender_address": "news@example.com",
            "smtp_host": "127.0.0.1",
            "smtp_port": spec["sink_port"],
            "tls_mode": "NONE",
            "list_unsubscribe": True,
            "max_connections": spec.get("max_connections", 5),
            "retry_period_minutes": spec.get("retry_minutes", 60),
        },
        secrets=SecretBox(settings.secret_key.get_secret_value()).seal({}, sandbox_id=sandbox.id),
    )
    segment = await create_segment(
        sandbox.id, name="gold", description="", kind=SegmentKind.RULE, rule=GOLD, actor="crash-test"
    )
    start_at = spec.get("start_at")
    if spec.get("start_in_seconds"):
        start_at = (datetime.now(UTC) + timedelta(seconds=spec["start_in_seconds"])).isoformat()
    values = {
        "name": "Crash",
        "description": "",
        "tags": [],
        "type": "SCHEDULED",
        "category": "MARKETING",
        "channel": "IN_APP" if in_app else "EMAIL",
        "preset_id": preset.id,
        "content": {"inApp": {"title": "Hi {{ profile.person.name.firstName }}", "body": "News", "buttons": []}}
        if in_app
        else {
            "email": {
                "subject": "Hello {{ profile.person.name.firstName }}",
                "preheader": None,
                "html": '<p>News</p><a href="{{ context.unsubscribeUrl }}">unsubscribe</a>',
                "text": "News",
            }
        },
        "tracking": {"opens": False, "clicks": False},
        "segment_id": segment.id,
        "namespace_code": "Email",
        "schedule": {"startAt": start_at, "frequency": "ONCE"} if start_at else {},
        "throttle_per_second": spec.get("throttle"),
        "waves": spec.get("waves"),
    }
    if spec.get("wave_start_offsets") is not None:  # startTimes this many seconds from now
        now = datetime.now(UTC)
        offsets = spec["wave_start_offsets"]
        values["waves"] = {**values["waves"], "startTimes": [(now + timedelta(seconds=s)).isoformat() for s in offsets]}
    campaign = await create_campaign(sandbox.id, values, actor="crash-test")
    activation = await activate_campaign(sandbox.id, campaign.id, actor="crash-test")
    run_id = activation.run.id if activation.run else None
    key = None
    if spec.get("api_key"):  # for subscribers over a real `herald serve`
        from models.tenancy.actions import create_api_key
        from models.tenancy.sandbox import Role

        _, key = await create_api_key(sandbox.name, Role.ADMIN, name="crash", actor="crash-test")
    if run_id is not None and spec.get("enqueue", True):
        await enqueue(run_id)
    return {
        "sandbox_id": sandbox.id,
        "campaign_id": campaign.id,
        "run_id": run_id,
        "preset_id": preset.id,
        "status": activation.campaign.status,
        "start_at": start_at,
        "api_key": key,
    }


# 24 zones, with the +05:45, +13:00 and -03:30 offsets; profile i lives in ZONES[i % 24].
ZONES = [
    "Pacific/Pago_Pago", "Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Denver",
    "America/Chicago", "America/New_York", "America/St_Johns", "America/Sao_Paulo", "Atlantic/Azores", "UTC",
    "Europe/Paris", "Europe/Athens", "Europe/Moscow", "Asia/Tehran", "Asia/Dubai", "Asia/Kolkata",
    "Asia/Kathmandu", "Asia/Dhaka", "Asia/Bangkok", "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney",
    "Pacific/Tongatapu",
]  # fmt: skip


async def seed_rules(spec: dict[str, Any]) -> dict[str, Any]:
    """Issue 18's scenario: profiles over 24 zones, a default rule set capping MARKETING email at `cap` per week,
    and one LIVE campaign per priority, activated lowest first; their runs enqueued in that order."""
    from models.audience.entities import SegmentKind
    from models.audience.profiles import IdentityValue, ProfileChanges, upsert_profiles
    from models.audience.segments import create_segment
    from models.business_rules.actions import RuleSetChange, create_rule_set
    from models.campaigns.actions import activate_campaign, create_campaign
    from models.presets.preset import MessagePreset
    from models.presets.rules import Channel, PresetCategory, PresetStatus
    from models.presets.secret_box import SecretBox
    from models.tenancy.actions import create_sandbox

    settings = Settings()
    sandbox = await create_sandbox(f"rules-{datetime.now(UTC).timestamp():.0f}", actor="t")
    items = [
        ProfileChanges(
            identities=[IdentityValue("Email", address(i))],
            attributes={"tier": "gold", "person": {"name": {"firstName": f"N{i}"}}},
            time_zone=ZONES[i % len(ZONES)],
        )
        for i in range(spec["profiles"])
    ]
    for chunk in range(0, len(items), 1000):
        await upsert_profiles(sandbox.id, items[chunk : chunk + 1000], actor="crash-test")
    cap = {"channel": "EMAIL", "category": "MARKETING", "limit": spec["cap"], "period": "WEEK"}
    await create_rule_set(
        sandbox_id=sandbox.id,
        actor="t",
        change=RuleSetChange(name="weekly", caps=[cap], quiet_hours=[], is_default=True),
    )
    preset = await MessagePreset.create(
        sandbox_id=sandbox.id, name="sink", channel=Channel.EMAIL, category=PresetCategory.MARKETING,
        status=PresetStatus.ACTIVE,
        settings={
            "sender_name": "Rules", "sender_address": "news@example.com", "smtp_host": "127.0.0.1",
            "smtp_port": spec["sink_port"], "tls_mode": "NONE", "list_unsubscribe": True, "max_connections": 5,
            "retry_period_minutes": 60,
        },
        secrets=SecretBox(settings.secret_key.get_secret_value()).seal({}, sandbox_id=sandbox.id),
    )  # fmt: skip
    segment = await create_segment(
        sandbox.id, name="gold", description="", kind=SegmentKind.RULE, rule=GOLD, actor="crash-test"
    )
    campaigns, runs = {}, []
    for priority in sorted(spec["priorities"]):
        values = {
            "name": f"P{priority}", "description": "", "tags": [], "type": "SCHEDULED", "category": "MARKETING",
            "channel": "EMAIL", "preset_id": preset.id, "priority": priority,
            "content": {"email": {"subject": f"P{priority}", "preheader": None,
                                  "html": '<p>News</p><a href="{{ context.unsubscribeUrl }}">unsubscribe</a>',
                                  "text": "News"}},
            "tracking": {"opens": False, "clicks": False}, "segment_id": segment.id, "namespace_code": "Email",
            "schedule": {},
        }  # fmt: skip
        campaign = await create_campaign(sandbox.id, values, actor="crash-test")
        activation = await activate_campaign(sandbox.id, campaign.id, actor="crash-test")
        campaigns[str(priority)] = campaign.id
        runs.append(activation.run.id)
    for run_id in runs:
        await enqueue(run_id)
    return {"sandbox_id": sandbox.id, "campaigns": campaigns, "runs": runs}


async def seed_api(spec: dict[str, Any]) -> dict[str, Any]:
    """A LIVE API_TRIGGERED TRANSACTIONAL email campaign, `profiles` profiles and a PUBLISHER key (issue 17)."""
    from strawberry import relay

    from models.campaigns.actions import activate_campaign, create_campaign
    from models.presets.preset import MessagePreset
    from models.presets.rules import Channel, PresetCategory, PresetStatus
    from models.presets.secret_box import SecretBox
    from models.tenancy.actions import create_api_key, create_sandbox
    from models.tenancy.sandbox import Role

    settings = Settings()
    sandbox = await create_sandbox(f"trigger-{datetime.now(UTC).timestamp():.0f}", actor="t")
    for start in range(0, spec["profiles"], 1000):
        await add_profiles(sandbox.id, start, min(1000, spec["profiles"] - start))
    preset = await MessagePreset.create(
        sandbox_id=sandbox.id,
        name="sink",
        channel=Channel.EMAIL,
        category=PresetCategory.TRANSACTIONAL,
        status=PresetStatus.ACTIVE,
        settings={
            "sender_name": "Crash",
            "sender_address": "orders@example.com",
            "smtp_host": "127.0.0.1",
            "smtp_port": spec["sink_port"],
            "tls_mode": "NONE",
            "max_connections": spec.get("max_connections", 5),
            "retry_period_minutes": 60,
        },
        secrets=SecretBox(settings.secret_key.get_secret_value()).seal({}, sandbox_id=sandbox.id),
    )
    values = {
        "name": "Receipts",
        "type": "API_TRIGGERED",
        "category": "TRANSACTIONAL",
        "channel": "EMAIL",
        "preset_id": preset.id,
        "content": {
            "email": {"subject": "Order {{ context.trigger.order }}", "html": "<p>Thanks</p>", "text": "Thanks"}
        },
        "tracking": {"opens": False, "clicks": False},
        "namespace_code": "Email",
        "trigger_context_sample": {"trigger": {"order": "1"}, "recipient": {}},
    }
    campaign = await create_campaign(sandbox.id, values, actor="crash-test")
    await activate_campaign(sandbox.id, campaign.id, actor="crash-test")
    _, key = await create_api_key(sandbox.name, Role.PUBLISHER, name="partner", actor="crash-test")
    return {"campaign_id": campaign.id, "campaign": str(relay.GlobalID("Campaign", str(campaign.id))), "key": key}


async def enqueue(run_id: int, job_id: str | None = None) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    from jobs.queue import JobQueue

    redis = await create_pool(RedisSettings.from_dsn(Settings().redis_url))
    try:
        if job_id:
            await JobQueue(redis).enqueue("execute_run", run_id, job_id=job_id)
        else:
            await JobQueue(redis).execute_run(run_id)
    finally:
        await redis.aclose()


async def stop(spec: dict[str, Any]) -> dict[str, Any]:
    from tortoise.exceptions import OperationalError

    from models.campaigns.actions import stop_campaign

    # On SQLite this process and the worker's share one file: under load the worker can hold the write lock past
    # the busy timeout. The stop's transaction then rolls back whole, and an operator would press Stop again.
    for attempt in range(5):
        try:
            row = await stop_campaign(spec["sandbox_id"], spec["campaign_id"], abort_running=spec["abort"], actor="t")
        except OperationalError as error:
            if "locked" not in str(error) or attempt == 4:
                raise
            continue
        return {"status": row.status}
    raise AssertionError("unreachable")


async def validate_and_resume(spec: dict[str, Any]) -> dict[str, Any]:
    """messagePresetValidate (its job run here, against the fixed relay) and, once the preset is ACTIVE,
    campaignRunResume as its resolver does it: the transition committed, then the job enqueued (unless the test
    plays an API process that died in between: `enqueue` false)."""
    from arq import create_pool
    from arq.connections import RedisSettings

    from jobs.context import job_ctx
    from jobs.presets import validate_preset
    from jobs.queue import JobQueue
    from models.campaigns.pausing import resume_paused_run
    from models.presets.lifecycle import submit_validation

    redis = await create_pool(RedisSettings.from_dsn(Settings().redis_url))
    try:
        preset = await submit_validation(sandbox_id=spec["sandbox_id"], preset_id=spec["preset_id"], actor="t")
        validated = await validate_preset(job_ctx(Settings(), redis), preset.id, preset.version)
        now = datetime.now(UTC)
        run = await resume_paused_run(spec["sandbox_id"], spec["run_id"], actor="crash-test", now=now)
        if spec.get("enqueue", True):
            await JobQueue(redis).resume_paused_run(run.id, str(int(now.timestamp() * 1000)))
    finally:
        await redis.aclose()
    return {"preset": validated.get("status"), "run": run.status.value}


async def dispatch_twice(spec: dict[str, Any]) -> dict[str, Any]:
    """Two dispatchers firing at the same instant (as two worker processes' crons can)."""
    from arq import create_pool
    from arq.connections import RedisSettings

    from jobs.dispatcher import dispatch

    now = datetime.fromisoformat(spec["now"])
    redis = await create_pool(RedisSettings.from_dsn(Settings().redis_url))
    try:
        reports = await asyncio.gather(dispatch(now, redis), dispatch(now, redis))
    finally:
        await redis.aclose()
    return {"created": [r.created for r in reports], "enqueued": [r.enqueued for r in reports]}


async def main(command: str, spec: dict[str, Any]) -> dict[str, Any]:
    settings = Settings()
    await Tortoise.init(config=tortoise_config(settings.resolved_database_url, 5))
    try:
        if command == "seed":
            return await seed(spec)
        if command == "seed_rules":
            return await seed_rules(spec)
        if command == "seed_api":
            return await seed_api(spec)
        if command == "add_profiles":
            await add_profiles(spec["sandbox_id"], spec["start"], spec["count"])
            return {}
        if command == "stop":
            return await stop(spec)
        if command == "validate_and_resume":
            return await validate_and_resume(spec)
        if command == "dispatch_twice":
            return await dispatch_twice(spec)
        if command == "enqueue":
            await enqueue(spec["run_id"], spec.get("job_id"))
            return {}
        raise SystemExit(f"unknown command {command}")
    finally:
        await Tortoise.close_connections()


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], orjson.loads(sys.argv[2])))
    sys.stdout.write(orjson.dumps(result, default=str).decode())
