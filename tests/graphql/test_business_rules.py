"""Business rule sets over GraphQL (issue 18): ADMIN creates, changes and deletes them (audited), at most one is
the sandbox's MARKETING default, a campaign names its own with a priority, another sandbox sees none of it."""

from __future__ import annotations

from typing import Any

from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import CREATE as CAMPAIGN_CREATE

INVALID = "... on InvalidInputError { message fieldErrors { field code message } }"
NOT_FOUND = "... on NotFoundError { message id }"
CONFLICT = "... on ConflictError { message currentVersion }"
RULE_SET = """fragment R on BusinessRuleSet { id name description isDefault defaultTimeZone version
  caps { channel category limit period hours } quietHours { channel weekdays from until action } }"""
CREATE = (
    "mutation($input: BusinessRuleSetCreateInput!) { businessRuleSetCreate(input: $input) { __typename "
    "... on BusinessRuleSetSuccess { businessRuleSet { ...R } } " + INVALID + " } }" + RULE_SET
)
UPDATE = (
    "mutation($input: BusinessRuleSetUpdateInput!) { businessRuleSetUpdate(input: $input) { __typename "
    "... on BusinessRuleSetSuccess { businessRuleSet { ...R } } " + f"{INVALID} {NOT_FOUND} {CONFLICT} }} }}" + RULE_SET
)
DELETE = (
    "mutation($id: ID!) { businessRuleSetDelete(id: $id) { __typename "
    "... on BusinessRuleSetDeleteSuccess { deletedId } " + f"{INVALID} {NOT_FOUND} }} }}"
)
LIST = "{ businessRuleSets(first: 10) { totalCount nodes { ...R } } }" + RULE_SET
AUDIT = """query($type: String) { auditEvents(first: 10, objectType: $type) { nodes { action before after } } }"""
CAMPAIGN = "query($id: ID!) { campaign(id: $id) { priority businessRuleSetId } }"

WEEKLY_EMAIL_CAP = {"channel": "EMAIL", "category": "MARKETING", "limit": 2, "period": "WEEK"}
NIGHTS = {"channel": "EMAIL", "weekdays": ["MONDAY", "FRIDAY"], "from": "22:00", "until": "07:00", "action": "DELAY"}


async def create_rule_set(gql: GraphQLClient, sandbox: SandboxKeys, **fields: Any) -> dict[str, Any]:
    input = {"name": "standard", "caps": [WEEKLY_EMAIL_CAP], "quietHours": [NIGHTS], **fields}
    result = (await gql(CREATE, {"input": input}, key=sandbox.admin))["businessRuleSetCreate"]
    assert result["__typename"] == "BusinessRuleSetSuccess", result
    return result["businessRuleSet"]


