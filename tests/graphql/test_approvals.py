"""Approval policies: a matching policy turns activation into a request; the campaign is read-only IN_REVIEW;
approvers (roles or named people, k of n, never the requester) approve or request changes; each step records
who, when and which version, is audited, and goes through the campaign status machine."""

from __future__ import annotations

from typing import Any

from models.outbox.model import OutboxEvent
from models.tenancy.sandbox import Role
from resolvers.nodes import pk_of
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import UPDATE, activate, active_in_app_preset, audience, create, ready_input
from tests.graphql.test_people import as_person, member
from tests.oidc.provider import IdentityProvider

POLICY_CREATE = """mutation($input: ApprovalPolicyCreateInput!) { approvalPolicyCreate(input: $input) { __typename
  ... on ApprovalPolicySuccess { policy { id name channels approverRoles approverUserIds requiredApprovals } }
  ... on InvalidInputError { fieldErrors { field code } } } }"""
POLICY_UPDATE = """mutation($input: ApprovalPolicyUpdateInput!) { approvalPolicyUpdate(input: $input) { __typename
  ... on ApprovalPolicySuccess { policy { id enabled audienceAbove } } ... on NotFoundError { id } } }"""
POLICY_DELETE = """mutation($id: ID!) { approvalPolicyDelete(input: {id: $id}) { __typename
  ... on ApprovalPolicyDeleteSuccess { deletedId } ... on NotFoundError { id } } }"""
POLICIES = "{ approvalPolicies { id name enabled } }"
STEP_ERRORS = """
  ... on ApprovalRefusedError { code message }
  ... on InvalidStateError { currentStatus allowedActions }
  ... on ReviewFailedError { alerts { code } }
  ... on InvalidInputError { fieldErrors { field code } }
  ... on NotFoundError { id }"""
REQUEST = (
    """mutation($id: ID!, $comment: String!) { campaignRequestApproval(input: {id: $id, comment: $comment}) {
  __typename ... on CampaignApprovalStepSuccess { campaign { id status version availableActions } }"""
    + STEP_ERRORS
    + " } }"
)
APPROVE = (
    """mutation($id: ID!, $activate: Boolean!) { campaignApprove(input: {id: $id, activate: $activate}) {
  __typename ... on CampaignApproveSuccess { approved activated campaign { status version } run { status } }"""
    + STEP_ERRORS
    + " } }"
)
CHANGES = (
    """mutation($id: ID!, $comment: String!) { campaignRequestChanges(input: {id: $id, comment: $comment}) {
  __typename ... on CampaignApprovalStepSuccess { campaign { status } }"""
    + STEP_ERRORS
    + " } }"
)
STEPS = "query($id: ID!) { campaignApprovals(campaignId: $id) { kind actor role version comment policies } }"
ACTIVATE_REQUIRED = """mutation($id: ID!) { campaignActivate(input: {id: $id}) { __typename
  ... on ApprovalRequiredError { message policies } ... on CampaignActivateSuccess { campaign { status } } } }"""
AUDIT = "query($type: String) { auditEvents(first: 30, objectType: $type) { edges { node { actor action } } } }"


async def policy(gql: GraphQLClient, sandbox: SandboxKeys, **fields: Any) -> dict[str, Any]:
    values = {"name": "In-app needs a publisher", "channels": ["IN_APP"], "approverRoles": ["PUBLISHER"], **fields}
    result = (await gql(POLICY_CREATE, {"input": values}, key=sandbox.admin))["approvalPolicyCreate"]
    assert result["__typename"] == "ApprovalPolicySuccess", result
    return result["policy"]


async def ready_campaign(gql: GraphQLClient, sandbox: SandboxKeys, size: int = 3) -> dict[str, Any]:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=size)
    return await create(gql, sandbox, ready_input(preset_id, segment_id))


