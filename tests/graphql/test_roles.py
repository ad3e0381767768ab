"""Roles: every root field declares exactly one permission, and each role is allowed or refused as ROLE_TABLE says.

ROLE_TABLE must name every query, mutation and subscription root field (found by introspection): a new field
that is not added here fails `test_role_table_covers_every_root_field`. For each entry give the lowest role
allowed and a valid operation selecting only that field; choose inputs with no lasting effect (an unknown id, an
input the mutation refuses with a typed error) — the test only checks that the permission let the call through
or refused it with FORBIDDEN. A subscription also needs a `trigger`: an operation (run with an ADMIN key until an
event arrives) that makes the subscription emit, to prove an allowed role really receives events.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets

from models.tenancy.sandbox import Role
from resolvers.schema import schema
from tests.conftest import RunningServer, SandboxKeys, subscribe


@dataclass(frozen=True)
class Case:
    lowest_role: Role
    operation: str
    variables: dict[str, Any] = field(default_factory=dict)
    trigger: str | None = None


# A global id of nothing (AuditEvent 999999999): look-ups answer null or NotFoundError.
NOWHERE = "QXVkaXRFdmVudDo5OTk5OTk5OTk="
# Creating an in-app preset and submitting it publishes a status change (PROCESSING).
PRESET_TRIGGER = (
    'mutation { messagePresetCreate(input: {name: "Roles", channel: IN_APP, settings: {inApp: {appId: "a"}}}) '
    "{ ... on MessagePresetCreateSuccess { preset { id } } } }"
)

ROLE_TABLE: dict[tuple[str, str], Case] = {
    ("Query", "viewer"): Case(Role.VIEWER, "{ viewer { role } }"),
    ("Query", "node"): Case(Role.VIEWER, "query($id: ID!) { node(id: $id) { id } }", {"id": "QXVkaXRFdmVudDox"}),
    ("Query", "auditEvents"): Case(Role.VIEWER, "{ auditEvents(first: 1) { totalCount } }"),
    ("Query", "identityNamespaces"): Case(Role.VIEWER, "{ identityNamespaces { code } }"),
    ("Mutation", "workerPing"): Case(Role.ADMIN, 'mutation { workerPing(input: {message: "roles"}) { __typename } }'),
    ("Subscription", "workerPong"): Case(
        Role.ADMIN,
        "subscription { workerPong { pingId } }",
        trigger='mutation { workerPing(input: {message: "roles"}) { __typename } }',
    ),
    # Audience. Inputs are refused or point nowhere, so the calls leave nothing behind.
    ("Query", "profile"): Case(Role.VIEWER, "query($id: ID!) { profile(id: $id) { id } }", {"id": NOWHERE}),
    ("Query", "profileByIdentity"): Case(
        Role.VIEWER, '{ profileByIdentity(namespace: "Email", value: "nobody@example.com") { id } }'
    ),
    ("Query", "profiles"): Case(Role.VIEWER, "{ profiles(first: 1) { totalCount } }"),
    ("Query", "segment"): Case(Role.VIEWER, "query($id: ID!) { segment(id: $id) { id } }", {"id": NOWHERE}),
    ("Query", "segments"): Case(Role.VIEWER, "{ segments(first: 1) { totalCount } }"),
    ("Query", "segmentEstimate"): Case(
        Role.VIEWER,
        'query($id: ID!) { segmentEstimate(id: $id, namespace: "Email", channel: EMAIL) { qualified } }',
        {"id": NOWHERE},
    ),
    ("Query", "suppressions"): Case(Role.VIEWER, "{ suppressions(first: 1) { totalCount } }"),
    ("Mutation", "identityNamespaceCreate"): Case(
        Role.ADMIN,
        'mutation { identityNamespaceCreate(input: {code: "1bad", name: "x", type: PARTNER}) { __typename } }',
    ),
    ("Mutation", "profilesUpsert"): Case(
        Role.MANAGER,
        'mutation { profilesUpsert(input: {profiles: [{identities: [{namespace: "Email", value: "no"}]}]}) '
        "{ __typename } }",
    ),
    ("Mutation", "segmentCreate"): Case(
        Role.MANAGER, 'mutation { segmentCreate(input: {name: "", kind: STATIC}) { __typename } }'
    ),
    ("Mutation", "segmentUpdate"): Case(
        Role.MANAGER, "mutation($id: ID!) { segmentUpdate(input: {id: $id}) { __typename } }", {"id": NOWHERE}
    ),
    ("Mutation", "segmentDelete"): Case(
        Role.MANAGER, "mutation($id: ID!) { segmentDelete(input: {id: $id}) { __typename } }", {"id": NOWHERE}
    ),
    ("Mutation", "segmentMembersAdd"): Case(
        Role.MANAGER,
        "mutation($id: ID!) { segmentMembersAdd(input: {segmentId: $id, identities: []}) { __typename } }",
        {"id": NOWHERE},
    ),
    ("Mutation", "segmentMembersRemove"): Case(
        Role.MANAGER,
        "mutation($id: ID!) { segmentMembersRemove(input: {segmentId: $id, identities: []}) { __typename } }",
        {"id": NOWHERE},
    ),
    ("Mutation", "suppressionAdd"): Case(
        Role.ADMIN, 'mutation { suppressionAdd(input: {channel: EMAIL, address: "not an address"}) { __typename } }'
    ),
    ("Mutation", "suppressionRemove"): Case(
        Role.ADMIN, "mutation($id: ID!) { suppressionRemove(input: {id: $id}) { __typename } }", {"id": NOWHERE}
    ),
    # Webhooks: ADMIN only, reads included (URLs and delivery logs belong to the integration).
    ("Query", "webhookEndpoints"): Case(Role.ADMIN, "{ webhookEndpoints { id } }"),
    ("Query", "webhookDeliveries"): Case(
        Role.ADMIN, "query($id: ID!) { webhookDeliveries(endpointId: $id) { id } }", {"id": NOWHERE}
    ),
    ("Mutation", "webhookEndpointCreate"): Case(
        Role.ADMIN, 'mutation { webhookEndpointCreate(input: {url: "ftp://x", events: []}) { __typename } }'
    ),
    ("Mutation", "webhookEndpointUpdate"): Case(
        Role.ADMIN, "mutation($id: ID!) { webhookEndpointUpdate(input: {id: $id}) { __typename } }", {"id": NOWHERE}
    ),
    **{
        ("Mutation", name): Case(
            Role.ADMIN, f"mutation($id: ID!) {{ {name}(id: $id) {{ __typename }} }}", {"id": NOWHERE}
        )
        for name in ("webhookEndpointRotateSecret", "webhookEndpointDelete", "webhookDeliveryReplay")
    },
    # Business rule sets: ADMIN only, reads included.
    ("Query", "businessRuleSets"): Case(Role.ADMIN, "{ businessRuleSets(first: 1) { totalCount } }"),
    ("Mutation", "sandboxUpdate"): Case(Role.ADMIN, "mutation { sandboxUpdate(input: {}) { __typename } }"),
    ("Mutation", "businessRuleSetCreate"): Case(
        Role.ADMIN, 'mutation { businessRuleSetCreate(input: {name: " "}) { __typename } }'
    ),
    ("Mutation", "businessRuleSetUpdate"): Case(
        Role.ADMIN, "mutation($id: ID!) { businessRuleSetUpdate(input: {id: $id}) { __typename } }", {"id": NOWHERE}
    ),
    ("Mutation", "businessRuleSetDelete"): Case(
        Role.ADMIN, "mutation($id: ID!) { businessRuleSetDelete(id: $id) { __typename } }", {"id": NOWHERE}
    ),
    # Message presets.
    ("Query", "messagePreset"): Case(Role.VIEWER, "query($id: ID!) { messagePreset(id: $id) { id } }", {"id": NOWHERE}),
    ("Query", "messagePresets"): Case(Role.VIEWER, "{ messagePresets(first: 1) { totalCount } }"),
    **{
        ("Mutation", f"messagePreset{verb}"): Case(
            Role.ADMIN,
            f"mutation($id: ID!) {{ messagePreset{verb}(input: {{id: $id}}) {{ __typename }} }}",
            {"id": NOWHERE},
        )
        for verb in ("Activate", "Deactivate", "Delete", "Update", "Validate")
    },
    ("Mutation", "messagePresetCreate"): Case(
        Role.ADMIN,
        'mutation { messagePresetCreate(input: {name: "1bad", channel: IN_APP, '
        'settings: {inApp: {appId: "a"}}}) { __typename } }',
    ),
    ("Subscription", "messagePresetStatusChanged"): Case(
        Role.VIEWER,
        "subscription { messagePresetStatusChanged { status } }",
        trigger=PRESET_TRIGGER,
    ),
    # Campaigns.
    ("Query", "campaign"): Case(Role.VIEWER, "query($id: ID!) { campaign(id: $id) { id } }", {"id": NOWHERE}),
    ("Query", "campaigns"): Case(Role.VIEWER, "{ campaigns(first: 1) { totalCount } }"),
    ("Query", "campaignRuns"): Case(
        Role.VIEWER, "query($id: ID!) { campaignRuns(campaignId: $id) { totalCount } }", {"id": NOWHERE}
    ),
    ("Query", "campaignReview"): Case(
        Role.MANAGER, "query($id: ID!) { campaignReview(id: $id) { __typename } }", {"id": NOWHERE}
    ),
    ("Query", "campaignVersionDiff"): Case(
        Role.VIEWER,
        "query($id: ID!) { campaignVersionDiff(campaignId: $id, from: 1, to: 2) { __typename } }",
        {"id": NOWHERE},
    ),
    ("Query", "campaignCalendar"): Case(
        Role.VIEWER,
        'query { campaignCalendar(from: "2099-01-01T00:00:00Z", to: "2099-01-02T00:00:00Z") { __typename } }',
    ),
    # Versions: publishing (and rolling back) is a PUBLISHER's; the draft's steps (a restoring draft too) are a
    # MANAGER's, as edits are.
    **{
        ("Mutation", f"campaignVersion{verb}"): Case(
            role,
            f"mutation($id: ID!) {{ campaignVersion{verb}(input: {{campaignId: $id, number: 2{extra}}}) "
            "{ __typename } }",
            {"id": NOWHERE},
        )
        for verb, role, extra in (
            ("Publish", Role.PUBLISHER, ""),
            ("Rollback", Role.PUBLISHER, ""),
            ("Discard", Role.MANAGER, ""),
            ("Restore", Role.MANAGER, ""),
            ("RequestApproval", Role.MANAGER, ""),
            ("Approve", Role.MANAGER, ", publish: true"),
            ("RequestChanges", Role.MANAGER, ', comment: "x"'),
        )
    },
    ("Query", "campaignPreview"): Case(
        Role.MANAGER,
        "query($id: ID!) { campaignPreview(id: $id, profileId: $id, version: 2) { __typename } }",
        {"id": NOWHERE},
    ),
    ("Query", "campaignExperimentResults"): Case(
        Role.VIEWER, "query($id: ID!) { campaignExperimentResults(id: $id) { __typename } }", {"id": NOWHERE}
    ),
    ("Mutation", "campaignExperimentSelectWinner"): Case(
        Role.PUBLISHER,
        'mutation($id: ID!) { campaignExperimentSelectWinner(input: {id: $id, treatment: "A"}) { __typename } }',
        {"id": NOWHERE},
    ),
    ("Mutation", "campaignSendProof"): Case(
        Role.MANAGER,
        "mutation($id: ID!) { campaignSendProof(input: {id: $id, addresses: [], version: 2}) { __typename } }",
        {"id": NOWHERE},
    ),
    ("Mutation", "campaignCreate"): Case(Role.MANAGER, 'mutation { campaignCreate(input: {name: ""}) { __typename } }'),
    ("Mutation", "campaignUpdate"): Case(
        Role.MANAGER,
        "mutation($id: ID!) { campaignUpdate(input: {id: $id, version: 1}) { __typename } }",
        {"id": NOWHERE},
    ),
    ("Mutation", "campaignUpdateTags"): Case(
        Role.MANAGER, "mutation($id: ID!) { campaignUpdateTags(input: {id: $id}) { __typename } }", {"id": NOWHERE}
    ),
    **{
        ("Mutation", f"campaign{verb}"): Case(
            role, f"mutation($id: ID!) {{ campaign{verb}(input: {{id: $id}}) {{ __typename }} }}", {"id": NOWHERE}
        )
        for verb, role in (
            ("Delete", Role.MANAGER),
            ("Duplicate", Role.MANAGER),
            ("Activate", Role.PUBLISHER),
            ("Stop", Role.PUBLISHER),
            ("Archive", Role.PUBLISHER),
        )
    },
    # Approvals: policies are an ADMIN's; the steps need MANAGER (the policies then say who approves).
    ("Query", "approvalPolicies"): Case(Role.VIEWER, "{ approvalPolicies { id } }"),
    ("Query", "campaignApprovals"): Case(
        Role.VIEWER, "query($id: ID!) { campaignApprovals(campaignId: $id) { kind } }", {"id": NOWHERE}
    ),
    ("Mutation", "approvalPolicyCreate"): Case(
        Role.ADMIN, 'mutation { approvalPolicyCreate(input: {name: ""}) { __typename } }'
    ),
    ("Mutation", "approvalPolicyUpdate"): Case(
        Role.ADMIN, "mutation($id: ID!) { approvalPolicyUpdate(input: {id: $id}) { __typename } }", {"id": NOWHERE}
    ),
    ("Mutation", "approvalPolicyDelete"): Case(
        Role.ADMIN, "mutation($id: ID!) { approvalPolicyDelete(input: {id: $id}) { __typename } }", {"id": NOWHERE}
    ),
    ("Mutation", "campaignRequestApproval"): Case(
        Role.MANAGER, "mutation($id: ID!) { campaignRequestApproval(input: {id: $id}) { __typename } }", {"id": NOWHERE}
    ),
    ("Mutation", "campaignApprove"): Case(
        Role.MANAGER, "mutation($id: ID!) { campaignApprove(input: {id: $id}) { __typename } }", {"id": NOWHERE}
    ),
    ("Mutation", "campaignRequestChanges"): Case(
        Role.MANAGER,
        'mutation($id: ID!) { campaignRequestChanges(input: {id: $id, comment: "x"}) { __typename } }',
        {"id": NOWHERE},
    ),
    # People: members are managed (and listed) by ADMINs; `me` is anyone's.
    ("Query", "me"): Case(Role.VIEWER, "{ me { sub } }"),
    ("Query", "users"): Case(Role.ADMIN, "{ users { sub } }"),
    ("Mutation", "userMembershipSet"): Case(
        Role.ADMIN, 'mutation { userMembershipSet(input: {sub: "", role: VIEWER}) { __typename } }'
    ),
    ("Mutation", "userMembershipRemove"): Case(
        Role.ADMIN, "mutation($id: ID!) { userMembershipRemove(input: {id: $id}) { __typename } }", {"id": NOWHERE}
    ),
    ("Query", "profileImport"): Case(Role.VIEWER, "query($id: ID!) { profileImport(id: $id) { id } }", {"id": NOWHERE}),
    ("Query", "profileImports"): Case(Role.VIEWER, "{ profileImports(first: 1) { totalCount } }"),
    ("Subscription", "profileImportProgress"): Case(
        Role.VIEWER,
        "subscription($id: ID!) { profileImportProgress(id: $id) { status } }",
        {"id": "UHJvZmlsZUltcG9ydDo5OTk5OTk5OTk="},
    ),
    ("Query", "inAppMessages"): Case(
        Role.VIEWER, '{ inAppMessages(namespace: "Email", identity: "nobody@example.com") { title } }'
    ),
    ("Query", "deliveries"): Case(
        Role.VIEWER, "query($id: ID!) { deliveries(runId: $id) { totalCount } }", {"id": NOWHERE}
    ),
    ("Query", "campaignReport"): Case(
        Role.VIEWER, "query($id: ID!) { campaignReport(id: $id) { __typename } }", {"id": NOWHERE}
    ),
    ("Mutation", "campaignRunResendFailed"): Case(
        Role.PUBLISHER,
        "mutation($id: ID!) { campaignRunResendFailed(input: {runId: $id}) { __typename } }",
        {"id": NOWHERE},
    ),
    ("Mutation", "campaignRunResume"): Case(
        Role.PUBLISHER,
        "mutation($id: ID!) { campaignRunResume(input: {runId: $id}) { __typename } }",
        {"id": NOWHERE},
    ),
    # The subscription answers at once with the campaign's latest run (none here), so any trigger will do.
    ("Subscription", "campaignRunProgress"): Case(
        Role.VIEWER,
        "subscription($id: ID!) { campaignRunProgress(campaignId: $id) { runId } }",
        {"id": NOWHERE},
        trigger='mutation { campaignCreate(input: {name: "role check"}) { __typename } }',
    ),
    # API triggers: a campaign of nothing answers NotFoundError; a trigger of nothing completes at once.
    ("Query", "campaignTriggers"): Case(
        Role.VIEWER, "query($id: ID!) { campaignTriggers(campaignId: $id) { totalCount } }", {"id": NOWHERE}
    ),
    ("Mutation", "campaignTrigger"): Case(
        Role.PUBLISHER,
        'mutation($id: ID!) { campaignTrigger(input: {campaignId: $id, idempotencyKey: "roles", '
        'recipients: [{profileId: "1"}]}) { __typename } }',
        {"id": NOWHERE},
    ),
    ("Subscription", "campaignTriggerStatus"): Case(
        Role.VIEWER,
        "subscription($id: ID!) { campaignTriggerStatus(triggerId: $id) { triggerId } }",
        {"id": NOWHERE},
    ),
    ("Subscription", "campaignStatusChanged"): Case(
        Role.VIEWER,
        "subscription { campaignStatusChanged { status } }",
        trigger='mutation { campaignCreate(input: {name: "role check"}) { __typename } }',
    ),
}


def root_fields() -> set[tuple[str, str]]:
    """(root type, field) for every query, mutation and subscription root field, read by introspection."""
    introspected = schema.introspect()["__schema"]
    types = {t["name"]: t for t in introspected["types"]}
    found = set()
    for kind in ("queryType", "mutationType", "subscriptionType"):
        if introspected.get(kind):
            root = introspected[kind]["name"]
            found |= {(root, f["name"]) for f in types[root]["fields"]}
    return found


def declared_permissions(root: str, name: str) -> list[type]:
    graphql_field = schema._schema.get_type(root).fields[name]
    return list(graphql_field.extensions["strawberry-definition"].permission_classes)


def test_role_table_covers_every_root_field() -> None:
    fields = root_fields()
    assert len(fields) >= 6
    missing = sorted(fields - ROLE_TABLE.keys())
    stale = sorted(ROLE_TABLE.keys() - fields)
    assert not missing, f"add these root fields to ROLE_TABLE in {__file__}: {missing}"
    assert not stale, f"ROLE_TABLE names fields the schema no longer has: {stale}"


@pytest.mark.parametrize(("root", "name"), sorted(root_fields()))
def test_every_root_field_declares_exactly_one_permission(root: str, name: str) -> None:
    permissions = declared_permissions(root, name)
    assert len(permissions) == 1, f"{root}.{name} must declare exactly one permission class, has {permissions}"
    required = getattr(permissions[0], "required_role", None)
    assert required is not None, f"{root}.{name}: use resolvers.permissions (VIEWER, MANAGER, PUBLISHER, ADMIN)"
    if (root, name) in ROLE_TABLE:
        assert required == ROLE_TABLE[(root, name)].lowest_role


def _is_forbidden(errors: list[dict[str, Any]] | None) -> bool:
    return bool(errors) and all(e.get("extensions", {}).get("code") == "FORBIDDEN" for e in errors)


async def _http_outcome(server: RunningServer, key: str, case: Case) -> tuple[bool, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            server.graphql_url,
            json={"query": case.operation, "variables": case.variables},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    if _is_forbidden(body.get("errors")):
        return False, body
    forbidden = [e for e in body.get("errors", []) if e.get("extensions", {}).get("code") == "FORBIDDEN"]
    assert not forbidden, body
    return True, body


async def _subscription_outcome(server: RunningServer, key: str, admin_key: str, case: Case) -> tuple[bool, Any]:
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": case.operation, "variables": case.variables}
        answer = await subscribe(server, ws, {"id": "s", "type": "subscribe", "payload": payload})
        if answer is not None or case.trigger is None:
            # Refused before listening; or a subscription on an id of nothing: allowed callers see it complete,
            # others get FORBIDDEN.
            message = answer if answer is not None else json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            if message["type"] == "complete":
                return True, message
            errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
            return (not _is_forbidden(errors)), message

        async with httpx.AsyncClient(timeout=10) as http:
            await http.post(
                server.graphql_url, json={"query": case.trigger}, headers={"Authorization": f"Bearer {admin_key}"}
            )
        await server.drain_jobs()  # a trigger may only enqueue the job that publishes (workerPing)
        message = json.loads(await ws.recv())
    errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
    if _is_forbidden(errors):
        return False, message
    assert message["type"] == "next" and not errors, message
    return True, message


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@pytest.mark.parametrize(("root", "name"), sorted(ROLE_TABLE), ids=lambda v: v)
async def test_each_role_is_allowed_or_refused_as_the_table_says(
    server: RunningServer, sandbox: SandboxKeys, root: str, name: str, role: Role
) -> None:
    case = ROLE_TABLE[(root, name)]
    key = sandbox.keys[role]
    if root == "Subscription":
        allowed, evidence = await _subscription_outcome(server, key, sandbox.admin, case)
    else:
        allowed, evidence = await _http_outcome(server, key, case)
    assert allowed == role.allows(case.lowest_role), evidence
