"""Draft versions of a LIVE campaign go through the approval policies before they are published (request, approve
by someone else, publish), can be sent back or discarded, and can be previewed and proofed before publication."""

from __future__ import annotations

from typing import Any

from models.ledger.delivery import InboxMessage
from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_approvals import AUDIT, POLICY_UPDATE, policy
from tests.graphql.test_campaign_proofs import proof
from tests.graphql.test_campaigns import UPDATE, activate, active_in_app_preset, audience, create, ready_input
from tests.graphql.test_profiles import upsert
from tests.jobs.test_runs import gold

VERSION = "version { number state content { inApp { title } } }"
STATE_ERRORS = " ... on InvalidStateError { message currentStatus } ... on NotFoundError { id }"
PUBLISH_ERRORS = (
    STATE_ERRORS + " ... on ApprovalRequiredError { policies } ... on ReviewFailedError { alerts { code } }"
)
ERRORS = (
    PUBLISH_ERRORS.replace("ApprovalRequiredError { policies }", "ApprovalRefusedError { code }")
    + " ... on InvalidInputError { fieldErrors { field code } }"
)
PUBLISH = (
    "mutation($id: ID!, $n: Int!) { campaignVersionPublish(input: {campaignId: $id, number: $n}) { __typename "
    "... on CampaignVersionSuccess { campaign { content { inApp { title } } } "
    + VERSION
    + " }"
    + PUBLISH_ERRORS
    + " } }"
)
DISCARD = (
    "mutation($id: ID!, $n: Int!) { campaignVersionDiscard(input: {campaignId: $id, number: $n}) { __typename "
    "... on CampaignVersionDiscardSuccess { " + VERSION + " }" + STATE_ERRORS + " } }"
)
STEP_SUCCESS = "... on CampaignVersionApprovalSuccess { approved published campaign { version } " + VERSION + " }"
REQUEST = (
    "mutation($id: ID!, $n: Int!) { campaignVersionRequestApproval(input: {campaignId: $id, number: $n, "
    'comment: "v2 please"}) { __typename ' + STEP_SUCCESS + ERRORS + " } }"
)
APPROVE = (
    "mutation($id: ID!, $n: Int!, $publish: Boolean!) { campaignVersionApprove(input: {campaignId: $id, "
    "number: $n, publish: $publish}) { __typename " + STEP_SUCCESS + ERRORS + " } }"
)
CHANGES = (
    "mutation($id: ID!, $n: Int!) { campaignVersionRequestChanges(input: {campaignId: $id, number: $n, "
    'comment: "shorter"}) { __typename ' + STEP_SUCCESS + ERRORS + " } }"
)
STEPS = "query($id: ID!) { campaignApprovals(campaignId: $id) { kind role versionNumber comment policies } }"
VERSIONS = "query($id: ID!) { campaign(id: $id) { versions(first: 10) { nodes { number state basedOn } } } }"
PREVIEW = """query($id: ID!, $p: ID!, $v: Int) { campaignPreview(id: $id, profileId: $p, version: $v) {
  __typename ... on CampaignPreview { title } ... on NotFoundError { id } } }"""


async def live_api_campaign(gql: GraphQLClient, sandbox: SandboxKeys) -> str:
    """An API-triggered in-app campaign, LIVE (activated before any policy exists): versions apply to it."""
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox)
    campaign = await create(gql, sandbox, {**ready_input(preset_id, segment_id), "type": "API_TRIGGERED"})
    activated = await activate(gql, sandbox, campaign["id"])
    assert activated["campaign"]["status"] == "LIVE", activated
    return campaign["id"]


async def edit_title(gql: GraphQLClient, sandbox: SandboxKeys, campaign_id: str, title: str) -> dict[str, Any]:
    read = await gql("query($id: ID!) { campaign(id: $id) { version } }", {"id": campaign_id}, key=sandbox.admin)
    content = {"inApp": {"title": title, "body": "Welcome aboard."}}
    variables = {"input": {"id": campaign_id, "version": read["campaign"]["version"], "content": content}}
    return (await gql(UPDATE, variables, key=sandbox.keys[Role.MANAGER]))["campaignUpdate"]


