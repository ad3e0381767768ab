"""profilesUpsert, profile, profileByIdentity, profiles: merge by identity, per-item errors, isolation."""

from __future__ import annotations

from typing import Any

from models.audience.entities import Profile, ProfileIdentity
from models.tenancy.sandbox import Sandbox
from tests.conftest import GraphQLClient, SandboxKeys

UPSERT = """
mutation($input: ProfilesUpsertInput!) {
  profilesUpsert(input: $input) {
    __typename
    ... on ProfilesUpsertSuccess {
      created updated unchanged failed
      results { index status errors { field code } profile { id attributes testProfile timeZone
        consent { email sms push } identities { namespace value } } }
    }
    ... on InvalidInputError { fieldErrors { field code } }
  }
}
"""
BY_IDENTITY = """
query($ns: String!, $value: String!) {
  profileByIdentity(namespace: $ns, value: $value) { id attributes identities { namespace value } }
}
"""
PROFILES = """
query($filter: ProfileFilterInput, $first: Int, $after: String) {
  profiles(filter: $filter, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } nodes { id identities { value } }
  }
}
"""


def email(value: str, **fields: Any) -> dict[str, Any]:
    return {"identities": [{"namespace": "Email", "value": value}], **fields}


async def upsert(gql: GraphQLClient, key: str, profiles: list[dict[str, Any]]) -> dict[str, Any]:
    return (await gql(UPSERT, {"input": {"profiles": profiles}}, key=key))["profilesUpsert"]