async def test_request_review_read_only_approve_then_activate(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    await policy(gql, sandbox)
    campaign = await ready_campaign(gql, sandbox)
    manager, publisher = sandbox.keys[Role.MANAGER], sandbox.keys[Role.PUBLISHER]

    refused = (await gql(ACTIVATE_REQUIRED, {"id": campaign["id"]}, key=publisher))["campaignActivate"]
    assert refused["__typename"] == "ApprovalRequiredError"
    assert refused["policies"] == ["In-app needs a publisher"]

    requested = (await gql(REQUEST, {"id": campaign["id"], "comment": "Please"}, key=manager))[
        "campaignRequestApproval"
    ]
    assert requested["__typename"] == "CampaignApprovalStepSuccess", requested
    assert requested["campaign"]["status"] == "IN_REVIEW"
    assert set(requested["campaign"]["availableActions"]) == {"REVIEW", "DUPLICATE", "APPROVE", "REQUEST_CHANGES"}
    reviewed_version = campaign["version"]

    # Read-only while in review: an edit is refused with a typed error naming the status.
    edit = {"id": campaign["id"], "version": requested["campaign"]["version"], "name": "Sneaky"}
    edited = (await gql(UPDATE, {"input": edit}, key=manager))["campaignUpdate"]
    assert edited["__typename"] == "InvalidStateError"
    assert edited["currentStatus"] == "IN_REVIEW"

    # No self-approval; a MANAGER is not an approver of a PUBLISHER policy; activation waits for approval.
    own = (await gql(APPROVE, {"id": campaign["id"], "activate": False}, key=manager))["campaignApprove"]
    assert (own["__typename"], own["code"]) == ("ApprovalRefusedError", "SELF_APPROVAL")
    assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "InvalidStateError"

    approved = (await gql(APPROVE, {"id": campaign["id"], "activate": False}, key=publisher))["campaignApprove"]
    assert approved["__typename"] == "CampaignApproveSuccess", approved
    assert (approved["approved"], approved["activated"], approved["campaign"]["status"]) == (True, False, "APPROVED")
    again = (await gql(APPROVE, {"id": campaign["id"], "activate": False}, key=publisher))["campaignApprove"]
    assert again["__typename"] == "InvalidStateError"  # APPROVED: nothing left to approve

    live = await activate(gql, sandbox, campaign["id"])
    assert live["__typename"] == "CampaignActivateSuccess", live
    assert live["campaign"]["status"] == "LIVE"
    await gql.drain_jobs()

    steps = (await gql(STEPS, {"id": campaign["id"]}, key=sandbox.keys[Role.VIEWER]))["campaignApprovals"]
    assert [(s["kind"], s["role"], s["comment"]) for s in steps] == [
        ("REQUESTED", "MANAGER", "Please"),
        ("APPROVED", "PUBLISHER", ""),
    ]
    assert steps[0]["version"] == reviewed_version and steps[1]["version"] == reviewed_version + 1
    assert steps[0]["policies"] == ["In-app needs a publisher"]
    assert steps[0]["actor"].startswith("apikey:") and steps[0]["actor"] != steps[1]["actor"]

    # Each step went through the status machine: audited, and an outbox event for subscribers.
    audit = await gql(AUDIT, {"type": "Campaign"}, key=sandbox.admin)
    assert [e["node"]["action"] for e in audit["auditEvents"]["edges"]][:3] == [
        "ACTIVATE",
        "APPROVE",
        "REQUEST_APPROVAL",
    ]
    campaign_pk = pk_of(campaign["id"], "Campaign")
    events = await OutboxEvent.filter(topic="campaign.status").order_by("id").values_list("payload", flat=True)
    statuses = [e["status"] for e in events if e.get("campaignId") == campaign_pk]
    assert statuses == ["DRAFT", "IN_REVIEW", "APPROVED", "LIVE"]


async def test_k_of_n_role_approvers_changes_requested_and_the_last_approver_activates(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    await policy(gql, sandbox, name="Two of the top", approverRoles=["PUBLISHER"], requiredApprovals=2)
    campaign = await ready_campaign(gql, sandbox)
    manager, publisher, admin = (sandbox.keys[r] for r in (Role.MANAGER, Role.PUBLISHER, Role.ADMIN))
    await gql(REQUEST, {"id": campaign["id"], "comment": ""}, key=manager)

    first = (await gql(APPROVE, {"id": campaign["id"], "activate": False}, key=publisher))["campaignApprove"]
    assert (first["approved"], first["campaign"]["status"]) == (False, "IN_REVIEW")
    twice = (await gql(APPROVE, {"id": campaign["id"], "activate": False}, key=publisher))["campaignApprove"]
    assert twice["code"] == "ALREADY_APPROVED"

    # Changes requested: back to DRAFT, the approvals lapse; a new request starts over.
    back = (await gql(CHANGES, {"id": campaign["id"], "comment": "Fix the title"}, key=admin))["campaignRequestChanges"]
    assert back["campaign"]["status"] == "DRAFT"
    await gql(REQUEST, {"id": campaign["id"], "comment": "Fixed"}, key=manager)
    first = (await gql(APPROVE, {"id": campaign["id"], "activate": False}, key=publisher))["campaignApprove"]
    assert first["approved"] is False
    # The last approver (an ADMIN: roles include those below) approves and activates at once.
    last = (await gql(APPROVE, {"id": campaign["id"], "activate": True}, key=admin))["campaignApprove"]
    assert (last["approved"], last["activated"], last["campaign"]["status"]) == (True, True, "LIVE"), last
    assert last["run"]["status"] == "PENDING"
    await gql.drain_jobs()
    steps = (await gql(STEPS, {"id": campaign["id"]}, key=admin))["campaignApprovals"]
    assert [s["kind"] for s in steps] == [
        "REQUESTED",
        "APPROVED",
        "CHANGES_REQUESTED",
        "REQUESTED",
        "APPROVED",
        "APPROVED",
    ]
    assert steps[2]["comment"] == "Fix the title"


async def test_conditions_decide_whether_a_policy_matches(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    big = await policy(gql, sandbox, name="Big audiences", channels=[], audienceAbove=10)
    email_only = await policy(gql, sandbox, name="Email only", channels=["EMAIL"])
    managers = await policy(gql, sandbox, name="Asked by managers", channels=[], requesterRoles=["MANAGER"])
    campaign = await ready_campaign(gql, sandbox, size=3)  # in-app, 3 contactable profiles
    publisher = sandbox.keys[Role.PUBLISHER]
    # 3 is not above 10, in-app is not email, and a PUBLISHER activates: no policy matches.
    assert [p["name"] for p in (await gql(POLICIES, key=publisher))["approvalPolicies"]] == [
        "Big audiences",
        "Email only",
        "Asked by managers",
    ]
    nothing = (await gql(REQUEST, {"id": campaign["id"], "comment": ""}, key=publisher))["campaignRequestApproval"]
    assert nothing["code"] == "NO_POLICY_MATCHES"
    changed = (await gql(POLICY_UPDATE, {"input": {"id": big["id"], "audienceAbove": 2}}, key=sandbox.admin))[
        "approvalPolicyUpdate"
    ]
    assert changed["policy"]["audienceAbove"] == 2
    required = (await gql(ACTIVATE_REQUIRED, {"id": campaign["id"]}, key=publisher))["campaignActivate"]
    assert required["policies"] == ["Big audiences"]
    await gql(POLICY_UPDATE, {"input": {"id": big["id"], "enabled": False}}, key=sandbox.admin)
    for removed in (email_only, managers):
        deleted = (await gql(POLICY_DELETE, {"id": removed["id"]}, key=sandbox.admin))["approvalPolicyDelete"]
        assert deleted["__typename"] == "ApprovalPolicyDeleteSuccess"
    assert (await gql(ACTIVATE_REQUIRED, {"id": campaign["id"]}, key=publisher))["campaignActivate"] == {
        "__typename": "CampaignActivateSuccess",
        "campaign": {"status": "LIVE"},
    }
    await gql.drain_jobs()
    audit = await gql(AUDIT, {"type": "ApprovalPolicy"}, key=sandbox.admin)
    assert sorted(e["node"]["action"] for e in audit["auditEvents"]["edges"]) == [
        "CREATE",
        "CREATE",
        "CREATE",
        "DELETE",
        "DELETE",
        "UPDATE",
        "UPDATE",
    ]


async def test_policy_input_is_checked(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    values = {"name": "", "approverRoles": ["VIEWER"], "requiredApprovals": 11}
    refused = (await gql(POLICY_CREATE, {"input": values}, key=sandbox.admin))["approvalPolicyCreate"]
    assert {(e["field"], e["code"]) for e in refused["fieldErrors"]} == {
        ("input.name", "INVALID"),
        ("input.approverRoles", "INVALID"),
        ("input.requiredApprovals", "OUT_OF_RANGE"),
    }
    stranger = {"name": "Named", "approverUserIds": ["VXNlcjo5OTk5OTk5"]}  # User:9999999, no member here
    refused = (await gql(POLICY_CREATE, {"input": stranger}, key=sandbox.admin))["approvalPolicyCreate"]
    assert {(e["field"], e["code"]) for e in refused["fieldErrors"]} >= {("input.approverUserIds", "INVALID")}


async def test_named_people_approve_k_of_n_and_never_their_own_request(
    gql: GraphQLClient, sandbox: SandboxKeys, oidc_provider: IdentityProvider, people: Any
) -> None:
    await member(gql, sandbox, "alice", "PUBLISHER")
    bob = await member(gql, sandbox, "bob", "MANAGER")
    carol = await member(gql, sandbox, "carol", "MANAGER")
    await member(gql, sandbox, "dave", "MANAGER")
    await policy(gql, sandbox, name="Bob and Carol", approverRoles=[], approverUserIds=[bob["id"], carol["id"]],
                 requiredApprovals=2)  # fmt: skip
    campaign = await ready_campaign(gql, sandbox)
    tokens = {who: await oidc_provider.token(who) for who in ("alice", "bob", "carol", "dave")}

    async def step(who: str, query: str, **variables: Any) -> dict[str, Any]:
        answer = await as_person(gql, tokens[who], query, {"id": campaign["id"], **variables}, sandbox=sandbox.name)
        assert answer.status_code == 200, answer.text
        return next(iter(answer.json()["data"].values()))

    assert (await step("alice", ACTIVATE_REQUIRED))["__typename"] == "ApprovalRequiredError"
    assert (await step("alice", REQUEST, comment="For the launch"))["campaign"]["status"] == "IN_REVIEW"
    assert (await step("dave", APPROVE, activate=False))["code"] == "NOT_AN_APPROVER"  # a MANAGER, not named
    assert (await step("alice", APPROVE, activate=False))["code"] == "SELF_APPROVAL"
    assert (await step("bob", APPROVE, activate=False))["approved"] is False
    # carol is a MANAGER: she may approve (named) but not activate.
    assert (await step("carol", APPROVE, activate=True))["fieldErrors"] == [
        {"field": "input.activate", "code": "INVALID"}
    ]
    assert (await step("carol", APPROVE, activate=False))["campaign"]["status"] == "APPROVED"
    live = await step("alice", ACTIVATE_REQUIRED)
    assert live == {"__typename": "CampaignActivateSuccess", "campaign": {"status": "LIVE"}}
    await gql.drain_jobs()
    steps = (await gql(STEPS, {"id": campaign["id"]}, key=sandbox.admin))["campaignApprovals"]
    assert [(s["kind"], s["actor"]) for s in steps] == [
        ("REQUESTED", "user:alice"),
        ("APPROVED", "user:bob"),
        ("APPROVED", "user:carol"),
    ]
