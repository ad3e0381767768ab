"""Campaigns through GraphQL: the AJO flow end to end, review = refused activation, versions, isolation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from models.campaigns.campaign import CampaignRun
from models.tenancy.sandbox import Role
from tests.conftest import TEST_DB, GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_presets import CREATE as PRESET_CREATE
from tests.graphql.test_presets import DEACTIVATE as PRESET_DEACTIVATE
from tests.graphql.test_presets import in_app_input, validated
from tests.graphql.test_profiles import email, upsert
from tests.graphql.test_segments import CREATE as SEGMENT_CREATE
from tests.graphql.test_segments import cond
from tests.sql_counter import count_sql

CAMPAIGN_FIELDS = """
fragment C on Campaign {
  id name status version channel tags availableActions
  preset { id name } segment { id name } namespace { code }
  content { inApp { title body } email { subject html } }
  schedule { startAt frequency timeZone }
  summary { profilesTargeted actionsDelivered actionsFailed excluded }
}
"""
ERRORS = """
  ... on InvalidInputError { message fieldErrors { field code message } }
  ... on NotFoundError { message id }
  ... on ConflictError { message currentVersion }
  ... on InvalidStateError { message currentStatus allowedActions }
"""
LIFECYCLE_ERRORS = ERRORS.replace("  ... on InvalidInputError { message fieldErrors { field code message } }\n", "")
CREATE = (
    "mutation($input: CampaignCreateInput!) { campaignCreate(input: $input) { __typename "
    "... on CampaignSuccess { campaign { ...C } } " + ERRORS + " } }" + CAMPAIGN_FIELDS
)
UPDATE = (
    "mutation($input: CampaignUpdateInput!) { campaignUpdate(input: $input) { __typename "
    "... on CampaignSuccess { campaign { ...C } } " + ERRORS + " } }" + CAMPAIGN_FIELDS
)
REVIEW = """
query($id: ID!) { campaignReview(id: $id) { __typename
  ... on CampaignReview { canActivate alerts { severity code field message }
    plan { qualified withIdentity contactable excludedByReason { reason count } nextRunTimes reviewedVersion } }
  ... on NotFoundError { message } } }
"""
ACTIVATE = (
    "mutation($input: CampaignIdInput!) { campaignActivate(input: $input) { __typename "
    "... on CampaignActivateSuccess { campaign { ...C } run { id status scheduledFor } } "
    "... on ReviewFailedError { message alerts { severity code field } } " + LIFECYCLE_ERRORS + " } }" + CAMPAIGN_FIELDS
)
STOP = (
    "mutation($input: CampaignStopInput!) { campaignStop(input: $input) { __typename "
    "... on CampaignSuccess { campaign { ...C } } " + ERRORS + " } }" + CAMPAIGN_FIELDS
)
ARCHIVE = (
    "mutation($input: CampaignIdInput!) { campaignArchive(input: $input) { __typename "
    "... on CampaignSuccess { campaign { id status name } } " + LIFECYCLE_ERRORS + " } }"
)
DELETE = (
    "mutation($input: CampaignIdInput!) { campaignDelete(input: $input) { __typename "
    "... on CampaignDeleteSuccess { deletedId } " + LIFECYCLE_ERRORS + " } }"
)
DUPLICATE = (
    "mutation($input: CampaignDuplicateInput!) { campaignDuplicate(input: $input) { __typename "
    "... on CampaignSuccess { campaign { ...C } } " + ERRORS + " } }" + CAMPAIGN_FIELDS
)
GET = "query($id: ID!) { campaign(id: $id) { ...C } }" + CAMPAIGN_FIELDS
LIST = (
    "query($filter: CampaignFilter, $first: Int, $sort: CampaignSort) { campaigns(filter: $filter, first: $first, "
    "sort: $sort) { totalCount edges { node { ...C } } } }" + CAMPAIGN_FIELDS
)
PREVIEW = """
query($id: ID!, $profile: ID!) { campaignPreview(id: $id, profileId: $profile) { __typename
  ... on CampaignPreview { title body } ... on TemplateRenderError { field message } ... on NotFoundError { id } } }
