"""Push custom data is FCM's string → string map: JSON values and FCM's reserved keys are field errors at input,
never converted with str() (`true` became "True", `{"a": 1}` became "{'a': 1}")."""

from __future__ import annotations

from models.campaigns.values import push_data_problems
from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import CREATE, key

CREATE_PUSH = (
    "mutation($input: CampaignCreateInput!) { campaignCreate(input: $input) { __typename "
    "... on CampaignSuccess { campaign { content { push { customData } } } } } }"
)

PATH = "input.content.push.customData"


def push_campaign(custom_data: object) -> dict:
    return {
        "name": "Pushy",
        "action": {"channel": "PUSH"},
        "content": {"push": {"title": "Hi", "body": "There", "customData": custom_data}},
    }


async def test_json_values_and_reserved_keys_are_field_errors(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    data = {"flag": True, "count": 3, "nested": {"a": 1}, "from": "x", "google.c.a.e": "1", "GCM.n": "1", "ok": "1"}
    result = (await gql(CREATE, {"input": push_campaign(data)}, key=key(sandbox, Role.MANAGER)))["campaignCreate"]
    assert result["__typename"] == "InvalidInputError", result
    assert sorted((e["field"], e["code"]) for e in result["fieldErrors"]) == [
        (f"{PATH}.GCM.n", "RESERVED_KEY"),
        (f"{PATH}.count", "NOT_A_STRING"),
        (f"{PATH}.flag", "NOT_A_STRING"),
        (f"{PATH}.from", "RESERVED_KEY"),
        (f"{PATH}.google.c.a.e", "RESERVED_KEY"),
        (f"{PATH}.nested", "NOT_A_STRING"),
    ]
    listed = (await gql(CREATE, {"input": push_campaign(["a"])}, key=key(sandbox, Role.MANAGER)))["campaignCreate"]
    assert [(e["field"], e["code"]) for e in listed["fieldErrors"]] == [(PATH, "INVALID")]


async def test_json_sent_as_text_is_kept_as_given(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    data = {"flag": "true", "payload": '{"a": 1}'}
    result = (await gql(CREATE_PUSH, {"input": push_campaign(data)}, key=key(sandbox, Role.MANAGER)))["campaignCreate"]
    assert result["__typename"] == "CampaignSuccess", result
    assert result["campaign"]["content"]["push"]["customData"] == data


def test_no_data_is_fine() -> None:
    assert push_data_problems(None) == [] and push_data_problems({}) == []
