"""Segments over GraphQL: typed rules and their field errors, static members, delete guard, estimates."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_profiles import email, upsert

CREATE = """
mutation($input: SegmentCreateInput!) {
  segmentCreate(input: $input) {
    __typename
    ... on SegmentSaveSuccess { segment { id name kind rule } }
    ... on InvalidInputError { fieldErrors { field code } }
  }
}
"""
UPDATE = """
mutation($input: SegmentUpdateInput!) {
  segmentUpdate(input: $input) {
    __typename
    ... on SegmentSaveSuccess { segment { id name rule } }
    ... on InvalidInputError { fieldErrors { field code } }
  }
}
"""
DELETE = """
mutation($input: SegmentDeleteInput!) {
  segmentDelete(input: $input) {
    __typename ... on SegmentInUseError { usedBy } ... on SegmentDeleteSuccess { deletedId }
  }
}
"""
MEMBERS_ADD = """
mutation($input: SegmentMembersInput!) {
  segmentMembersAdd(input: $input) {
    __typename
    ... on SegmentMembersChangeSuccess { changed matched unmatched { field code } }
    ... on InvalidInputError { fieldErrors { field code } }
  }
}
"""
MEMBERS_REMOVE = MEMBERS_ADD.replace("segmentMembersAdd", "segmentMembersRemove")
ESTIMATE = """
query($id: ID!, $ns: String!, $channel: ContactChannel!) {
  segmentEstimate(id: $id, namespace: $ns, channel: $channel) { qualified withIdentity contactable }
}
"""
PROFILES_IN = "query($id: ID!) { profiles(filter: {segmentId: $id}) { totalCount nodes { identities { value } } } }"


def cond(path: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"condition": {"path": path, "operator": operator, "value": value}}


async def create(gql: GraphQLClient, key: str, **fields: Any) -> dict[str, Any]:
    return (await gql(CREATE, {"input": {"kind": "RULE", **fields}}, key=key))["segmentCreate"]


async def test_rule_segment_round_trip_and_members(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    await upsert(
        gql,
        sandbox.admin,
        [
            email("gold@example.com", attributes={"loyalty": {"points": 500}}),
            email("low@example.com", attributes={"loyalty": {"points": 10}}),
        ],
    )
    rule = {"all": [cond("loyalty.points", "GTE", 100), {"not": cond("blocked", "EQ", True)}]}
    created = await create(gql, sandbox.admin, name="Gold", rule=rule)
    assert created["__typename"] == "SegmentSaveSuccess"
    segment = created["segment"]
    assert segment["rule"] == rule

    members = (await gql(PROFILES_IN, {"id": segment["id"]}, key=sandbox.admin))["profiles"]
    assert members["totalCount"] == 1
    assert members["nodes"][0]["identities"] == [{"value": "gold@example.com"}]

    nested = await create(
        gql,
        sandbox.admin,
        name="Gold or low",
        rule={"any": [{"inSegment": segment["id"]}, cond("loyalty.points", "LT", 50)]},
    )
    assert nested["segment"]["rule"]["any"][0] == {"inSegment": segment["id"]}
    assert (await gql(PROFILES_IN, {"id": nested["segment"]["id"]}, key=sandbox.admin))["profiles"]["totalCount"] == 2

    # Gold is used by another segment's rule: it stays; the user goes first, then it can go.
    refused = (await gql(DELETE, {"input": {"id": segment["id"]}}, key=sandbox.admin))["segmentDelete"]
    assert refused["__typename"] == "SegmentInUseError" and refused["usedBy"] == ["segment 'Gold or low'"]
    # A rule that reaches its own segment is a cycle.
    cycle = (
        await gql(
            UPDATE,
            {"input": {"id": segment["id"], "rule": {"inSegment": nested["segment"]["id"]}}},
            key=sandbox.admin,
        )
    )["segmentUpdate"]
    assert cycle["fieldErrors"] == [{"field": "input.rule", "code": "CYCLE"}]
    for seg in (nested["segment"], segment):
        assert (await gql(DELETE, {"input": {"id": seg["id"]}}, key=sandbox.admin))["segmentDelete"][
            "__typename"
        ] == "SegmentDeleteSuccess"


def deep_rule(levels: int) -> dict[str, Any]:
    rule: dict[str, Any] = cond("a", "EXISTS")
    for _ in range(levels - 1):
        rule = {"not": rule}
    return rule


@pytest.mark.parametrize(
    ("rule", "field", "code"),
    [
        (cond("a", "EQ", [1, 2]), "input.rule.condition.value", "INVALID_VALUE"),
        (cond("a", "GT", True), "input.rule.condition.value", "INVALID_VALUE"),
        (cond("a", "IN", [1, "x"]), "input.rule.condition.value", "INVALID_VALUE"),
        (cond("a", "BETWEEN", [1]), "input.rule.condition.value", "INVALID_VALUE"),
        (cond("a", "WITHIN_LAST_DAYS", 1.5), "input.rule.condition.value", "INVALID_VALUE"),
        (cond("a", "EXISTS", 3), "input.rule.condition.value", "INVALID_VALUE"),
        (cond("a", "CONTAINS", ""), "input.rule.condition.value", "INVALID_VALUE"),
        ({"any": [cond("a..b", "EXISTS")]}, "input.rule.any[0].condition.path", "INVALID_PATH"),
        (deep_rule(11), "input.rule" + ".not" * 10, "TOO_DEEP"),
        ({"any": [cond("a", "EQ", i) for i in range(201)]}, "input.rule", "TOO_MANY_CONDITIONS"),
        ({"all": [{"inSegment": "U2VnbWVudDo5OTk5OTk="}]}, "input.rule.all[0].inSegment", "NOT_FOUND"),
    ],
)
async def test_invalid_rules_get_field_errors(
    gql: GraphQLClient, sandbox: SandboxKeys, rule: dict[str, Any], field: str, code: str
) -> None:
    result = await create(gql, sandbox.admin, name="bad", rule=rule)
    assert result["__typename"] == "InvalidInputError"
    assert {"field": field, "code": code} in result["fieldErrors"]


async def test_unknown_operator_and_two_rule_kinds_at_once_are_refused(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    unknown = await gql.raw(
        CREATE, {"input": {"kind": "RULE", "name": "x", "rule": cond("a", "LIKE", "x")}}, sandbox.admin
    )
    assert unknown.status_code == 200 and "LIKE" in unknown.json()["errors"][0]["message"]
    both = await gql.raw(
        CREATE,
        {"input": {"kind": "RULE", "name": "x", "rule": {"all": [], "not": cond("a", "EXISTS")}}},
        sandbox.admin,
    )
    assert both.status_code == 200 and "errors" in both.json()


async def test_names_are_unique_and_kinds_checked(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    assert (await create(gql, sandbox.admin, name="Same", rule={"all": []}))["__typename"] == "SegmentSaveSuccess"
    taken = await create(gql, sandbox.admin, name="Same", rule={"all": []})
    assert taken["fieldErrors"] == [{"field": "input.name", "code": "TAKEN"}]
    no_rule = await create(gql, sandbox.admin, name="No rule")
    assert no_rule["fieldErrors"] == [{"field": "input.rule", "code": "REQUIRED"}]
    static_with_rule = (
        await gql(CREATE, {"input": {"kind": "STATIC", "name": "S", "rule": {"all": []}}}, key=sandbox.admin)
    )["segmentCreate"]
    assert static_with_rule["fieldErrors"] == [{"field": "input.rule", "code": "NOT_ALLOWED"}]


async def test_static_members_and_estimate(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    await upsert(
        gql,
        sandbox.admin,
        [
            email("yes@example.com", consent={"email": "Y"}),
            email("no@example.com", consent={"email": "N"}),
            email("unknown@example.com"),
            email("suppressed@example.com"),
            {
                "identities": [{"namespace": "CRMID", "value": "crm-1"}],
                "attributes": {"personalEmail": {"address": "CRM@Example.com"}},
            },
            {"identities": [{"namespace": "CRMID", "value": "crm-2"}]},
        ],
    )
    await gql(
        "mutation($i: SuppressionAddInput!) { suppressionAdd(input: $i) { __typename } }",
        {"i": {"channel": "EMAIL", "address": "Suppressed@example.com", "reason": "HARD_BOUNCE"}},
        key=sandbox.admin,
    )
    static = (await gql(CREATE, {"input": {"kind": "STATIC", "name": "List"}}, key=sandbox.admin))["segmentCreate"]
    segment_id = static["segment"]["id"]
    identities = [
        {"namespace": "Email", "value": v}
        for v in (
            "yes@example.com",
            "no@example.com",
            "UNKNOWN@example.com",
            "suppressed@example.com",
            "ghost@example.com",
            "bad",
        )
    ]
    identities += [{"namespace": "CRMID", "value": "crm-1"}, {"namespace": "CRMID", "value": "crm-2"}]
    added = (await gql(MEMBERS_ADD, {"input": {"segmentId": segment_id, "identities": identities}}, key=sandbox.admin))[
        "segmentMembersAdd"
    ]
    assert (added["changed"], added["matched"]) == (6, 6)
    assert added["unmatched"] == [
        {"field": "input.identities[4]", "code": "NO_PROFILE"},
        {"field": "input.identities[5].value", "code": "INVALID_EMAIL"},
    ]
    again = (
        await gql(MEMBERS_ADD, {"input": {"segmentId": segment_id, "identities": identities[:2]}}, key=sandbox.admin)
    )["segmentMembersAdd"]
    assert again["changed"] == 0

    by_email = await gql(ESTIMATE, {"id": segment_id, "ns": "Email", "channel": "EMAIL"}, key=sandbox.admin)
    assert by_email["segmentEstimate"] == {
        "qualified": 6,
        "withIdentity": 4,
        "contactable": 2,
    }  # yes, unknown
    by_crm = await gql(ESTIMATE, {"id": segment_id, "ns": "CRMID", "channel": "EMAIL"}, key=sandbox.admin)
    assert by_crm["segmentEstimate"] == {
        "qualified": 6,
        "withIdentity": 2,
        "contactable": 1,
    }  # address attribute
    sms = await gql(ESTIMATE, {"id": segment_id, "ns": "Email", "channel": "SMS"}, key=sandbox.admin)
    assert sms["segmentEstimate"]["contactable"] == 0

    # Suppressing the attribute address (any case) makes crm-1 uncontactable.
    await gql(
        "mutation($i: SuppressionAddInput!) { suppressionAdd(input: $i) { __typename } }",
        {"i": {"channel": "EMAIL", "address": "crm@example.com"}},
        key=sandbox.admin,
    )
    by_crm = await gql(ESTIMATE, {"id": segment_id, "ns": "CRMID", "channel": "EMAIL"}, key=sandbox.admin)
    assert by_crm["segmentEstimate"]["contactable"] == 0

    removed = (
        await gql(
            MEMBERS_REMOVE,
            {"input": {"segmentId": segment_id, "identities": identities[:3]}},
            key=sandbox.admin,
        )
    )["segmentMembersRemove"]
    assert removed["changed"] == 3
    after = await gql(ESTIMATE, {"id": segment_id, "ns": "Email", "channel": "EMAIL"}, key=sandbox.admin)
    assert after["segmentEstimate"]["qualified"] == 3


async def test_members_only_for_static_segments(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    rule = await create(gql, sandbox.admin, name="R", rule={"all": []})
    result = (
        await gql(
            MEMBERS_ADD,
            {
                "input": {
                    "segmentId": rule["segment"]["id"],
                    "identities": [{"namespace": "Email", "value": "a@example.com"}],
                }
            },
            key=sandbox.admin,
        )
    )["segmentMembersAdd"]
    assert result["fieldErrors"] == [{"field": "input.segmentId", "code": "NOT_STATIC"}]


async def test_segments_do_not_cross_sandboxes(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    mine = (await create(gql, sandbox.admin, name="Mine", rule={"all": []}))["segment"]
    assert (await gql("query($id: ID!) { segment(id: $id) { id } }", {"id": mine["id"]}, key=other_sandbox.admin))[
        "segment"
    ] is None
    estimate = await gql(ESTIMATE, {"id": mine["id"], "ns": "Email", "channel": "EMAIL"}, key=other_sandbox.admin)
    assert estimate["segmentEstimate"] is None
    deleted = (await gql(DELETE, {"input": {"id": mine["id"]}}, key=other_sandbox.admin))["segmentDelete"]
    assert deleted["__typename"] == "NotFoundError"
    updated = (await gql(UPDATE, {"input": {"id": mine["id"], "name": "x"}}, key=other_sandbox.admin))["segmentUpdate"]
    assert updated["__typename"] == "NotFoundError"
    # Naming another sandbox's segment in a rule reads as not found.
    foreign = await create(gql, other_sandbox.admin, name="Ref", rule={"inSegment": mine["id"]})
    assert foreign["fieldErrors"] == [{"field": "input.rule.inSegment", "code": "NOT_FOUND"}]


async def test_very_deep_rule_input_is_refused_without_a_server_error(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    response = await gql.raw(CREATE, {"input": {"kind": "RULE", "name": "deep", "rule": deep_rule(400)}}, sandbox.admin)
    assert response.status_code in (200, 400)
    body = response.json()
    refused = body.get("data") and body["data"]["segmentCreate"]
    assert (refused and refused["__typename"] == "InvalidInputError") or (
        body.get("errors") and body["errors"][0].get("extensions", {}).get("code") != "INTERNAL_SERVER_ERROR"
    ), body
