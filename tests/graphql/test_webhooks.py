"""Webhook endpoints over GraphQL: ADMIN only, the secret shown once, input refused by field (URL shape,
internal addresses, unknown events), rotation, sandbox isolation, the delivery log and replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs.webhooks import send_due
from models.egress_rules import parse_allow
from models.presets.secret_box import SecretBox
from models.tenancy.audit import AuditEvent
from models.webhooks.model import WebhookDelivery, WebhookEndpoint
from models.webhooks.rules import SECRET_PREFIX
from resolvers.nodes import pk_of
from tests.conftest import TEST_SECRET, GraphQLClient, SandboxKeys, free_port
from tests.jobs.fan_out_drain import drain_fan_out
from tests.jobs.test_webhooks import _status_event

CREATE = """mutation($input: WebhookEndpointCreateInput!) { webhookEndpointCreate(input: $input) {
  __typename
  ... on WebhookEndpointSecretSuccess { secret endpoint { id url events enabled } }
  ... on InvalidInputError { fieldErrors { field code } } } }"""
DELIVERIES = """query($id: ID!) { webhookDeliveries(endpointId: $id) {
  id webhookId eventType status attempts { attempt statusCode error latencyMs } } }"""
REPLAY = """mutation($id: ID!) { webhookDeliveryReplay(id: $id) {
  __typename ... on WebhookDeliveryReplaySuccess { delivery { status webhookId } } } }"""


async def test_create_shows_the_secret_once_and_refuses_bad_input_by_field(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    url = "https://partner.example/hook"
    created = (await gql(CREATE, {"input": {"url": url, "events": ["campaign.status_changed"]}}, key=sandbox.admin))[
        "webhookEndpointCreate"
    ]
    assert created["__typename"] == "WebhookEndpointSecretSuccess" and created["secret"].startswith(SECRET_PREFIX)
    endpoint = created["endpoint"]
    assert endpoint["url"] == url and endpoint["enabled"] is True
    row = await WebhookEndpoint.get(id=pk_of(endpoint["id"], "WebhookEndpoint"))
    assert created["secret"] not in row.secret_sealed  # sealed at rest
    assert SecretBox(TEST_SECRET).open(row.secret_sealed, sandbox_id=row.sandbox_id)["secret"] == created["secret"]
    assert await AuditEvent.exists(action="webhook_endpoint.created", object_id=str(row.id))

    listed = await gql("{ webhookEndpoints { id url } }", key=sandbox.admin)
    assert listed["webhookEndpoints"] == [{"id": endpoint["id"], "url": url}]  # no secret field exists
    assert (await gql("{ webhookEndpoints { id } }", key=other_sandbox.admin))["webhookEndpoints"] == []

    for bad, field, code in [
        ({"url": "ftp://partner.example/", "events": ["run.finished"]}, "input.url", "INVALID_URL"),
        ({"url": "http://10.0.0.1/hook", "events": ["run.finished"]}, "input.url", "ADDRESS_NOT_ALLOWED"),
        ({"url": "http://169.254.169.254/", "events": ["run.finished"]}, "input.url", "ADDRESS_NOT_ALLOWED"),
        ({"url": url, "events": ["campaign.deleted"]}, "input.events", "UNKNOWN_EVENT"),
        ({"url": url, "events": ["run.finished"], "maxInFlight": 0}, "input.maxInFlight", "OUT_OF_RANGE"),
    ]:
        refused = (await gql(CREATE, {"input": bad}, key=sandbox.admin))["webhookEndpointCreate"]
        assert refused == {"__typename": "InvalidInputError", "fieldErrors": [{"field": field, "code": code}]}


async def test_viewers_and_editors_cannot_see_or_change_endpoints(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    for role, key in sandbox.keys.items():
        if role.value == "ADMIN":
            continue
        body = (await gql.raw("{ webhookEndpoints { id } }", key=key)).json()
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", role


async def test_rotate_then_the_delivery_log_and_replay(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # loopback is allowed outside production; nobody listens
    created = await gql(CREATE, {"input": {"url": url, "events": ["campaign.status_changed"]}}, key=sandbox.admin)
    endpoint = created["webhookEndpointCreate"]["endpoint"]
    rotated = await gql(
        "mutation($id: ID!) { webhookEndpointRotateSecret(id: $id) { ... on WebhookEndpointSecretSuccess { secret "
        "endpoint { previousSecretUntil } } } }",
        {"id": endpoint["id"]},
        key=sandbox.admin,
    )
    new_secret = rotated["webhookEndpointRotateSecret"]["secret"]
    assert new_secret != created["webhookEndpointCreate"]["secret"]
    assert rotated["webhookEndpointRotateSecret"]["endpoint"]["previousSecretUntil"] is not None

    row = await WebhookEndpoint.get(id=pk_of(endpoint["id"], "WebhookEndpoint"))
    await _status_event(row.sandbox_id)
    now = datetime.now(UTC) + timedelta(days=30)
    await drain_fan_out(now)
    box = SecretBox(TEST_SECRET)
    sent = await send_due(box=box, policy=parse_allow("127.0.0.0/8"), timeout=1, now=now, endpoint_ids=[row.id])
    assert sent == 1

    log = (await gql(DELIVERIES, {"id": endpoint["id"]}, key=sandbox.admin))["webhookDeliveries"]
    assert len(log) == 1 and log[0]["status"] == "PENDING" and log[0]["eventType"] == "campaign.status_changed"
    assert log[0]["attempts"][0]["attempt"] == 1 and log[0]["attempts"][0]["error"].startswith("CONNECTION")
    assert (await gql(DELIVERIES, {"id": endpoint["id"]}, key=other_sandbox.admin))["webhookDeliveries"] == []

    foreign = (await gql(REPLAY, {"id": log[0]["id"]}, key=other_sandbox.admin))["webhookDeliveryReplay"]
    assert foreign["__typename"] == "NotFoundError"
    replayed = (await gql(REPLAY, {"id": log[0]["id"]}, key=sandbox.admin))["webhookDeliveryReplay"]
    assert replayed["delivery"] == {"status": "PENDING", "webhookId": log[0]["webhookId"]}
    delivery = await WebhookDelivery.get(id=pk_of(log[0]["id"], "WebhookDelivery"))
    assert delivery.next_attempt_at <= datetime.now(UTC)

    deleted = await gql(
        "mutation($id: ID!) { webhookEndpointDelete(id: $id) { __typename } }",
        {"id": endpoint["id"]},
        key=sandbox.admin,
    )
    assert deleted["webhookEndpointDelete"]["__typename"] == "WebhookEndpointDeleteSuccess"
    assert not await WebhookDelivery.exists(id=delivery.id)
