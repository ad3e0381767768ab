"""The egress policy at input (preset create/update over GraphQL, production settings) and again when the
validation job connects (the address a name resolves to may have changed since the input was accepted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from jobs.context import job_ctx
from jobs.presets import validate_preset
from models.egress_rules import REFUSED_MESSAGE
from models.presets.actions import SettingsChange, create_preset
from models.presets.lifecycle import submit_validation
from models.presets.preset import MessagePreset
from models.presets.rules import Channel, PresetCategory, PresetStatus
from models.presets.secret_box import SecretBox
from models.tenancy.sandbox import Sandbox
from tests.conftest import TEST_SECRET, GraphQLClient, RunningServer, SandboxKeys, make_settings, running_server
from tests.graphql.test_presets import CREATE, UPDATE, email_input
from tests.provider_servers import SMS_SID, SMS_TOKEN

INPUT_TARGETS = [
    "127.0.0.1",
    "::1",
    "localhost",
    "localhost.",
    "169.254.169.254",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "::ffff:127.0.0.1",
    "0.0.0.0",
    "2130706433",
    "0x7f000001",
    "017700000001",
]


@pytest.fixture(scope="module")
async def prod_server(server: RunningServer) -> AsyncIterator[RunningServer]:
    """The app with ENV=prod and no EGRESS_ALLOW: no exception to the public-only rule."""
    settings = make_settings(server.settings.database_url, env="prod")
    assert settings.egress_policy.networks == () and settings.egress_policy.hosts == ()
    async with running_server(settings, lifespan="off") as running:
        yield running


@pytest.fixture
async def prod_gql(prod_server: RunningServer) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield GraphQLClient(http, prod_server.graphql_url)


def sms_input(name: str, base_url: str) -> dict[str, Any]:
    sms = {"sender": "+15550001111", "providerBaseUrl": base_url, "accountSid": SMS_SID, "authToken": SMS_TOKEN}
    return {"name": name, "channel": "SMS", "category": "MARKETING", "settings": {"sms": sms}}


def field_errors(result: dict[str, Any]) -> list[tuple[str, str]]:
    assert result["__typename"] == "InvalidInputError", result
    return [(e["field"], e["code"]) for e in result["fieldErrors"]]


REFUSAL_CODES = {"ADDRESS_NOT_ALLOWED", "INVALID_HOST", "INVALID_URL"}


@pytest.mark.parametrize("host", INPUT_TARGETS)
async def test_create_and_update_refuse_internal_hosts_on_the_field(
    gql: GraphQLClient, prod_gql: GraphQLClient, sandbox: SandboxKeys, host: str
) -> None:
    url = f"https://[{host}]:8443" if ":" in host else f"https://{host}:8443"
    email = (await prod_gql(CREATE, {"input": email_input("E", 25, email={"smtpHost": host})}, key=sandbox.admin))[
        "messagePresetCreate"
    ]
    sms = (await prod_gql(CREATE, {"input": sms_input("S", url)}, key=sandbox.admin))["messagePresetCreate"]
    [(email_field, email_code)] = field_errors(email)
    [(sms_field, sms_code)] = field_errors(sms)
    assert (email_field, sms_field) == ("input.settings.email.smtpHost", "input.settings.sms.providerBaseUrl")
    assert {email_code, sms_code} <= REFUSAL_CODES

    # A preset accepted with a public name cannot be pointed inside afterwards (created on the dev server: this
    # one runs without lifespan, so without the event bus a successful create publishes to).
    created = (
        await gql(
            CREATE,
            {"input": sms_input(f"Public{INPUT_TARGETS.index(host)}", "https://api.twilio.com")},
            key=sandbox.admin,
        )
    )["messagePresetCreate"]
    assert created["__typename"] == "MessagePresetCreateSuccess", created
    change = {"id": created["preset"]["id"], "settings": sms_input("x", url)["settings"]}
    updated = (await prod_gql(UPDATE, {"input": change}, key=sandbox.admin))["messagePresetUpdate"]
    assert [field for field, _ in field_errors(updated)] == ["input.settings.sms.providerBaseUrl"]


async def test_the_refusal_names_the_setting(prod_gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    result = (
        await prod_gql(
            CREATE, {"input": email_input("M", 25, email={"smtpHost": "169.254.169.254"})}, key=sandbox.admin
        )
    )["messagePresetCreate"]
    assert result["fieldErrors"] == [
        {"field": "input.settings.email.smtpHost", "code": "ADDRESS_NOT_ALLOWED", "message": REFUSED_MESSAGE}
    ]


async def test_public_hosts_are_accepted_without_connecting(prod_gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    # Another field is wrong on purpose, so the answer lists every refused field and nothing is stored.
    for host in ("smtp.example.com", "8.8.8.8", "2001:4860:4860::8888", "127.0.0.1"):
        invalid = email_input("Pub", 25, email={"smtpHost": host, "senderAddress": "not an address"})
        result = (await prod_gql(CREATE, {"input": invalid}, key=sandbox.admin))["messagePresetCreate"]
        refused = [field for field, _ in field_errors(result)]
        expected = ["input.settings.email.senderAddress"]
        if host == "127.0.0.1":  # the control: the same request with an internal host names both fields
            expected.append("input.settings.email.smtpHost")
        assert sorted(refused) == sorted(expected), (host, refused)


async def test_validation_checks_again_when_it_connects(server: RunningServer, redis: Redis) -> None:
    """A host accepted under another policy (or a name that now resolves inside) fails validation with the
    policy's refusal, and nothing reaches the loopback listener it names."""
    accepted: list[Any] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername"))
        writer.close()

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    sandbox = await Sandbox.create(name=f"egress-{port}")
    values = {
        "sender_name": "Acme",
        "sender_address": "news@example.com",
        "list_unsubscribe": True,
        "execution_field": "personalEmail.address",
        "smtp_host": "localhost",  # resolves to loopback: refused when the job connects
        "smtp_port": port,
        "tls_mode": "NONE",
        "max_connections": 2,
        "retry_period_minutes": 600,
    }
    box = SecretBox(TEST_SECRET)
    checked: list[list[tuple[str, str, str]]] = []
    async with listener:
        for index, (channel, settings) in enumerate(
            [
                (Channel.EMAIL, values),
                (Channel.SMS, {"sender": "+15550001111", "provider_base_url": f"http://localhost:{port}"}),
            ]
        ):
            if channel is Channel.SMS:
                settings = {**settings, "account_sid": SMS_SID, "execution_field": "mobilePhone.number"}
            secrets = {"auth_token": SMS_TOKEN} if channel is Channel.SMS else {}
            preset = await create_preset(  # no policy given: accepted as the dev default would
                sandbox_id=sandbox.id,
                actor="test",
                box=box,
                name=f"Later{index}",
                description="",
                channel=channel,
                category=PresetCategory.MARKETING,
                change=SettingsChange(channel, settings, secrets),
            )
            preset = await submit_validation(sandbox_id=sandbox.id, preset_id=preset.id, actor="test")
            prod = make_settings(server.settings.database_url, env="prod", preset_check_timeout_seconds=2)
            await validate_preset(job_ctx(prod, redis), preset.id, preset.version)
            row = await MessagePreset.get(id=preset.id)
            assert row.status is PresetStatus.FAILED
            checked.append([(c["check"], c["code"], c["message"]) for c in row.checks])
    assert checked == [
        [("smtp.connect", "ADDRESS_NOT_ALLOWED", REFUSED_MESSAGE)],
        [("sms.reachable", "ADDRESS_NOT_ALLOWED", REFUSED_MESSAGE)],
    ]
    assert accepted == []
