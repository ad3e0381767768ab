"""Suppression list (add/remove/list, normalised, idempotent) and custom identity namespaces."""

from __future__ import annotations

from models.tenancy.audit import AuditEvent
from models.tenancy.sandbox import Role, Sandbox
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_profiles import upsert

ADD = """
mutation($input: SuppressionAddInput!) {
  suppressionAdd(input: $input) {
    __typename
    ... on SuppressionAddSuccess { created entry { id address channel reason createdAt } }
    ... on InvalidInputError { fieldErrors { field code } }
  }
}
"""
REMOVE = """
mutation($input: SuppressionRemoveInput!) {
  suppressionRemove(input: $input) { __typename ... on SuppressionRemoveSuccess { removedId } }
}
"""
LIST = """
query($channel: ContactChannel, $address: String) {
  suppressions(channel: $channel, address: $address) { totalCount nodes { address channel reason } }
}
"""
NS_CREATE = """
mutation($input: IdentityNamespaceCreateInput!) {
  identityNamespaceCreate(input: $input) {
    __typename
    ... on IdentityNamespaceCreateSuccess { namespace { code name type standard } }
    ... on InvalidInputError { fieldErrors { field code } }
  }
}
"""


async def test_suppression_add_list_remove(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    first = (
        await gql(
            ADD,
            {"input": {"channel": "EMAIL", "address": " Bounce@Example.com", "reason": "HARD_BOUNCE"}},
            key=sandbox.admin,
        )
    )["suppressionAdd"]
    assert first["created"] is True
    assert first["entry"]["address"] == "bounce@example.com"
    again = (await gql(ADD, {"input": {"channel": "EMAIL", "address": "bounce@example.com"}}, key=sandbox.admin))[
        "suppressionAdd"
    ]
    assert again["created"] is False and again["entry"]["reason"] == "HARD_BOUNCE"
    phone = (
        await gql(
            ADD,
            {"input": {"channel": "SMS", "address": "+1 (202) 555-0143", "reason": "UNSUBSCRIBE"}},
            key=sandbox.admin,
        )
    )["suppressionAdd"]
    assert phone["entry"]["address"] == "+12025550143"
    bad = (await gql(ADD, {"input": {"channel": "SMS", "address": "call me"}}, key=sandbox.admin))["suppressionAdd"]
    assert bad["fieldErrors"] == [{"field": "input.address", "code": "INVALID_PHONE"}]

    listed = (await gql(LIST, {}, key=sandbox.admin))["suppressions"]
    assert listed["totalCount"] == 2
    assert (await gql(LIST, {"channel": "SMS"}, key=sandbox.admin))["suppressions"]["totalCount"] == 1
    assert (await gql(LIST, {"address": "BOUNCE@example.com"}, key=sandbox.admin))["suppressions"]["totalCount"] == 1

    removed = (await gql(REMOVE, {"input": {"id": first["entry"]["id"]}}, key=sandbox.admin))["suppressionRemove"]
    assert removed["__typename"] == "SuppressionRemoveSuccess"
    gone = (await gql(REMOVE, {"input": {"id": first["entry"]["id"]}}, key=sandbox.admin))["suppressionRemove"]
    assert gone["__typename"] == "NotFoundError"
    sandbox_id = (await Sandbox.get(name=sandbox.name)).id
    actions = await AuditEvent.filter(sandbox_id=sandbox_id, object_type="SuppressionEntry").values_list(
        "action", flat=True
    )
    assert sorted(actions) == ["CREATE", "CREATE", "DELETE"]


async def test_suppression_needs_admin_and_stays_in_its_sandbox(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    publisher = sandbox.keys[Role.PUBLISHER]
    response = await gql.raw(ADD, {"input": {"channel": "EMAIL", "address": "a@example.com"}}, publisher)
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    entry = (await gql(ADD, {"input": {"channel": "EMAIL", "address": "a@example.com"}}, key=sandbox.admin))[
        "suppressionAdd"
    ]["entry"]
    assert (await gql(LIST, {}, key=other_sandbox.admin))["suppressions"]["totalCount"] == 0
    foreign = (await gql(REMOVE, {"input": {"id": entry["id"]}}, key=other_sandbox.admin))["suppressionRemove"]
    assert foreign["__typename"] == "NotFoundError"


async def test_custom_namespace_create(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    created = (
        await gql(
            NS_CREATE,
            {"input": {"code": "loyaltyId", "name": "Loyalty card", "type": "CROSS_DEVICE"}},
            key=sandbox.admin,
        )
    )["identityNamespaceCreate"]
    assert created["namespace"] == {
        "code": "loyaltyId",
        "name": "Loyalty card",
        "type": "CROSS_DEVICE",
        "standard": False,
    }
    for code in ("loyaltyId", "LOYALTYID", "Email"):
        taken = (await gql(NS_CREATE, {"input": {"code": code, "name": "x", "type": "PARTNER"}}, key=sandbox.admin))[
            "identityNamespaceCreate"
        ]
        assert taken["fieldErrors"] == [{"field": "input.code", "code": "TAKEN"}]
    bad = (await gql(NS_CREATE, {"input": {"code": "9 bad", "name": "", "type": "PARTNER"}}, key=sandbox.admin))[
        "identityNamespaceCreate"
    ]
    assert bad["fieldErrors"] == [
        {"field": "input.code", "code": "INVALID_CODE"},
        {"field": "input.name", "code": "INVALID"},
    ]

    # The new namespace keys profiles at once.
    data = await upsert(gql, sandbox.admin, [{"identities": [{"namespace": "loyaltyId", "value": " L-42 "}]}])
    assert data["results"][0]["profile"]["identities"] == [{"namespace": "loyaltyId", "value": "L-42"}]
    codes = [n["code"] for n in (await gql("{ identityNamespaces { code } }", key=sandbox.admin))["identityNamespaces"]]
    assert "loyaltyId" in codes


async def test_namespace_create_needs_admin(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    response = await gql.raw(
        NS_CREATE, {"input": {"code": "x", "name": "x", "type": "PARTNER"}}, sandbox.keys[Role.PUBLISHER]
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