async def test_an_admin_creates_changes_and_deletes_a_rule_set_audited(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    created = await create_rule_set(gql, sandbox, defaultTimeZone="Asia/Kathmandu")
    assert created["caps"] == [{**WEEKLY_EMAIL_CAP, "hours": None}]
    assert created["quietHours"] == [NIGHTS]
    assert (created["defaultTimeZone"], created["isDefault"], created["version"]) == ("Asia/Kathmandu", False, 1)

    rolling = {"channel": "SMS", "category": "MARKETING", "limit": 1, "period": "ROLLING_HOURS", "hours": 36}
    update = {"id": created["id"], "version": 1, "caps": [rolling], "isDefault": True}
    changed = (await gql(UPDATE, {"input": update}, key=sandbox.admin))["businessRuleSetUpdate"]
    assert changed["__typename"] == "BusinessRuleSetSuccess", changed
    rule_set = changed["businessRuleSet"]
    assert (rule_set["caps"], rule_set["quietHours"], rule_set["isDefault"]) == ([rolling], [NIGHTS], True)
    stale = (await gql(UPDATE, {"input": {**update, "name": "x"}}, key=sandbox.admin))["businessRuleSetUpdate"]
    assert (stale["__typename"], stale["currentVersion"]) == ("ConflictError", 2)

    deleted = (await gql(DELETE, {"id": created["id"]}, key=sandbox.admin))["businessRuleSetDelete"]
    assert deleted == {"__typename": "BusinessRuleSetDeleteSuccess", "deletedId": created["id"]}
    assert (await gql(LIST, key=sandbox.admin))["businessRuleSets"]["totalCount"] == 0
    audit = (await gql(AUDIT, {"type": "BusinessRuleSet"}, key=sandbox.admin))["auditEvents"]["nodes"]
    assert [e["action"] for e in audit] == [
        "business_rule_set.deleted",
        "business_rule_set.updated",
        "business_rule_set.created",
    ]
    assert audit[1]["before"]["rules"]["caps"][0]["period"] == "WEEK"
    assert audit[1]["after"]["rules"]["caps"][0]["period"] == "ROLLING_HOURS"


async def test_one_default_per_sandbox(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    first = await create_rule_set(gql, sandbox, name="first", isDefault=True)
    second = await create_rule_set(gql, sandbox, name="second", isDefault=True)
    listed = {r["name"]: r["isDefault"] for r in (await gql(LIST, key=sandbox.admin))["businessRuleSets"]["nodes"]}
    assert listed == {"first": False, "second": True}
    again = await gql(UPDATE, {"input": {"id": first["id"], "isDefault": True}}, key=sandbox.admin)
    assert again["businessRuleSetUpdate"]["businessRuleSet"]["isDefault"] is True
    listed = {r["name"]: r["isDefault"] for r in (await gql(LIST, key=sandbox.admin))["businessRuleSets"]["nodes"]}
    assert listed == {"first": True, "second": False}
    assert second["id"] != first["id"]


async def test_refused_shapes_name_the_field(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    await create_rule_set(gql, sandbox)
    input = {
        "name": "standard",
        "defaultTimeZone": "Mars/Olympus",
        "caps": [{**WEEKLY_EMAIL_CAP, "period": "ROLLING_HOURS"}, {**WEEKLY_EMAIL_CAP, "limit": -1, "hours": 3}],
        "quietHours": [{**NIGHTS, "from": "7am"}, {**NIGHTS, "until": "22:00"}],
    }
    result = (await gql(CREATE, {"input": input}, key=sandbox.admin))["businessRuleSetCreate"]
    assert result["__typename"] == "InvalidInputError"
    assert {(e["field"], e["code"]) for e in result["fieldErrors"]} == {
        ("input.defaultTimeZone", "UNKNOWN_TIME_ZONE"),
        ("input.caps[0].hours", "OUT_OF_RANGE"),
        ("input.caps[1].limit", "OUT_OF_RANGE"),
        ("input.caps[1].hours", "NOT_ALLOWED"),
        ("input.quietHours[0].from", "INVALID_FORMAT"),
        ("input.quietHours[1].until", "EMPTY"),
    }
    taken = (await gql(CREATE, {"input": {"name": "standard"}}, key=sandbox.admin))["businessRuleSetCreate"]
    assert [(e["field"], e["code"]) for e in taken["fieldErrors"]] == [("input.name", "NAME_TAKEN")]


async def test_a_campaign_names_its_rule_set_and_priority(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    rule_set = await create_rule_set(gql, sandbox)
    manager = sandbox.keys[Role.MANAGER]
    input = {"name": "Sale", "businessRuleSetId": rule_set["id"], "priority": 80}
    campaign = (await gql(CAMPAIGN_CREATE, {"input": input}, key=manager))["campaignCreate"]["campaign"]
    read = (await gql(CAMPAIGN, {"id": campaign["id"]}, key=manager))["campaign"]
    assert read == {"priority": 80, "businessRuleSetId": rule_set["id"]}

    # A rule set in use is not deleted; a priority outside 0-100 is refused.
    refused = (await gql(DELETE, {"id": rule_set["id"]}, key=sandbox.admin))["businessRuleSetDelete"]
    assert refused["__typename"] == "InvalidInputError"
    assert "'Sale'" in refused["fieldErrors"][0]["message"]
    bad = (await gql(CAMPAIGN_CREATE, {"input": {"name": "x", "priority": 101}}, key=manager))["campaignCreate"]
    assert [(e["field"], e["code"]) for e in bad["fieldErrors"]] == [("input.priority", "OUT_OF_RANGE")]
    default = (await gql(CAMPAIGN_CREATE, {"input": {"name": "y"}}, key=manager))["campaignCreate"]["campaign"]
    assert (await gql(CAMPAIGN, {"id": default["id"]}, key=manager))["campaign"] == {
        "priority": 50,
        "businessRuleSetId": None,
    }


async def test_another_sandbox_sees_and_names_none_of_them(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    rule_set = await create_rule_set(gql, sandbox)
    assert (await gql(LIST, key=other_sandbox.admin))["businessRuleSets"] == {"totalCount": 0, "nodes": []}
    update = {"id": rule_set["id"], "name": "mine"}
    assert (await gql(UPDATE, {"input": update}, key=other_sandbox.admin))["businessRuleSetUpdate"][
        "__typename"
    ] == "NotFoundError"
    assert (await gql(DELETE, {"id": rule_set["id"]}, key=other_sandbox.admin))["businessRuleSetDelete"][
        "__typename"
    ] == "NotFoundError"
    input = {"name": "Sale", "businessRuleSetId": rule_set["id"]}
    foreign = (await gql(CAMPAIGN_CREATE, {"input": input}, key=other_sandbox.keys[Role.MANAGER]))["campaignCreate"]
    assert foreign["__typename"] == "NotFoundError", foreign
    assert (await gql(LIST, key=sandbox.admin))["businessRuleSets"]["nodes"][0]["name"] == "standard"


SANDBOX_UPDATE = """mutation($input: SandboxUpdateInput!) { sandboxUpdate(input: $input) { __typename
  ... on SandboxUpdateSuccess { sandbox { name timeZone } }
  ... on InvalidInputError { fieldErrors { field code } } } }"""


async def test_an_admin_sets_the_sandboxs_time_zone_audited(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    viewer = "{ viewer { sandbox { timeZone } } }"
    assert (await gql(viewer, key=sandbox.admin))["viewer"]["sandbox"]["timeZone"] is None
    done = await gql(SANDBOX_UPDATE, {"input": {"timeZone": "Europe/Paris"}}, key=sandbox.admin)
    assert done["sandboxUpdate"]["sandbox"] == {"name": sandbox.name, "timeZone": "Europe/Paris"}
    assert (await gql(viewer, key=sandbox.keys[Role.VIEWER]))["viewer"]["sandbox"]["timeZone"] == "Europe/Paris"
    bad = await gql(SANDBOX_UPDATE, {"input": {"timeZone": "Mars/Olympus"}}, key=sandbox.admin)
    assert bad["sandboxUpdate"]["fieldErrors"] == [{"field": "input.timeZone", "code": "UNKNOWN_TIME_ZONE"}]
    unchanged = await gql(SANDBOX_UPDATE, {"input": {}}, key=sandbox.admin)
    assert unchanged["sandboxUpdate"]["sandbox"]["timeZone"] == "Europe/Paris"
    refused = (await gql.raw(SANDBOX_UPDATE, {"input": {"timeZone": None}}, sandbox.keys[Role.PUBLISHER])).json()
    assert refused["data"] is None and refused["errors"]
    cleared = await gql(SANDBOX_UPDATE, {"input": {"timeZone": None}}, key=sandbox.admin)
    assert cleared["sandboxUpdate"]["sandbox"]["timeZone"] is None
    audit = (await gql(AUDIT, {"type": "Sandbox"}, key=sandbox.admin))["auditEvents"]["nodes"]
    changes = [(e["before"], e["after"]) for e in audit if e["action"] == "UPDATE"]
    assert changes == [
        ({"timeZone": "Europe/Paris"}, {"timeZone": None}),
        ({"timeZone": None}, {"timeZone": "Europe/Paris"}),
    ]
    # A rule set naming no zone follows the sandbox's.
    assert (await create_rule_set(gql, sandbox))["defaultTimeZone"] == ""