"""


def key(sandbox: SandboxKeys, role: Role) -> str:
    return sandbox.keys[role]


async def active_in_app_preset(gql: GraphQLClient, sandbox: SandboxKeys, name: str = "inbox") -> str:
    created = (await gql(PRESET_CREATE, {"input": in_app_input(name)}, key=sandbox.admin))["messagePresetCreate"]
    preset = await validated(gql, sandbox.admin, created["preset"]["id"])
    assert preset["status"] == "ACTIVE"
    return preset["id"]


async def audience(gql: GraphQLClient, sandbox: SandboxKeys, size: int = 3) -> str:
    people = [
        email(f"p{i}@example.com", attributes={"person": {"name": {"firstName": f"Ann{i}"}}, "tier": "gold"})
        for i in range(size)
    ]
    await upsert(gql, sandbox.admin, people)
    result = (
        await gql(
            SEGMENT_CREATE,
            {"input": {"kind": "RULE", "name": "gold", "rule": cond("tier", "EQ", "gold")}},
            key=sandbox.admin,
        )
    )["segmentCreate"]
    return result["segment"]["id"]


def ready_input(preset_id: str, segment_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "Welcome",
        "action": {"channel": "IN_APP", "presetId": preset_id},
        "content": {"inApp": {"title": "Hi {{ profile.person.name.firstName }}", "body": "Welcome aboard."}},
        "audience": {"segmentId": segment_id, "namespaceCode": "Email"},
        **overrides,
    }


async def create(gql: GraphQLClient, sandbox: SandboxKeys, input: dict[str, Any]) -> dict[str, Any]:
    result = (await gql(CREATE, {"input": input}, key=key(sandbox, Role.MANAGER)))["campaignCreate"]
    assert result["__typename"] == "CampaignSuccess", result
    return result["campaign"]


async def review(gql: GraphQLClient, sandbox: SandboxKeys, campaign_id: str) -> dict[str, Any]:
    return (await gql(REVIEW, {"id": campaign_id}, key=key(sandbox, Role.MANAGER)))["campaignReview"]


async def activate(gql: GraphQLClient, sandbox: SandboxKeys, campaign_id: str) -> dict[str, Any]:
    return (await gql(ACTIVATE, {"input": {"id": campaign_id}}, key=key(sandbox, Role.PUBLISHER)))["campaignActivate"]


async def test_the_whole_ajo_flow(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox)

    # Create with only a name: the review lists what is missing, and activation is refused with the same alerts.
    draft = await create(gql, sandbox, {"name": "Welcome"})
    assert draft["status"] == "DRAFT" and draft["version"] == 1
    # A MANAGER cannot ACTIVATE; REQUEST_APPROVAL is offered on every draft (refused when no policy matches).
    assert set(draft["availableActions"]) == {"EDIT", "REVIEW", "DUPLICATE", "DELETE", "REQUEST_APPROVAL"}
    first_review = await review(gql, sandbox, draft["id"])
    codes = {a["code"] for a in first_review["alerts"] if a["severity"] == "ERROR"}
    assert first_review["canActivate"] is False
    assert {"ACTION_MISSING", "AUDIENCE_MISSING", "NAMESPACE_MISSING"} <= codes
    refused = await activate(gql, sandbox, draft["id"])
    assert refused["__typename"] == "ReviewFailedError"
    assert {(a["code"], a["field"]) for a in refused["alerts"]} == {
        (a["code"], a["field"]) for a in first_review["alerts"]
    }

    # Configure it: action, content, audience.
    update = {"id": draft["id"], "version": draft["version"], **ready_input(preset_id, segment_id)}
    updated = (await gql(UPDATE, {"input": update}, key=key(sandbox, Role.MANAGER)))["campaignUpdate"]
    assert updated["__typename"] == "CampaignSuccess", updated
    campaign = updated["campaign"]
    assert campaign["version"] == 2 and campaign["preset"]["name"] == "inbox" and campaign["segment"]["name"] == "gold"

    clean = await review(gql, sandbox, campaign["id"])
    assert clean["canActivate"] is True, clean["alerts"]
    assert clean["plan"]["qualified"] == 3 and clean["plan"]["contactable"] == 3
    assert clean["plan"]["reviewedVersion"] == 2

    activated = await activate(gql, sandbox, campaign["id"])
    assert activated["__typename"] == "CampaignActivateSuccess", activated
    assert activated["campaign"]["status"] == "LIVE"
    assert activated["run"]["status"] in {"PENDING", "RUNNING", "SUCCEEDED"}

    live = (await gql(GET, {"id": campaign["id"]}, key=key(sandbox, Role.VIEWER)))["campaign"]
    assert live["status"] == "LIVE" and live["availableActions"] == []  # a VIEWER may do nothing
    assert set(live["summary"]) == {"profilesTargeted", "actionsDelivered", "actionsFailed", "excluded"}

    stopped = (await gql(STOP, {"input": {"id": campaign["id"]}}, key=key(sandbox, Role.PUBLISHER)))["campaignStop"]
    assert stopped["campaign"]["status"] == "STOPPED"
    again = await activate(gql, sandbox, campaign["id"])
    assert again["__typename"] == "InvalidStateError"
    assert again["currentStatus"] == "STOPPED" and set(again["allowedActions"]) == {"DUPLICATE", "ARCHIVE"}

    copy = await gql(DUPLICATE, {"input": {"id": campaign["id"]}}, key=key(sandbox, Role.MANAGER))
    assert copy["campaignDuplicate"]["campaign"]["status"] == "DRAFT"
    assert copy["campaignDuplicate"]["campaign"]["name"] == "Welcome (copy)"
    archived = await gql(ARCHIVE, {"input": {"id": campaign["id"]}}, key=key(sandbox, Role.PUBLISHER))
    assert archived["campaignArchive"]["campaign"]["status"] == "ARCHIVED"


async def test_future_start_schedules_and_stop_cancels(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox)
    campaign = await create(
        gql, sandbox, ready_input(preset_id, segment_id, schedule={"startAt": "2099-01-01T09:00:00+00:00"})
    )
    activated = await activate(gql, sandbox, campaign["id"])
    assert activated["campaign"]["status"] == "SCHEDULED" and activated["run"] is None
    stopped = (await gql(STOP, {"input": {"id": campaign["id"]}}, key=key(sandbox, Role.PUBLISHER)))["campaignStop"]
    assert stopped["campaign"]["status"] == "STOPPED"


async def test_stale_version_is_a_conflict_and_nothing_changes(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    campaign = await create(gql, sandbox, {"name": "A"})
    manager = key(sandbox, Role.MANAGER)
    first = await gql(UPDATE, {"input": {"id": campaign["id"], "version": 1, "name": "B"}}, key=manager)
    assert first["campaignUpdate"]["campaign"]["name"] == "B"
    stale = await gql(UPDATE, {"input": {"id": campaign["id"], "version": 1, "name": "C"}}, key=manager)
    assert stale["campaignUpdate"] == {
        "__typename": "ConflictError",
        "message": stale["campaignUpdate"]["message"],
        "currentVersion": 2,
    }
    assert (await gql(GET, {"id": campaign["id"]}, key=manager))["campaign"]["name"] == "B"


async def test_patch_leaves_absent_fields_and_null_clears(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    campaign = await create(
        gql, sandbox, {"name": "A", "tags": ["x"], "content": {"inApp": {"title": "T", "body": "B"}}}
    )
    manager = key(sandbox, Role.MANAGER)
    patched = await gql(UPDATE, {"input": {"id": campaign["id"], "version": 1, "tags": ["y"]}}, key=manager)
    after = patched["campaignUpdate"]["campaign"]
    assert after["tags"] == ["y"] and after["content"]["inApp"] == {"title": "T", "body": "B"}
    cleared = await gql(UPDATE, {"input": {"id": campaign["id"], "version": 2, "content": None}}, key=manager)
    assert cleared["campaignUpdate"]["campaign"]["content"]["inApp"] is None


@pytest.mark.parametrize(
    ("field_input", "field", "code"),
    [
        ({"name": ""}, "input.name", "REQUIRED"),
        ({"name": "x" * 201}, "input.name", "TOO_LONG"),
        ({"name": "ok", "content": {"inApp": {"title": "t" * 500_001}}}, "input.content.inApp.title", "TOO_LONG"),
        ({"name": "ok", "schedule": {"timeZone": "Mars/Olympus"}}, "input.schedule.timeZone", "TIMEZONE_INVALID"),
        (
            {"name": "ok", "schedule": {"timeOfDay": "25:00", "frequency": "DAILY"}},
            "input.schedule.timeOfDay",
            "INVALID",
        ),
        ({"name": "ok", "tags": ["t"] * 21}, "input.tags", "TOO_MANY"),
    ],
)
async def test_bad_input_is_a_field_error_and_nothing_is_saved(
    gql: GraphQLClient, sandbox: SandboxKeys, field_input: dict[str, Any], field: str, code: str
) -> None:
    before = await CampaignCount.of(gql, sandbox)
    result = (await gql(CREATE, {"input": field_input}, key=key(sandbox, Role.MANAGER)))["campaignCreate"]
    assert result["__typename"] == "InvalidInputError", result
    assert (field, code) in {(e["field"], e["code"]) for e in result["fieldErrors"]}
    assert await CampaignCount.of(gql, sandbox) == before


async def test_nul_bytes_are_refused_before_resolvers(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    before = await CampaignCount.of(gql, sandbox)
    response = await gql.raw(CREATE, {"input": {"name": "a\x00b"}}, key(sandbox, Role.MANAGER))
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await CampaignCount.of(gql, sandbox) == before


class CampaignCount:
    @staticmethod
    async def of(gql: GraphQLClient, sandbox: SandboxKeys) -> int:
        everything = {"statuses": ["DRAFT", "SCHEDULED", "LIVE", "STOPPED", "COMPLETED", "FAILED", "ARCHIVED"]}
        data = await gql(LIST, {"filter": everything, "first": 0}, key=sandbox.admin)
        return data["campaigns"]["totalCount"]


async def test_unknown_and_foreign_ids_are_not_found(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    theirs = await create(gql, other_sandbox, {"name": "Theirs"})
    manager = key(sandbox, Role.MANAGER)
    assert (await gql(GET, {"id": theirs["id"]}, key=manager))["campaign"] is None
    node = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": theirs["id"]}, key=manager)
    assert node["node"] is None
    for bad in (theirs["id"], "Q2FtcGFpZ246OTk5OTk5", "not-an-id"):
        refused = await gql(UPDATE, {"input": {"id": bad, "version": 1, "name": "mine"}}, key=manager)
        assert refused["campaignUpdate"]["__typename"] == "NotFoundError"
        assert (await review(gql, sandbox, bad))["__typename"] == "NotFoundError"
    unknown_preset = await gql(
        CREATE,
        {"input": {"name": "x", "action": {"channel": "EMAIL", "presetId": "TWVzc2FnZVByZXNldDo5OTk5"}}},
        key=manager,
    )
    assert unknown_preset["campaignCreate"]["__typename"] == "NotFoundError"
    listed = await gql(LIST, {}, key=manager)
    assert theirs["id"] not in {edge["node"]["id"] for edge in listed["campaigns"]["edges"]}


async def test_only_drafts_are_editable_or_deletable(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox)
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id))
    await activate(gql, sandbox, campaign["id"])
    manager = key(sandbox, Role.MANAGER)
    edit = await gql(UPDATE, {"input": {"id": campaign["id"], "version": 2, "name": "New"}}, key=manager)
    assert edit["campaignUpdate"]["__typename"] == "InvalidStateError"
    delete = await gql(DELETE, {"input": {"id": campaign["id"]}}, key=manager)
    assert delete["campaignDelete"]["__typename"] == "InvalidStateError"
    tags = await gql(
        "mutation($i: CampaignUpdateTagsInput!) { campaignUpdateTags(input: $i) { __typename "
        "... on CampaignSuccess { campaign { tags description } } } }",
        {"i": {"id": campaign["id"], "tags": ["spring"], "description": "still editable"}},
        key=manager,
    )
    assert tags["campaignUpdateTags"]["campaign"] == {"tags": ["spring"], "description": "still editable"}
    # The preset of a LIVE campaign cannot be deactivated.
    deactivate = await gql(PRESET_DEACTIVATE, {"input": {"id": preset_id}}, key=sandbox.admin)
    assert deactivate["messagePresetDeactivate"]["__typename"] != "MessagePresetDeactivateSuccess"


async def test_preview_personalises_and_reports_template_errors(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=1)
    profile = (await upsert(gql, sandbox.admin, [email("p0@example.com")]))["results"][0]["profile"]
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id))
    manager = key(sandbox, Role.MANAGER)
    preview = await gql(PREVIEW, {"id": campaign["id"], "profile": profile["id"]}, key=manager)
    assert preview["campaignPreview"] == {
        "__typename": "CampaignPreview",
        "title": "Hi Ann0",
        "body": "Welcome aboard.",
    }
    broken = await gql(
        UPDATE,
        {
            "input": {
                "id": campaign["id"],
                "version": 1,
                "content": {"inApp": {"title": "{{ profile.nope }}", "body": "b"}},
            }
        },
        key=manager,
    )
    assert broken["campaignUpdate"]["__typename"] == "CampaignSuccess"
    failed = await gql(PREVIEW, {"id": campaign["id"], "profile": profile["id"]}, key=manager)
    assert failed["campaignPreview"]["__typename"] == "TemplateRenderError"
    assert failed["campaignPreview"]["field"] == "content.inApp.title"


async def test_a_list_page_costs_the_same_statements_whatever_its_size(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=1)
    for i in range(12):
        await create(gql, sandbox, ready_input(preset_id, segment_id, name=f"C{i}"))

    async def statements_for(page_size: int) -> int:
        with count_sql() as statements:
            data = await gql(LIST, {"first": page_size}, key=sandbox.admin)
        assert len(data["campaigns"]["edges"]) == page_size
        assert all(edge["node"]["preset"]["name"] == "inbox" for edge in data["campaigns"]["edges"])
        return len(statements)

    assert await statements_for(2) == await statements_for(12)


async def test_list_filters_and_default_statuses(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    manager = key(sandbox, Role.MANAGER)
    await create(gql, sandbox, {"name": "Spring sale", "tags": ["Promo"]})
    await create(gql, sandbox, {"name": "Newsletter"})
    search = await gql(LIST, {"filter": {"search": "spring"}}, key=manager)
    assert [e["node"]["name"] for e in search["campaigns"]["edges"]] == ["Spring sale"]
    tagged = await gql(LIST, {"filter": {"tags": ["promo"]}}, key=manager)
    assert [e["node"]["name"] for e in tagged["campaigns"]["edges"]] == ["Spring sale"]
    by_name = await gql(LIST, {"sort": "NAME_ASC"}, key=manager)
    assert [e["node"]["name"] for e in by_name["campaigns"]["edges"]] == ["Newsletter", "Spring sale"]


@pytest.mark.skipif(TEST_DB != "postgres", reason="row locks need PostgreSQL; SQLite serialises writes anyway")
async def test_concurrent_activations_make_one_activation_and_one_run(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox)
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id))
    results = await asyncio.gather(*(activate(gql, sandbox, campaign["id"]) for _ in range(20)))
    kinds = [r["__typename"] for r in results]
    assert kinds.count("CampaignActivateSuccess") == 1
    assert set(kinds) == {"CampaignActivateSuccess", "InvalidStateError"}
    pk = int(__import__("strawberry").relay.GlobalID.from_id(campaign["id"]).node_id)
    assert await CampaignRun.filter(campaign_id=pk).count() == 1


async def test_status_changes_reach_subscribers(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox)
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id))
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox.admin}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {
                        "query": "subscription($id: ID) { campaignStatusChanged(id: $id) "
                        "{ campaignId status previousStatus } }",
                        "variables": {"id": campaign["id"]},
                    },
                }
            )
        )

        # The current state comes first (the subscription is live from then on), then the change.
        first = json.loads(await ws.recv())["payload"]["data"]["campaignStatusChanged"]
        assert first == {"campaignId": campaign["id"], "status": "DRAFT", "previousStatus": None}
        await activate(gql, sandbox, campaign["id"])
        async with asyncio.timeout(10):
            event = json.loads(await ws.recv())["payload"]["data"]["campaignStatusChanged"]
    assert event == {"campaignId": campaign["id"], "status": "LIVE", "previousStatus": "DRAFT"}