async def step(gql: GraphQLClient, query: str, key: str, **variables: Any) -> dict[str, Any]:
    answer = await gql(query, variables, key=key)
    return next(iter(answer.values()))


async def test_a_draft_version_a_policy_matches_is_published_only_once_approved_by_another(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    cid = await live_api_campaign(gql, sandbox)
    await policy(gql, sandbox)  # in-app campaigns: a PUBLISHER approves
    manager, publisher = sandbox.keys[Role.MANAGER], sandbox.keys[Role.PUBLISHER]
    assert (await edit_title(gql, sandbox, cid, "Version two"))["__typename"] == "CampaignSuccess"

    required = await step(gql, PUBLISH, publisher, id=cid, n=2)
    assert required == {"__typename": "ApprovalRequiredError", "policies": ["In-app needs a publisher"]}

    requested = await step(gql, REQUEST, manager, id=cid, n=2)
    assert requested["__typename"] == "CampaignVersionApprovalSuccess", requested
    assert (requested["version"]["state"], requested["approved"]) == ("IN_REVIEW", False)
    # Read-only in review: an edit and a publication are refused with typed errors; the requester cannot approve.
    frozen = await edit_title(gql, sandbox, cid, "Sneaky")
    assert (frozen["__typename"], frozen["currentStatus"]) == ("InvalidStateError", "LIVE"), frozen
    assert "IN_REVIEW" in frozen["message"]
    assert (await step(gql, PUBLISH, publisher, id=cid, n=2))["__typename"] == "InvalidStateError"
    own = await step(gql, APPROVE, manager, id=cid, n=2, publish=False)
    assert own == {"__typename": "ApprovalRefusedError", "code": "SELF_APPROVAL"}

    approved = await step(gql, APPROVE, publisher, id=cid, n=2, publish=False)
    assert (approved["version"]["state"], approved["approved"], approved["published"]) == ("APPROVED", True, False)
    published = await step(gql, PUBLISH, publisher, id=cid, n=2)
    assert published["__typename"] == "CampaignVersionSuccess", published
    assert published["version"]["state"] == "PUBLISHED"
    assert published["campaign"]["content"]["inApp"]["title"] == "Version two"

    steps = await step(gql, STEPS, sandbox.keys[Role.VIEWER], id=cid)
    assert [(s["kind"], s["role"], s["versionNumber"]) for s in steps] == [
        ("REQUESTED", "MANAGER", 2),
        ("APPROVED", "PUBLISHER", 2),
    ]
    assert steps[0]["policies"] == ["In-app needs a publisher"] and steps[0]["comment"] == "v2 please"
    audit = await gql(AUDIT, {"type": "Campaign"}, key=sandbox.admin)
    assert [e["node"]["action"] for e in audit["auditEvents"]["edges"]][:4] == [
        "VERSION_PUBLISH",
        "VERSION_APPROVE",
        "VERSION_REQUEST_APPROVAL",
        "VERSION_DRAFT",
    ]


async def test_changes_requested_reopen_the_draft_the_last_approver_publishes_and_a_draft_is_discarded(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    cid = await live_api_campaign(gql, sandbox)
    await policy(gql, sandbox)
    manager, publisher = sandbox.keys[Role.MANAGER], sandbox.keys[Role.PUBLISHER]
    await edit_title(gql, sandbox, cid, "Too long a title")
    await step(gql, REQUEST, manager, id=cid, n=2)
    back = await step(gql, CHANGES, publisher, id=cid, n=2)
    assert back["version"]["state"] == "DRAFT", back
    assert (await edit_title(gql, sandbox, cid, "Short"))["__typename"] == "CampaignSuccess"
    assert (await step(gql, REQUEST, manager, id=cid, n=2))["version"]["state"] == "IN_REVIEW"
    # The last approver (an ADMIN: roles include those below) approves and publishes at once.
    last = await step(gql, APPROVE, sandbox.admin, id=cid, n=2, publish=True)
    assert last["__typename"] == "CampaignVersionApprovalSuccess" and last["published"] is True, last
    assert (last["version"]["state"], last["version"]["content"]["inApp"]["title"]) == ("PUBLISHED", "Short")

    # A new draft, discarded: the next edit starts from the published version again.
    await edit_title(gql, sandbox, cid, "Abandoned")
    await step(gql, REQUEST, manager, id=cid, n=3)
    publish_flag = await step(gql, APPROVE, manager, id=cid, n=3, publish=True)
    assert publish_flag["fieldErrors"] == [{"field": "input.publish", "code": "INVALID"}]
    discarded = await step(gql, DISCARD, manager, id=cid, n=3)
    assert discarded["version"]["state"] == "DISCARDED", discarded
    assert (await step(gql, DISCARD, manager, id=cid, n=2))["__typename"] == "InvalidStateError"  # published
    assert (await step(gql, DISCARD, manager, id=cid, n=9))["__typename"] == "NotFoundError"
    assert (await step(gql, APPROVE, publisher, id=cid, n=3, publish=False))["__typename"] == "InvalidStateError"
    await edit_title(gql, sandbox, cid, "Fresh")
    versions = (await step(gql, VERSIONS, manager, id=cid))["versions"]["nodes"]
    assert [(v["number"], v["state"], v["basedOn"]) for v in versions] == [
        (4, "DRAFT", 2),
        (3, "DISCARDED", 2),
        (2, "PUBLISHED", 1),
        (1, "SUPERSEDED", None),
    ]


async def test_a_draft_version_is_previewed_and_proofed_before_publication(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, worker: None
) -> None:
    cid = await live_api_campaign(gql, sandbox)
    tester = (await upsert(gql, sandbox.admin, [gold("tess@example.com", "Tess", testProfile=True)]))["results"]
    profile_id = tester[0]["profile"]["id"]
    await edit_title(gql, sandbox, cid, "Draft for {{ profile.person.name.firstName }}")
    manager = sandbox.keys[Role.MANAGER]

    previews = {
        version: await step(gql, PREVIEW, manager, id=cid, p=profile_id, v=version) for version in (None, 1, 2, 7)
    }
    assert previews[None] == previews[1] == {"__typename": "CampaignPreview", "title": "Hi Tess"}
    assert previews[2] == {"__typename": "CampaignPreview", "title": "Draft for Tess"}
    assert previews[7] == {"__typename": "NotFoundError", "id": "7"}

    # Proofs: a LIVE campaign's own message is refused; its draft version is sent.
    assert (await proof(gql, sandbox, id=cid, testProfileIds=[profile_id]))["__typename"] == "InvalidStateError"
    missing = await proof(gql, sandbox, id=cid, testProfileIds=[profile_id], version=7)
    assert missing["fieldErrors"] == [{"field": "input.version", "code": "NOT_FOUND"}]
    sent = await proof(gql, sandbox, id=cid, testProfileIds=[profile_id], version=2)
    assert [(o["recipient"], o["status"]) for o in sent["outcomes"]] == [("tess@example.com", "SENT")], sent
    assert sent["campaign"]["status"] == "LIVE"
    titles = await InboxMessage.filter(identity="tess@example.com").values_list("title", flat=True)
    assert titles == ["Draft for Tess"]


RESTORED = "version { number state restores content { inApp { title } } }"
ROLLBACK = (
    "mutation($id: ID!, $n: Int!) { campaignVersionRollback(input: {campaignId: $id, number: $n}) { __typename "
    "... on CampaignVersionSuccess { " + RESTORED + " }" + PUBLISH_ERRORS + " } }"
)
RESTORE = (
    "mutation($id: ID!, $n: Int!) { campaignVersionRestore(input: {campaignId: $id, number: $n}) { __typename "
    "... on CampaignVersionRestoreSuccess { " + RESTORED + " }" + STATE_ERRORS + " } }"
)
FIRST_TITLE = "Hi {{ profile.person.name.firstName }}"


async def test_a_rollback_needs_the_approval_a_publication_needs(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    cid = await live_api_campaign(gql, sandbox)
    manager, publisher = sandbox.keys[Role.MANAGER], sandbox.keys[Role.PUBLISHER]
    await edit_title(gql, sandbox, cid, "Version two")
    assert (await step(gql, PUBLISH, publisher, id=cid, n=2))["__typename"] == "CampaignVersionSuccess"
    rule = await policy(gql, sandbox)  # from now on, in-app messages are published once a PUBLISHER approved them
    await edit_title(gql, sandbox, cid, "Work in progress")

    # Rolling back to version 1 publishes it: refused as its publication would be, and nothing changed.
    refused = await step(gql, ROLLBACK, publisher, id=cid, n=1)
    assert refused == {"__typename": "ApprovalRequiredError", "policies": ["In-app needs a publisher"]}
    versions = (await step(gql, VERSIONS, manager, id=cid))["versions"]["nodes"]
    assert [(v["number"], v["state"]) for v in versions] == [(3, "DRAFT"), (2, "PUBLISHED"), (1, "SUPERSEDED")]

    # The rollback drafted instead (the open draft gives way), then approved by someone else and published.
    restored = await step(gql, RESTORE, manager, id=cid, n=1)
    assert restored["__typename"] == "CampaignVersionRestoreSuccess", restored
    assert restored["version"] == {
        "number": 4,
        "state": "DRAFT",
        "restores": 1,
        "content": {"inApp": {"title": FIRST_TITLE}},
    }
    assert (await step(gql, PUBLISH, publisher, id=cid, n=4))["__typename"] == "ApprovalRequiredError"
    assert (await step(gql, REQUEST, manager, id=cid, n=4))["version"]["state"] == "IN_REVIEW"
    # Another restore would drop the version in review: refused, as an edit is.
    in_review = await step(gql, RESTORE, manager, id=cid, n=1)
    assert (in_review["__typename"], in_review["currentStatus"]) == ("InvalidStateError", "LIVE"), in_review
    published = await step(gql, APPROVE, publisher, id=cid, n=4, publish=True)
    assert published["published"] is True, published
    assert (published["version"]["state"], published["version"]["content"]["inApp"]["title"]) == (
        "PUBLISHED",
        FIRST_TITLE,
    )
    versions = (await step(gql, VERSIONS, manager, id=cid))["versions"]["nodes"]
    assert [(v["number"], v["state"]) for v in versions] == [
        (4, "PUBLISHED"),
        (3, "DISCARDED"),
        (2, "SUPERSEDED"),
        (1, "SUPERSEDED"),
    ]
    audit = await gql(AUDIT, {"type": "Campaign"}, key=sandbox.admin)
    assert [e["node"]["action"] for e in audit["auditEvents"]["edges"]][:5] == [
        "VERSION_ROLLBACK",
        "VERSION_APPROVE",
        "VERSION_REQUEST_APPROVAL",
        "VERSION_DRAFT",
        "VERSION_DISCARD",
    ]

    # Only an earlier published version is restored.
    assert (await step(gql, RESTORE, manager, id=cid, n=4))["__typename"] == "InvalidStateError"  # the published one
    assert (await step(gql, RESTORE, manager, id=cid, n=3))["__typename"] == "InvalidStateError"  # never published
    assert (await step(gql, RESTORE, manager, id=cid, n=9))["__typename"] == "NotFoundError"

    # The policy as a publication reads it: once it asks only for MANAGERs' versions, a PUBLISHER rolls back at once.
    narrowed = {"id": rule["id"], "requesterRoles": ["MANAGER"]}
    assert (await gql(POLICY_UPDATE, {"input": narrowed}, key=sandbox.admin))["approvalPolicyUpdate"]["policy"]
    rolled = await step(gql, ROLLBACK, publisher, id=cid, n=2)
    assert rolled["__typename"] == "CampaignVersionSuccess", rolled
    assert (rolled["version"]["number"], rolled["version"]["state"], rolled["version"]["restores"]) == (
        5,
        "PUBLISHED",
        2,
    )

    # A restoring draft edited is a new message: it no longer says it restores anything.
    assert (await step(gql, RESTORE, manager, id=cid, n=1))["version"]["restores"] == 1
    assert (await edit_title(gql, sandbox, cid, "Version one, fixed"))["__typename"] == "CampaignSuccess"
    read = "query($id: ID!) { campaign(id: $id) { versions(first: 1) { nodes { number state restores } } } }"
    latest = (await step(gql, read, manager, id=cid))["versions"]["nodes"]
    assert latest == [{"number": 6, "state": "DRAFT", "restores": None}]
