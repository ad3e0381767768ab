"""Message presets over GraphQL, with validation run by the real in-process worker against real providers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from redis.asyncio import Redis
from strawberry import relay

from models.presets.preset import MessagePreset as MessagePresetModel
from models.presets.secret_box import SecretBox
from models.tenancy.audit import AuditEvent
from models.tenancy.sandbox import Sandbox
from tests.conftest import TEST_SECRET, GraphQLClient, RunningServer, SandboxKeys, subscribe
from tests.provider_servers import (
    SMS_SID,
    SMS_TOKEN,
    SMTP_PASSWORD,
    SMTP_USER,
    SmtpServer,
    closed_port,
    http_provider,
    smtp_server,
)

PRESET_FIELDS = """
fragment P on MessagePreset {
  id name description channel category status updateStatus version availableActions
  settings { ...S }
  pendingSettings { ...S }
  checks { check ok code message }
  failedChecks { check code message }
}
fragment S on PresetSettings {
  __typename
  ... on EmailPresetSettings {
    senderName senderAddress replyToAddress smtpHost smtpPort tlsMode smtpUsername smtpPasswordSet
    retryPeriodMinutes executionField listUnsubscribe maxConnections
  }
  ... on SmsPresetSettings { sender providerBaseUrl accountSid authTokenSet executionField }
  ... on PushPresetSettings { platforms appId fcmProjectId providerBaseUrl serviceAccountSet }
  ... on InAppPresetSettings { appId }
}
"""
ERRORS = """
... on NotFoundError { message id }
... on InvalidStateError { message currentStatus allowedActions }
"""
INVALID_INPUT = " ... on InvalidInputError { message fieldErrors { field code message } } "
CONFLICT = " ... on ConflictError { message currentVersion } "
CREATE = (
    "mutation($input: MessagePresetCreateInput!) { messagePresetCreate(input: $input) { __typename "
    "... on MessagePresetCreateSuccess { preset { ...P } } ... on InvalidInputError { message fieldErrors "
    "{ field code message } } } }" + PRESET_FIELDS
)
UPDATE = (
    "mutation($input: MessagePresetUpdateInput!) { messagePresetUpdate(input: $input) { __typename "
    "... on MessagePresetUpdateSuccess { validationQueued preset { ...P } } "
    + ERRORS
    + INVALID_INPUT
    + CONFLICT
    + " } }"
    + PRESET_FIELDS
)
VALIDATE = (
    "mutation($input: MessagePresetValidateInput!) { messagePresetValidate(input: $input) { __typename "
    "... on MessagePresetValidateSuccess { preset { ...P } } " + ERRORS + CONFLICT + " } }" + PRESET_FIELDS
)
ACTIVATE = (
    "mutation($input: MessagePresetActivateInput!) { messagePresetActivate(input: $input) { __typename "
    "... on MessagePresetActivateSuccess { preset { status } } " + ERRORS + CONFLICT + " } }"
)
DEACTIVATE = (
    "mutation($input: MessagePresetDeactivateInput!) { messagePresetDeactivate(input: $input) { __typename "
    "... on MessagePresetDeactivateSuccess { preset { status } } "
    "... on PresetInUseError { message campaigns } " + ERRORS + CONFLICT + " } }"
)
DELETE = (
    "mutation($input: MessagePresetDeleteInput!) { messagePresetDelete(input: $input) { __typename "
    "... on MessagePresetDeleteSuccess { deletedId } ... on PresetInUseError { campaigns } " + ERRORS + " } }"
)
GET = "query($id: ID!) { messagePreset(id: $id) { ...P } }" + PRESET_FIELDS
NODE = "query($id: ID!) { node(id: $id) { id ... on MessagePreset { name } } }"
LIST = (
    "query($channel: Channel, $status: MessagePresetStatus) { messagePresets(first: 50, "
    "channel: $channel, status: $status) { totalCount nodes { name channel status } } }"
)


@pytest.fixture(scope="module")
def smtp_auth() -> Iterator[SmtpServer]:
    with smtp_server(auth=True) as server:
        yield server


@pytest.fixture(scope="module")
def smtp_plain() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def email_input(name: str, port: int, **overrides: Any) -> dict[str, Any]:
    email = {
        "senderName": "Acme News",
        "senderAddress": "news@example.com",
        "replyToAddress": "help@example.com",
        "smtpHost": "127.0.0.1",
        "smtpPort": port,
        "tlsMode": "NONE",
        "smtpUsername": SMTP_USER,
        "smtpPassword": SMTP_PASSWORD,
    }
    email.update(overrides.pop("email", {}))
    return {
        "name": name,
        "channel": "EMAIL",
        "category": "MARKETING",
        "settings": {"email": email},
        **overrides,
    }


def in_app_input(name: str) -> dict[str, Any]:
    return {"name": name, "channel": "IN_APP", "settings": {"inApp": {"appId": "com.example.app"}}}


async def create(gql: GraphQLClient, key: str, input: dict[str, Any]) -> dict[str, Any]:
    result = (await gql(CREATE, {"input": input}, key=key))["messagePresetCreate"]
    assert result["__typename"] == "MessagePresetCreateSuccess", result
    return result["preset"]


async def get(gql: GraphQLClient, key: str, preset_id: str) -> dict[str, Any] | None:
    return (await gql(GET, {"id": preset_id}, key=key))["messagePreset"]


async def validated(gql: GraphQLClient, key: str, preset_id: str) -> dict[str, Any]:
    """Submit, then run the validation job and read the outcome."""
    result = (await gql(VALIDATE, {"input": {"id": preset_id}}, key=key))["messagePresetValidate"]
    assert result["__typename"] == "MessagePresetValidateSuccess", result
    assert result["preset"]["status"] == "PROCESSING"
    await gql.drain_jobs()
    preset = await get(gql, key, preset_id)
    assert preset is not None and preset["status"] in {"ACTIVE", "FAILED"}, preset
    return preset


def pk_of(preset_id: str) -> int:
    return int(relay.GlobalID.from_id(preset_id).node_id)


async def audit_of(preset_id: str, sandbox_name: str) -> list[AuditEvent]:
    sandbox = await Sandbox.get(name=sandbox_name)
    query = AuditEvent.filter(sandbox_id=sandbox.id, object_type="MessagePreset", object_id=str(pk_of(preset_id)))
    return await query.order_by("id")


async def test_email_preset_with_auth_validates_to_active_and_never_returns_the_password(
    gql: GraphQLClient, sandbox: SandboxKeys, smtp_auth: SmtpServer
) -> None:
    create_response = await gql.raw(CREATE, {"input": email_input("Newsletter", smtp_auth.port)}, sandbox.admin)
    assert SMTP_PASSWORD not in create_response.text
    preset = create_response.json()["data"]["messagePresetCreate"]["preset"]
    assert preset["status"] == "DRAFT"
    assert preset["settings"]["smtpPasswordSet"] is True
    # Defaults from the input type.
    assert preset["settings"]["executionField"] == "personalEmail.address"
    assert preset["settings"]["retryPeriodMinutes"] == 84 * 60

    active = await validated(gql, sandbox.admin, preset["id"])

    assert active["status"] == "ACTIVE", active["checks"]
    assert [(c["check"], c["ok"]) for c in active["checks"]] == [
        ("smtp.connect", True),
        ("smtp.ehlo", True),
        ("smtp.auth", True),
    ]
    assert active["availableActions"] == ["UPDATE", "DEACTIVATE"]
    read = await gql.raw(GET, {"id": preset["id"]}, sandbox.admin)
    assert SMTP_PASSWORD not in read.text

    # At rest: encrypted, yet readable with the key.
    row = await MessagePresetModel.get(id=pk_of(preset["id"]))
    assert SMTP_PASSWORD not in (row.secrets or "") and SMTP_PASSWORD not in json.dumps(row.settings)
    assert SecretBox(TEST_SECRET).open(row.secrets, sandbox_id=row.sandbox_id) == {"smtp_password": SMTP_PASSWORD}

    events = await audit_of(preset["id"], sandbox.name)
    assert [e.action for e in events] == ["CREATE", "VALIDATE", "VALIDATION_SUCCEEDED"]
    assert all(SMTP_PASSWORD not in json.dumps([e.before, e.after]) for e in events)
    assert events[0].after["secretsSet"] == ["smtp_password"]


async def test_bad_credentials_fail_then_a_fixed_password_passes(
    gql: GraphQLClient, sandbox: SandboxKeys, smtp_auth: SmtpServer
) -> None:
    preset = await create(
        gql, sandbox.admin, email_input("BadPass", smtp_auth.port, email={"smtpPassword": "not-the-password"})
    )
    failed = await validated(gql, sandbox.admin, preset["id"])
    assert failed["status"] == "FAILED"
    assert [(c["check"], c["code"]) for c in failed["failedChecks"]] == [("smtp.auth", "AUTH_FAILED")]
    assert "not-the-password" not in json.dumps(failed)
    assert set(failed["availableActions"]) == {"UPDATE", "VALIDATE", "DELETE"}

    # Edit only the password (the rest of the settings restated): the preset returns to DRAFT.
    fix = email_input("BadPass", smtp_auth.port)["settings"]
    updated = (await gql(UPDATE, {"input": {"id": preset["id"], "settings": fix}}, key=sandbox.admin))[
        "messagePresetUpdate"
    ]
    assert updated["preset"]["status"] == "DRAFT" and updated["validationQueued"] is False
    assert (await validated(gql, sandbox.admin, preset["id"]))["status"] == "ACTIVE"
    actions = [e.action for e in await audit_of(preset["id"], sandbox.name)]
    assert actions == [
        "CREATE",
        "VALIDATE",
        "VALIDATION_FAILED",
        "UPDATE",
        "VALIDATE",
        "VALIDATION_SUCCEEDED",
    ]


@pytest.mark.parametrize(
    ("overrides", "failed"),
    [
        ({"smtpPort": "closed"}, [("smtp.connect", "CONNECTION_REFUSED")]),
        ({"tlsMode": "STARTTLS"}, [("smtp.starttls", "STARTTLS_UNAVAILABLE")]),
    ],
    ids=["connection-refused", "tls-required-but-unavailable"],
)
async def test_smtp_failures_are_recorded_per_check(
    gql: GraphQLClient, sandbox: SandboxKeys, smtp_plain: SmtpServer, overrides: dict, failed: list
) -> None:
    email = {"smtpUsername": None, "smtpPassword": None, **overrides}
    if email.get("smtpPort") == "closed":
        email["smtpPort"] = closed_port()
    preset = await create(gql, sandbox.admin, email_input("Broken", smtp_plain.port, email=email))
    result = await validated(gql, sandbox.admin, preset["id"])
    assert result["status"] == "FAILED"
    assert [(c["check"], c["code"]) for c in result["failedChecks"]] == failed
    assert all(c["message"] for c in result["failedChecks"])


async def test_sms_preset_checks_the_http_provider(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    async with http_provider() as base_url:
        good = await create(gql, sandbox.admin, sms_input("Sms.good", base_url, SMS_TOKEN))
        bad = await create(gql, sandbox.admin, sms_input("Sms.bad", base_url, "wrong-token"))
        assert good["settings"]["authTokenSet"] is True
        good_result = await validated(gql, sandbox.admin, good["id"])
        bad_result = await validated(gql, sandbox.admin, bad["id"])
    assert good_result["status"] == "ACTIVE"
    assert [c["check"] for c in good_result["checks"]] == ["sms.reachable", "sms.credentials"]
    assert bad_result["status"] == "FAILED"
    assert [(c["check"], c["code"]) for c in bad_result["failedChecks"]] == [("sms.credentials", "AUTH_FAILED")]

    listed = (await gql(LIST, {"channel": "SMS", "status": "ACTIVE"}, key=sandbox.admin))["messagePresets"]
    assert listed == {"totalCount": 1, "nodes": [{"name": "Sms.good", "channel": "SMS", "status": "ACTIVE"}]}


def sms_input(name: str, base_url: str, token: str) -> dict[str, Any]:
    return {
        "name": name,
        "channel": "SMS",
        "category": "TRANSACTIONAL",
        "settings": {
            "sms": {
                "sender": "+14155550100",
                "providerBaseUrl": base_url,
                "accountSid": SMS_SID,
                "authToken": token,
            }
        },
    }


BAD_INPUTS = [
    (
        "bad-sender",
        {"email": {"senderAddress": "not-an-address"}},
        "input.settings.email.senderAddress",
        "INVALID_EMAIL",
    ),
    (
        "bad-reply-to",
        {"email": {"replyToAddress": "a@b"}},
        "input.settings.email.replyToAddress",
        "INVALID_EMAIL",
    ),
    ("port-high", {"email": {"smtpPort": 70000}}, "input.settings.email.smtpPort", "OUT_OF_RANGE"),
    ("port-zero", {"email": {"smtpPort": 0}}, "input.settings.email.smtpPort", "OUT_OF_RANGE"),
    (
        "bad-host",
        {"email": {"smtpHost": "smtp..example.com"}},
        "input.settings.email.smtpHost",
        "INVALID_HOST",
    ),
    (
        "retry-too-short",
        {"email": {"retryPeriodMinutes": 60}},
        "input.settings.email.retryPeriodMinutes",
        "OUT_OF_RANGE",
    ),
    (
        "oversized-sender-name",
        {"email": {"senderName": "x" * 5000}},
        "input.settings.email.senderName",
        "TOO_LONG",
    ),
    (
        "oversized-password",
        {"email": {"smtpPassword": "p" * 5000}},
        "input.settings.email.smtpPassword",
        "TOO_LONG",
    ),
    (
        "header-injection",
        {"email": {"senderName": "a\r\nBcc: x@example.com"}},
        "input.settings.email.senderName",
        "INVALID_CHARACTERS",
    ),
    ("bad-name", {"name": "1st"}, "input.name", "INVALID_NAME"),
    ("oversized-name", {"name": "n" * 101}, "input.name", "TOO_LONG"),
    (
        "other-channel",
        {
            "settings": {
                "sms": {
                    "sender": "+14155550100",
                    "providerBaseUrl": "https://sms.example.com",
                    "accountSid": "AC1",
                    "authToken": "t",
                }
            }
        },
        "input.settings.sms",
        "CHANNEL_MISMATCH",
    ),
]


@pytest.mark.parametrize(("case", "overrides", "field", "code"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
async def test_bad_input_is_refused_with_field_errors_and_nothing_saved(
    gql: GraphQLClient, sandbox: SandboxKeys, case: str, overrides: dict, field: str, code: str
) -> None:
    input = {**email_input("Refused", 2525, email=overrides.pop("email", {})), **overrides}
    response = await gql.raw(CREATE, {"input": input}, sandbox.admin)
    assert response.status_code == 200
    result = response.json()["data"]["messagePresetCreate"]
    assert result["__typename"] == "InvalidInputError"
    assert [(e["field"], e["code"]) for e in result["fieldErrors"]] == [(field, code)]
    assert SMTP_PASSWORD not in response.text
    sandbox_row = await Sandbox.get(name=sandbox.name)
    assert await MessagePresetModel.filter(sandbox_id=sandbox_row.id).count() == 0
    assert await AuditEvent.filter(sandbox_id=sandbox_row.id, object_type="MessagePreset").count() == 0


async def test_settings_for_two_channels_at_once_are_refused(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    input = in_app_input("Both")
    input["settings"]["email"] = email_input("x", 25)["settings"]["email"]
    response = await gql.raw(CREATE, {"input": input}, sandbox.admin)
    assert "exactly one key" in response.json()["errors"][0]["message"]


async def test_name_is_unique_per_sandbox(gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys) -> None:
    await create(gql, sandbox.admin, in_app_input("Inbox"))
    again = (await gql(CREATE, {"input": in_app_input("Inbox")}, key=sandbox.admin))["messagePresetCreate"]
    assert [(e["field"], e["code"]) for e in again["fieldErrors"]] == [("input.name", "NAME_TAKEN")]
    # Another sandbox may use the same name.
    await create(gql, other_sandbox.admin, in_app_input("Inbox"))


async def test_editing_an_active_preset_keeps_the_previous_settings_until_the_new_ones_pass(
    gql: GraphQLClient, sandbox: SandboxKeys, smtp_auth: SmtpServer
) -> None:
    preset = await create(gql, sandbox.admin, email_input("Live", smtp_auth.port))
    assert (await validated(gql, sandbox.admin, preset["id"]))["status"] == "ACTIVE"
    pid = preset["id"]

    # Name and channel are read-only once ACTIVE.
    renamed = (await gql(UPDATE, {"input": {"id": pid, "name": "Other"}}, key=sandbox.admin))["messagePresetUpdate"]
    assert [(e["field"], e["code"]) for e in renamed["fieldErrors"]] == [("input.name", "READ_ONLY")]
    rechannel = {"id": pid, "channel": "IN_APP", "settings": {"inApp": {"appId": "com.example.app"}}}
    rechanneled = (await gql(UPDATE, {"input": rechannel}, key=sandbox.admin))["messagePresetUpdate"]
    assert ("input.channel", "READ_ONLY") in [(e["field"], e["code"]) for e in rechanneled["fieldErrors"]]

    # New settings pointing nowhere: pending, then FAILED; the ACTIVE settings never change.
    broken = email_input("Live", closed_port())["settings"]
    del broken["email"]["smtpPassword"]  # omitted: the stored password is kept
    result = (await gql(UPDATE, {"input": {"id": pid, "settings": broken}}, key=sandbox.admin))["messagePresetUpdate"]
    assert result["validationQueued"] is True
    assert result["preset"]["status"] == "ACTIVE" and result["preset"]["updateStatus"] == "PROCESSING"
    assert result["preset"]["settings"]["smtpPort"] == smtp_auth.port
    assert result["preset"]["pendingSettings"]["smtpPasswordSet"] is True

    await gql.drain_jobs()
    after_failure = await get(gql, sandbox.admin, pid)
    assert after_failure["updateStatus"] == "FAILED"
    assert after_failure["status"] == "ACTIVE"
    assert after_failure["settings"]["smtpPort"] == smtp_auth.port
    assert after_failure["pendingSettings"]["smtpPort"] == broken["email"]["smtpPort"]
    assert [c["code"] for c in after_failure["failedChecks"]] == ["CONNECTION_REFUSED"]

    # A good edit applies once it passes.
    good = email_input("Live", smtp_auth.port, email={"maxConnections": 3})["settings"]
    await gql(UPDATE, {"input": {"id": pid, "settings": good, "description": "three"}}, key=sandbox.admin)

    await gql.drain_jobs()
    final = await get(gql, sandbox.admin, pid)
    assert final["updateStatus"] is None
    assert final["settings"]["maxConnections"] == 3 and final["pendingSettings"] is None
    assert final["description"] == "three" and final["status"] == "ACTIVE"
    actions = [e.action for e in await audit_of(pid, sandbox.name)]
    assert actions[-4:] == ["UPDATE", "UPDATE_FAILED", "UPDATE", "UPDATE_APPLIED"]


async def test_secrets_are_kept_when_omitted_and_cleared_with_null(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset = await create(gql, sandbox.admin, email_input("Secrets", 2525))
    kept = email_input("Secrets", 2526)["settings"]
    del kept["email"]["smtpPassword"]
    result = (await gql(UPDATE, {"input": {"id": preset["id"], "settings": kept}}, key=sandbox.admin))[
        "messagePresetUpdate"
    ]
    assert result["preset"]["settings"]["smtpPasswordSet"] is True
    cleared = email_input("Secrets", 2526, email={"smtpPassword": None})["settings"]
    refused = (await gql(UPDATE, {"input": {"id": preset["id"], "settings": cleared}}, key=sandbox.admin))[
        "messagePresetUpdate"
    ]
    # A username without a password is refused, so clearing it alone is too.
    assert [(e["field"], e["code"]) for e in refused["fieldErrors"]] == [
        ("input.settings.email.smtpPassword", "REQUIRED")
    ]
    cleared["email"]["smtpUsername"] = None
    done = (await gql(UPDATE, {"input": {"id": preset["id"], "settings": cleared}}, key=sandbox.admin))[
        "messagePresetUpdate"
    ]
    assert done["preset"]["settings"]["smtpPasswordSet"] is False
    assert done["preset"]["settings"]["smtpUsername"] is None


async def test_state_machine_of_an_in_app_preset(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset = await create(gql, sandbox.admin, in_app_input("Inbox.main"))
    pid = {"input": {"id": preset["id"]}}
    active = await validated(gql, sandbox.admin, preset["id"])
    assert active["status"] == "ACTIVE" and active["checks"] == []

    refused = (await gql(DELETE, pid, key=sandbox.admin))["messagePresetDelete"]
    assert refused == {
        "__typename": "InvalidStateError",
        "message": "Cannot delete a preset that is ACTIVE.",
        "currentStatus": "ACTIVE",
        "allowedActions": ["UPDATE", "DEACTIVATE"],
    }
    assert (await gql(VALIDATE, pid, key=sandbox.admin))["messagePresetValidate"]["__typename"] == ("InvalidStateError")
    assert (await gql(ACTIVATE, pid, key=sandbox.admin))["messagePresetActivate"]["__typename"] == ("InvalidStateError")
    deactivated = (await gql(DEACTIVATE, pid, key=sandbox.admin))["messagePresetDeactivate"]
    assert deactivated["preset"]["status"] == "DEACTIVATED"
    assert (await gql(ACTIVATE, pid, key=sandbox.admin))["messagePresetActivate"]["preset"]["status"] == "ACTIVE"
    await gql(DEACTIVATE, pid, key=sandbox.admin)
    deleted = (await gql(DELETE, pid, key=sandbox.admin))["messagePresetDelete"]
    assert deleted == {"__typename": "MessagePresetDeleteSuccess", "deletedId": preset["id"]}
    assert await get(gql, sandbox.admin, preset["id"]) is None
    actions = [e.action for e in await audit_of(preset["id"], sandbox.name)]
    assert actions == [
        "CREATE",
        "VALIDATE",
        "VALIDATION_SUCCEEDED",
        "DEACTIVATE",
        "ACTIVATE",
        "DEACTIVATE",
        "DELETE",
    ]


async def test_stale_version_is_a_conflict(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset = await create(gql, sandbox.admin, in_app_input("Versioned"))
    first = {"id": preset["id"], "version": preset["version"], "description": "one"}
    assert (await gql(UPDATE, {"input": first}, key=sandbox.admin))["messagePresetUpdate"]["preset"]["version"] == (
        preset["version"] + 1
    )
    stale = (await gql(UPDATE, {"input": {**first, "description": "two"}}, key=sandbox.admin))["messagePresetUpdate"]
    assert stale["__typename"] == "ConflictError"
    assert stale["currentVersion"] == preset["version"] + 1
    assert (await get(gql, sandbox.admin, preset["id"]))["description"] == "one"


async def test_presets_do_not_cross_sandboxes(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    preset = await create(gql, sandbox.admin, in_app_input("Mine"))
    pid = preset["id"]
    theirs = other_sandbox.admin
    assert await get(gql, theirs, pid) is None
    assert (await gql(NODE, {"id": pid}, key=theirs))["node"] is None
    assert (await gql(NODE, {"id": pid}, key=sandbox.admin))["node"] == {"id": pid, "name": "Mine"}
    assert (await gql(LIST, {}, key=theirs))["messagePresets"]["totalCount"] == 0
    for mutation, name in [
        (UPDATE, "messagePresetUpdate"),
        (VALIDATE, "messagePresetValidate"),
        (ACTIVATE, "messagePresetActivate"),
        (DEACTIVATE, "messagePresetDeactivate"),
        (DELETE, "messagePresetDelete"),
    ]:
        input = {"id": pid, "description": "hijacked"} if mutation is UPDATE else {"id": pid}
        result = (await gql(mutation, {"input": input}, key=theirs))[name]
        assert result["__typename"] == "NotFoundError", (name, result)
    unchanged = await get(gql, sandbox.admin, pid)
    assert unchanged["status"] == "DRAFT" and unchanged["description"] == "" and unchanged["version"] == 1


@pytest.mark.parametrize("bad_id", ["", "garbage", "TWVzc2FnZVByZXNldDotMQ==", "QXVkaXRFdmVudDox"])
async def test_malformed_or_other_type_ids_are_not_found(gql: GraphQLClient, sandbox: SandboxKeys, bad_id: str) -> None:
    assert await get(gql, sandbox.admin, bad_id) is None
    result = (await gql(VALIDATE, {"input": {"id": bad_id}}, key=sandbox.admin))["messagePresetValidate"]
    assert result["__typename"] == "NotFoundError"


async def test_only_admins_manage_presets_and_viewers_read_them(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    from models.tenancy.sandbox import Role

    response = await gql.raw(CREATE, {"input": in_app_input("Nope")}, sandbox.keys[Role.PUBLISHER])
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    preset = await create(gql, sandbox.admin, in_app_input("Readable"))
    assert (await get(gql, sandbox.keys[Role.VIEWER], preset["id"]))["name"] == "Readable"


async def test_status_changes_reach_subscribers(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys, redis: Redis
) -> None:
    preset = await create(gql, sandbox.admin, in_app_input("Watched"))
    subscription = (
        "subscription($id: ID) { messagePresetStatusChanged(id: $id) { presetId status updateStatus version } }"
    )
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox.admin}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": subscription, "variables": {"id": preset["id"]}}
        assert await subscribe(server, ws, {"id": "1", "type": "subscribe", "payload": payload}) is None
        await validated(gql, sandbox.admin, preset["id"])
        seen = []
        while not seen or seen[-1] != "ACTIVE":
            message = json.loads(await ws.recv())
            assert message["type"] == "next", message
            event = message["payload"]["data"]["messagePresetStatusChanged"]
            assert event["presetId"] == preset["id"]
            seen.append(event["status"])
    assert seen == ["PROCESSING", "ACTIVE"]


async def test_a_preset_in_use_cannot_be_deactivated_or_deleted(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    from tests.graphql.test_campaigns import activate, audience, ready_input
    from tests.graphql.test_campaigns import create as create_campaign

    preset = await create(gql, sandbox.admin, in_app_input("Used"))
    await validated(gql, sandbox.admin, preset["id"])
    draft_only = await create(gql, sandbox.admin, in_app_input("DraftOnly"))
    await validated(gql, sandbox.admin, draft_only["id"])
    segment_id = await audience(gql, sandbox)
    live = await create_campaign(gql, sandbox, ready_input(preset["id"], segment_id, name="Spring sale"))
    assert (await activate(gql, sandbox, live["id"]))["__typename"] == "CampaignActivateSuccess"
    draft = await create_campaign(gql, sandbox, ready_input(draft_only["id"], segment_id, name="Draft"))

    pid = {"input": {"id": preset["id"]}}
    refused = (await gql(DEACTIVATE, pid, key=sandbox.admin))["messagePresetDeactivate"]
    assert refused["__typename"] == "PresetInUseError"
    assert refused["campaigns"] == ["campaign 'Spring sale'"]
    assert "Spring sale" in refused["message"]
    assert (await get(gql, sandbox.admin, preset["id"]))["status"] == "ACTIVE"

    # A draft does not hold its preset: deleting the preset detaches the draft, whose review then says so.
    other = {"input": {"id": draft_only["id"]}}
    assert (await gql(DEACTIVATE, other, key=sandbox.admin))["messagePresetDeactivate"]["__typename"] == (
        "MessagePresetDeactivateSuccess"
    )
    assert (await gql(DELETE, other, key=sandbox.admin))["messagePresetDelete"]["__typename"] == (
        "MessagePresetDeleteSuccess"
    )
    detached = await gql(
        "query($id: ID!) { campaign(id: $id) { preset { id } version } }", {"id": draft["id"]}, key=sandbox.admin
    )
    assert detached["campaign"] == {"preset": None, "version": 2}
