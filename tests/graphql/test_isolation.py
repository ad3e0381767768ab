"""Sandbox isolation: with another sandbox's key, nothing of this sandbox is visible or addressable.

Every root query field must be listed in QUERIES_CHECKED (a new field fails the coverage test until its
isolation is checked here); mutations on foreign ids must answer NotFoundError (or refuse the reference).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import websockets

from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys, subscribe
from tests.graphql.test_campaigns import CREATE as CAMPAIGN_CREATE
from tests.graphql.test_campaigns import activate, active_in_app_preset, audience, create, ready_input
from tests.graphql.test_profiles import email, upsert
from tests.graphql.test_roles import root_fields
from tests.jobs.test_profile_import import upload

QUERIES_CHECKED = {
    "viewer",
    "node",
    "auditEvents",
    "identityNamespaces",
    "profile",
    "profileByIdentity",
    "profiles",
    "segment",
    "segments",
    "segmentEstimate",
    "suppressions",
    "messagePreset",
    "messagePresets",
    "campaign",
    "campaigns",
    "campaignRuns",
    "campaignTriggers",
    "campaignReview",
    "campaignPreview",
    "campaignVersionDiff",
    "campaignCalendar",
    "campaignExperimentResults",
    "profileImport",
    "profileImports",
    "inAppMessages",
    "deliveries",
    "campaignReport",
    # Checked in tests/graphql/test_webhooks.py (another sandbox's ADMIN reads them as empty).
    "webhookEndpoints",
    "webhookDeliveries",
    # Checked below (test_approvals_and_people_stay_in_their_sandbox).
    "approvalPolicies",
    "campaignApprovals",
    "users",
    "me",
    # Checked in tests/graphql/test_business_rules.py (another sandbox's ADMIN sees none, cannot change them).
    "businessRuleSets",
}
ALL_STATUSES = ["DRAFT", "IN_REVIEW", "APPROVED", "SCHEDULED", "LIVE", "STOPPED", "COMPLETED", "FAILED", "ARCHIVED"]


def test_every_query_field_is_checked_for_isolation() -> None:
    queries = {name for root, name in root_fields() if root == "Query"}
    assert queries - QUERIES_CHECKED == set(), "check the isolation of these new query fields in this file"


async def objects_of(server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys) -> dict[str, str]:
    """One object of every kind in `sandbox`, by name → global id."""
    preset = await active_in_app_preset(gql, sandbox)
    segment = await audience(gql, sandbox, size=2)
    profile = (await upsert(gql, sandbox.admin, [email("owner@example.com")]))["results"][0]["profile"]["id"]
    suppression = await gql(
        'mutation { suppressionAdd(input: {channel: EMAIL, address: "gone@example.com"}) '
        "{ ... on SuppressionAddSuccess { entry { id } } } }",
        key=sandbox.admin,
    )
    namespace = await gql(
        'mutation { identityNamespaceCreate(input: {code: "Loyalty", name: "Loyalty", type: PARTNER}) '
        "{ ... on IdentityNamespaceCreateSuccess { namespace { id } } } }",
        key=sandbox.admin,
    )
    # With a content experiment: its results and its winner are the campaign's too.
    treatments = [{"key": k, "content": {"inApp": {"title": k, "body": k}}} for k in ("A", "B")]
    campaign = await create(gql, sandbox, ready_input(preset, segment, experiment={"treatments": treatments}))
    run = (await activate(gql, sandbox, campaign["id"]))["run"]["id"]
    api = await create(gql, sandbox, {**ready_input(preset, segment), "name": "api", "type": "API_TRIGGERED"})
    assert (await activate(gql, sandbox, api["id"]))["__typename"] == "CampaignActivateSuccess"
    triggered = await gql(
        'mutation($id: ID!) { campaignTrigger(input: {campaignId: $id, idempotencyKey: "iso", recipients: '
        '[{identity: {namespace: "Email", value: "owner@example.com"}}]}) '
        "{ ... on CampaignTriggerSuccess { trigger { id accepted } } } }",
        {"id": api["id"]},
        key=sandbox.keys[Role.PUBLISHER],
    )
    assert triggered["campaignTrigger"]["trigger"]["accepted"] == 1, triggered
    audit = (await gql("{ auditEvents(first: 1) { edges { node { id } } } }", key=sandbox.admin))["auditEvents"]
    uploaded = await upload(server, sandbox.admin, "identity.Email\nimported@example.com\n")
    assert uploaded.status_code == 202, uploaded.text
    return {
        "preset": preset,
        "segment": segment,
        "profile": profile,
        "campaign": campaign["id"],
        "run": run,
        "apiCampaign": api["id"],
        "trigger": triggered["campaignTrigger"]["trigger"]["id"],
        "suppression": suppression["suppressionAdd"]["entry"]["id"],
        "namespace": namespace["identityNamespaceCreate"]["namespace"]["id"],
        "audit": audit["edges"][0]["node"]["id"],
        "import": uploaded.json()["id"],
    }


async def test_nothing_of_a_sandbox_is_visible_from_another(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    theirs = await objects_of(server, gql, other_sandbox)
    key = sandbox.admin
    for name, global_id in theirs.items():
        assert (await gql("query($id: ID!) { node(id: $id) { id } }", {"id": global_id}, key=key))["node"] is None, name

    lookups = {
        "profile": ("query($id: ID!) { profile(id: $id) { id } }", "profile"),
        "segment": ("query($id: ID!) { segment(id: $id) { id } }", "segment"),
        "preset": ("query($id: ID!) { messagePreset(id: $id) { id } }", "messagePreset"),
        "campaign": ("query($id: ID!) { campaign(id: $id) { id } }", "campaign"),
        "import": ("query($id: ID!) { profileImport(id: $id) { id } }", "profileImport"),
    }
    for kind, (query, field) in lookups.items():
        assert (await gql(query, {"id": theirs[kind]}, key=key))[field] is None, kind
    estimate = await gql(
        'query($id: ID!) { segmentEstimate(id: $id, namespace: "Email", channel: EMAIL) { qualified } }',
        {"id": theirs["segment"]},
        key=key,
    )
    assert estimate["segmentEstimate"] is None
    assert (await gql('{ profileByIdentity(namespace: "Email", value: "owner@example.com") { id } }', key=key))[
        "profileByIdentity"
    ] is None
    review = await gql(
        "query($id: ID!) { campaignReview(id: $id) { __typename } }", {"id": theirs["campaign"]}, key=key
    )
    assert review["campaignReview"]["__typename"] == "NotFoundError"
    diff = await gql(
        "query($id: ID!) { campaignVersionDiff(campaignId: $id, from: 1, to: 1) { __typename } }",
        {"id": theirs["campaign"]},
        key=key,
    )
    assert diff["campaignVersionDiff"]["__typename"] == "NotFoundError"
    calendar = (
        "query($from: DateTime!, $to: DateTime!) { campaignCalendar(from: $from, to: $to, "
        "filter: {statuses: [LIVE]}) { ... on CampaignCalendar { occurrences { campaign { id } } } } }"
    )
    window = {"from": (now := datetime.now(UTC)) - timedelta(days=1), "to": now + timedelta(days=1)}
    window = {k: v.isoformat() for k, v in window.items()}
    # Their own key sees their campaign in the calendar (so the check below can fail); ours does not.
    seen = (await gql(calendar, window, key=other_sandbox.admin))["campaignCalendar"]["occurrences"]
    assert theirs["campaign"] in [o["campaign"]["id"] for o in seen]
    assert (await gql(calendar, window, key=key))["campaignCalendar"]["occurrences"] == []
    results = await gql(
        "query($id: ID!) { campaignExperimentResults(id: $id) { __typename } }", {"id": theirs["campaign"]}, key=key
    )
    assert results["campaignExperimentResults"]["__typename"] == "NotFoundError"
    for version in (None, 1):
        preview = await gql(
            "query($id: ID!, $p: ID!, $v: Int) { campaignPreview(id: $id, profileId: $p, version: $v) { __typename } }",
            {"id": theirs["apiCampaign"], "p": theirs["profile"], "v": version},
            key=key,
        )
        assert preview["campaignPreview"]["__typename"] == "NotFoundError", version
    deliveries = await gql("query($id: ID!) { deliveries(runId: $id) { totalCount } }", {"id": theirs["run"]}, key=key)
    assert deliveries["deliveries"]["totalCount"] == 0
    by_campaign = await gql(
        "query($id: ID!) { deliveries(campaignId: $id) { totalCount } }", {"id": theirs["campaign"]}, key=key
    )
    assert by_campaign["deliveries"]["totalCount"] == 0
    by_trigger = await gql(
        "query($id: ID!) { deliveries(triggerId: $id) { totalCount } }", {"id": theirs["trigger"]}, key=key
    )
    assert by_trigger["deliveries"]["totalCount"] == 0
    triggers = await gql(
        "query($id: ID!) { campaignTriggers(campaignId: $id) { totalCount } }", {"id": theirs["apiCampaign"]}, key=key
    )
    assert triggers["campaignTriggers"]["totalCount"] == 0
    retrigger = await gql(
        'mutation($id: ID!) { campaignTrigger(input: {campaignId: $id, idempotencyKey: "iso", '
        'recipients: [{identity: {namespace: "Email", value: "owner@example.com"}}]}) { __typename } }',
        {"id": theirs["apiCampaign"]},
        key=sandbox.keys[Role.PUBLISHER],
    )
    assert retrigger["campaignTrigger"]["__typename"] == "NotFoundError"
    for window in (None, {"runId": theirs["run"]}):
        report = await gql(
            "query($id: ID!, $w: ReportWindowInput) { campaignReport(id: $id, window: $w) { __typename } }",
            {"id": theirs["campaign"], "w": window},
            key=key,
        )
        assert report["campaignReport"]["__typename"] == "NotFoundError"
    # Their run delivers in-app messages to p0@example.com; our inbox for that identity stays empty.
    inbox_query = '{ inAppMessages(namespace: "Email", identity: "p0@example.com") { title } }'

    await gql.drain_jobs()
    assert (await gql(inbox_query, key=other_sandbox.admin))["inAppMessages"]
    inbox = await gql('{ inAppMessages(namespace: "Email", identity: "p0@example.com") { title } }', key=key)
    assert inbox["inAppMessages"] == []
    runs = await gql(
        "query($id: ID!) { campaignRuns(campaignId: $id) { totalCount } }", {"id": theirs["campaign"]}, key=key
    )
    assert runs["campaignRuns"]["totalCount"] == 0

    lists = await gql(
        """query($all: [CampaignStatus!]) {
          profiles(first: 100) { nodes { id } } segments(first: 100) { nodes { id } }
          suppressions(first: 100) { nodes { id } } messagePresets(first: 100) { nodes { id } }
          campaigns(first: 100, filter: {statuses: $all}) { nodes { id } } auditEvents(first: 100) { nodes { id } }
          identityNamespaces { id } viewer { sandbox { name } } profileImports(first: 100) { nodes { id } }
        }""",
        {"all": ALL_STATUSES},
        key=key,
    )
    visible = {
        item["id"]
        for value in lists.values()
        if isinstance(value, dict) and "nodes" in value
        for item in value["nodes"]
    } | {item["id"] for item in lists["identityNamespaces"]}
    assert visible.isdisjoint(theirs.values())
    assert lists["viewer"]["sandbox"]["name"] == sandbox.name


async def test_another_sandbox_cannot_change_or_reference_anything(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    theirs = await objects_of(server, gql, other_sandbox)
    key = sandbox.admin

    def by_id(mutation: str, input_type: str, extra: str = "") -> str:
        return (
            f"mutation($id: ID!) {{ {mutation}(input: {{id: $id{extra}}}) {{ __typename }} }}"
            if input_type == ""
            else f"mutation($id: ID!) {{ {mutation}(input: {{{input_type}: $id{extra}}}) {{ __typename }} }}"
        )

    for mutation, kind, extra in [
        ("campaignUpdate", "campaign", ", version: 2"),
        ("campaignActivate", "campaign", ""),
        ("campaignStop", "campaign", ""),
        ("campaignArchive", "campaign", ""),
        ("campaignDelete", "campaign", ""),
        ("campaignDuplicate", "campaign", ""),
        ("campaignUpdateTags", "campaign", ', tags: ["x"]'),
        ("campaignExperimentSelectWinner", "campaign", ', treatment: "A"'),
        ("segmentUpdate", "segment", ', name: "mine"'),
        ("segmentDelete", "segment", ""),
        ("messagePresetUpdate", "preset", ', description: "mine"'),
        ("messagePresetValidate", "preset", ""),
        ("messagePresetDeactivate", "preset", ""),
        ("messagePresetDelete", "preset", ""),
        ("messagePresetActivate", "preset", ""),
        ("suppressionRemove", "suppression", ""),
    ]:
        result = await gql(by_id(mutation, "", extra), {"id": theirs[kind]}, key=key)
        assert result[mutation]["__typename"] == "NotFoundError", (mutation, result)
    # Their API campaign has versions (number 1 is published): the version steps cannot reach it.
    for verb, extra in [
        ("Publish", ""),
        ("Rollback", ""),
        ("Discard", ""),
        ("RequestApproval", ""),
        ("Approve", ""),
        ("RequestChanges", ', comment: "mine"'),
    ]:
        mutation = f"campaignVersion{verb}"
        result = await gql(by_id(mutation, "campaignId", ", number: 1" + extra), {"id": theirs["apiCampaign"]}, key=key)
        assert result[mutation]["__typename"] == "NotFoundError", (mutation, result)
    proof = await gql(
        'mutation($id: ID!) { campaignSendProof(input: {id: $id, addresses: ["x@example.com"], version: 1}) '
        "{ __typename } }",
        {"id": theirs["apiCampaign"]},
        key=sandbox.keys[Role.MANAGER],
    )
    assert proof["campaignSendProof"]["__typename"] == "NotFoundError"
    resend = await gql(
        "mutation($id: ID!) { campaignRunResendFailed(input: {runId: $id}) { __typename } }",
        {"id": theirs["run"]},
        key=key,
    )
    assert resend["campaignRunResendFailed"]["__typename"] == "NotFoundError"
    resume = await gql(
        "mutation($id: ID!) { campaignRunResume(input: {runId: $id}) { __typename } }", {"id": theirs["run"]}, key=key
    )
    assert resume["campaignRunResume"]["__typename"] == "NotFoundError"
    members = await gql(
        "mutation($id: ID!) { segmentMembersAdd(input: {segmentId: $id, identities: "
        '[{namespace: "Email", value: "owner@example.com"}]}) { __typename } }',
        {"id": theirs["segment"]},
        key=key,
    )
    assert members["segmentMembersAdd"]["__typename"] == "NotFoundError"
    borrowed = await gql(
        CAMPAIGN_CREATE,
        {"input": {"name": "borrow", "action": {"channel": "IN_APP", "presetId": theirs["preset"]}}},
        key=sandbox.keys[Role.MANAGER],
    )
    assert borrowed["campaignCreate"]["__typename"] == "NotFoundError"
    # And nothing in their sandbox changed.
    mine = await gql(
        "query($id: ID!) { campaign(id: $id) { status tags } }", {"id": theirs["campaign"]}, key=other_sandbox.admin
    )
    assert mine["campaign"] == {"status": "LIVE", "tags": []}
    versions = await gql(
        "query($id: ID!) { campaign(id: $id) { versions(first: 5) { nodes { number state } } } }",
        {"id": theirs["apiCampaign"]},
        key=other_sandbox.admin,
    )
    assert versions["campaign"]["versions"]["nodes"] == [{"number": 1, "state": "PUBLISHED"}]


async def test_subscriptions_only_carry_the_callers_sandbox(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox.admin}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": "subscription { campaignStatusChanged { campaignId status } }"}
        assert await subscribe(server, ws, {"id": "1", "type": "subscribe", "payload": payload}) is None
        # Their change first, then ours: the first event we receive must be ours.
        await gql(CAMPAIGN_CREATE, {"input": {"name": "theirs"}}, key=other_sandbox.keys[Role.MANAGER])
        ours = await gql(CAMPAIGN_CREATE, {"input": {"name": "ours"}}, key=sandbox.keys[Role.MANAGER])
        event = json.loads(await ws.recv())["payload"]["data"]["campaignStatusChanged"]
    assert event["campaignId"] == ours["campaignCreate"]["campaign"]["id"]


async def test_approvals_and_people_stay_in_their_sandbox(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    from tests.graphql.test_approvals import REQUEST, policy, ready_campaign
    from tests.graphql.test_people import member

    theirs = await policy(gql, other_sandbox)
    campaign = await ready_campaign(gql, other_sandbox)
    requested = await gql(REQUEST, {"id": campaign["id"], "comment": ""}, key=other_sandbox.keys[Role.MANAGER])
    assert requested["campaignRequestApproval"]["campaign"]["status"] == "IN_REVIEW"
    user = await member(gql, other_sandbox, "isolated-person", "ADMIN")
    key = sandbox.admin

    reads = await gql(
        "query($id: ID!) { approvalPolicies { id } campaignApprovals(campaignId: $id) { kind } users { sub } "
        "me { sub } }",
        {"id": campaign["id"]},
        key=key,
    )
    assert reads == {"approvalPolicies": [], "campaignApprovals": [], "users": [], "me": None}
    assert (await gql("{ approvalPolicies { id } }", key=other_sandbox.admin))["approvalPolicies"] == [
        {"id": theirs["id"]}
    ]
    for mutation, global_id, extra in [
        ("approvalPolicyUpdate", theirs["id"], ', name: "mine"'),
        ("approvalPolicyDelete", theirs["id"], ""),
        ("campaignRequestApproval", campaign["id"], ""),
        ("campaignApprove", campaign["id"], ""),
        ("campaignRequestChanges", campaign["id"], ', comment: "mine"'),
        ("userMembershipRemove", user["id"], ""),
    ]:
        answer = await gql(
            f"mutation($id: ID!) {{ {mutation}(input: {{id: $id{extra}}}) {{ __typename }} }}",
            {"id": global_id},
            key=key,
        )
        assert answer[mutation]["__typename"] == "NotFoundError", mutation
    # Naming another sandbox's member as an approver is refused; their policy and request are untouched.
    named = await gql(
        'mutation($u: ID!) { approvalPolicyCreate(input: {name: "x", approverUserIds: [$u]}) { __typename } }',
        {"u": user["id"]},
        key=key,
    )
    assert named["approvalPolicyCreate"]["__typename"] == "InvalidInputError"
    steps = await gql(
        "query($id: ID!) { campaignApprovals(campaignId: $id) { kind } }",
        {"id": campaign["id"]},
        key=other_sandbox.admin,
    )
    assert steps["campaignApprovals"] == [{"kind": "REQUESTED"}]