async def test_create_then_merge_by_any_identity(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    manager = sandbox.keys[next(r for r in sandbox.keys if r.value == "MANAGER")]
    first = await upsert(
        gql,
        manager,
        [
            email(
                " Ann.Smith@Example.COM ",
                attributes={"person": {"name": {"firstName": "Ann"}}, "loyalty": {"points": 5}},
                consent={"email": "Y"},
                timeZone="Europe/Paris",
            )
        ],
    )
    assert (first["created"], first["failed"]) == (1, 0)
    profile = first["results"][0]["profile"]
    assert profile["identities"] == [{"namespace": "Email", "value": "ann.smith@example.com"}]
    assert profile["consent"] == {"email": "Y", "sms": "UNKNOWN", "push": "UNKNOWN"}

    second = await upsert(
        gql,
        manager,
        [
            {
                "identities": [
                    {"namespace": "Email", "value": "ann.smith@example.com"},
                    {"namespace": "Phone", "value": "+33 6 12 34 56 78"},
                ],
                "attributes": {"loyalty": {"tier": "gold"}, "person": None},
            }
        ],
    )
    result = second["results"][0]
    assert result["status"] == "UPDATED"
    assert result["profile"]["id"] == profile["id"]
    assert result["profile"]["attributes"] == {"loyalty": {"points": 5, "tier": "gold"}}
    assert {"namespace": "Phone", "value": "+33612345678"} in result["profile"]["identities"]
    assert result["profile"]["timeZone"] == "Europe/Paris"

    again = await upsert(gql, manager, [email("ANN.SMITH@example.com", attributes={"loyalty": {"tier": "gold"}})])
    assert again["results"][0]["status"] == "UNCHANGED"

    found = (await gql(BY_IDENTITY, {"ns": "Phone", "value": "+33612345678"}, key=manager))["profileByIdentity"]
    assert found["id"] == profile["id"]


async def test_bad_items_are_reported_and_do_not_block_others(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(12):
        cursor["x"] = {}
        cursor = cursor["x"]
    items = [
        email("ok1@example.com"),
        email("not-an-email"),
        {"identities": [{"namespace": "Phone", "value": "12"}]},
        {"identities": [{"namespace": "Nope", "value": "x"}]},
        email("big@example.com", attributes={"blob": "x" * 70_000}),
        email("deep@example.com", attributes=deep),
        email("tz@example.com", timeZone="Mars/Olympus"),
        {"identities": []},
        email("ok2@example.com", testProfile=True),
    ]
    data = await upsert(gql, sandbox.admin, items)

    statuses = [r["status"] for r in data["results"]]
    assert statuses == ["CREATED"] + ["ERROR"] * 7 + ["CREATED"]
    errors = {r["index"]: r["errors"][0] for r in data["results"] if r["errors"]}
    assert errors[1] == {"field": "input.profiles[1].identities[0].value", "code": "INVALID_EMAIL"}
    assert errors[2]["code"] == "INVALID_PHONE"
    assert errors[3] == {"field": "input.profiles[3].identities[0].namespace", "code": "UNKNOWN_NAMESPACE"}
    assert errors[4]["code"] == "TOO_LARGE"
    assert errors[5]["code"] == "TOO_DEEP"
    assert errors[6] == {"field": "input.profiles[6].timeZone", "code": "UNKNOWN_TIME_ZONE"}
    assert errors[7]["code"] == "COUNT"
    sandbox_id = (await Sandbox.get(name=sandbox.name)).id
    # Nothing half-written: only the two good profiles and their identities exist.
    assert await Profile.filter(sandbox_id=sandbox_id).count() == 2
    assert await ProfileIdentity.filter(sandbox_id=sandbox_id).count() == 2


async def test_a_nul_byte_anywhere_refuses_the_request_before_any_write(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    # NUL bytes are refused for the whole request by the GraphQL layer (PostgreSQL cannot store them).
    items = [email("ok@example.com"), email("nul@example.com", attributes={"name": "a\u0000b"})]
    response = await gql.raw(UPSERT, {"input": {"profiles": items}}, sandbox.admin)
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    sandbox_id = (await Sandbox.get(name=sandbox.name)).id
    assert await Profile.filter(sandbox_id=sandbox_id).count() == 0


async def test_identities_of_two_profiles_conflict(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    await upsert(gql, sandbox.admin, [email("a@example.com"), email("b@example.com")])
    data = await upsert(
        gql,
        sandbox.admin,
        [
            {
                "identities": [
                    {"namespace": "Email", "value": "a@example.com"},
                    {"namespace": "Email", "value": "b@example.com"},
                ]
            }
        ],
    )
    assert data["results"][0]["errors"] == [{"field": "input.profiles[0].identities", "code": "IDENTITY_CONFLICT"}]


async def test_same_identity_twice_in_one_batch_creates_one_profile(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    data = await upsert(gql, sandbox.admin, [email("x@example.com", testProfile=True), email("X@example.com")])
    assert [r["status"] for r in data["results"]] == ["CREATED", "UNCHANGED"]


async def test_batch_limits(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    empty = await upsert(gql, sandbox.admin, [])
    assert empty["fieldErrors"] == [{"field": "input.profiles", "code": "COUNT"}]
    too_many = await upsert(gql, sandbox.admin, [email(f"u{i}@example.com") for i in range(1001)])
    assert too_many["__typename"] == "InvalidInputError"


async def test_viewer_cannot_upsert(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    viewer = sandbox.keys[next(r for r in sandbox.keys if r.value == "VIEWER")]
    response = await gql.raw(UPSERT, {"input": {"profiles": [email("v@example.com")]}}, viewer)
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_profiles_list_filters_and_pages(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    await upsert(
        gql,
        sandbox.admin,
        [email(f"p{i}@example.com", testProfile=(i % 3 == 0)) for i in range(7)],
    )
    page = (await gql(PROFILES, {"first": 3}, key=sandbox.admin))["profiles"]
    assert page["totalCount"] == 7 and page["pageInfo"]["hasNextPage"]
    seen = [n["id"] for n in page["nodes"]]
    while page["pageInfo"]["hasNextPage"]:
        page = (await gql(PROFILES, {"first": 3, "after": page["pageInfo"]["endCursor"]}, key=sandbox.admin))[
            "profiles"
        ]
        seen += [n["id"] for n in page["nodes"]]
    assert len(seen) == len(set(seen)) == 7

    tests = (await gql(PROFILES, {"filter": {"testProfile": True}}, key=sandbox.admin))["profiles"]
    assert tests["totalCount"] == 3
    one = (
        await gql(
            PROFILES,
            {"filter": {"identity": {"namespace": "Email", "value": "P4@example.com"}}},
            key=sandbox.admin,
        )
    )["profiles"]
    assert [n["identities"] for n in one["nodes"]] == [[{"value": "p4@example.com"}]]


async def test_profiles_do_not_cross_sandboxes(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    mine = await upsert(gql, sandbox.admin, [email("shared@example.com")])
    theirs = await upsert(gql, other_sandbox.admin, [email("shared@example.com")])
    # The same identity in two sandboxes is two profiles.
    assert theirs["results"][0]["status"] == "CREATED"
    my_id = mine["results"][0]["profile"]["id"]
    assert (await gql("query($id: ID!) { profile(id: $id) { id } }", {"id": my_id}, key=other_sandbox.admin))[
        "profile"
    ] is None
    assert (await gql("query($id: ID!) { node(id: $id) { id } }", {"id": my_id}, key=other_sandbox.admin))[
        "node"
    ] is None
    assert (await gql(PROFILES, {}, key=other_sandbox.admin))["profiles"]["totalCount"] == 1
