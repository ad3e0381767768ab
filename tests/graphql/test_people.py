"""People signing in with OpenID Connect against a real identity provider (npm oidc-provider, tests/oidc): valid
tokens, wrong audience, expiry, key rotation, no membership, the roles claim, the sandbox choice, WebSocket
connection_init; memberships managed by ADMINs and audited."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import jwt
import pytest
import websockets

from api.oidc import OidcVerifier
from models.tenancy.actions import create_sandbox
from models.tenancy.sandbox import Sandbox
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys, new_sandbox
from tests.oidc.provider import CLAIMED_SANDBOX, OTHER_RESOURCE, IdentityProvider

WHO = "{ viewer { role sandbox { name } } me { sub email name role actor } }"
SET_ROLE = """mutation($input: UserMembershipSetInput!) { userMembershipSet(input: $input) {
  __typename ... on UserMembershipSetSuccess { user { id sub role } }
  ... on InvalidInputError { fieldErrors { field code } } } }"""
REMOVE = """mutation($id: ID!) { userMembershipRemove(input: {id: $id}) {
  __typename ... on UserMembershipRemoveSuccess { removedId } } }"""
USERS = "{ users { sub email role } }"
CREATE = """mutation { campaignCreate(input: {name: "By a person"}) {
  __typename ... on CampaignSuccess { campaign { id } } } }"""
AUDIT = "query($type: String) { auditEvents(first: 20, objectType: $type) { edges { node { actor action after } } } }"


async def as_person(
    gql: GraphQLClient, token: str, query: str, variables: dict[str, Any] | None = None, sandbox: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if sandbox:
        headers["X-Herald-Sandbox"] = sandbox
    return await gql.http.post(gql.url, json={"query": query, "variables": variables or {}}, headers=headers)


async def member(gql: GraphQLClient, sandbox: SandboxKeys, sub: str, role: str) -> dict[str, Any]:
    result = (await gql(SET_ROLE, {"input": {"sub": sub, "role": role}}, key=sandbox.admin))["userMembershipSet"]
    assert result["__typename"] == "UserMembershipSetSuccess", result
    return result["user"]


async def test_a_member_signs_in_and_audit_events_name_the_person(
    gql: GraphQLClient,
    sandbox: SandboxKeys,
    oidc_provider: IdentityProvider,
    people: OidcVerifier,
) -> None:
    await member(gql, sandbox, "alice", "MANAGER")
    token = await oidc_provider.token("alice")
    answer = await as_person(gql, token, WHO, sandbox=sandbox.name)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["viewer"] == {"role": "MANAGER", "sandbox": {"name": sandbox.name}}
    # Email and name come from the token's claims.
    assert data["me"] == {
        "sub": "alice",
        "email": "alice@example.com",
        "name": "Alice Author",
        "role": "MANAGER",
        "actor": "user:alice",
    }
    created = (await as_person(gql, token, CREATE, sandbox=sandbox.name)).json()["data"]["campaignCreate"]
    assert created["__typename"] == "CampaignSuccess"
    audit = await gql(AUDIT, {"type": "Campaign"}, key=sandbox.admin)
    assert [edge["node"]["actor"] for edge in audit["auditEvents"]["edges"]] == ["user:alice"]
    # An API key is still named as the key.
    keyed = await gql(AUDIT, {"type": "Membership"}, key=sandbox.admin)
    assert [edge["node"]["actor"].split(":")[0] for edge in keyed["auditEvents"]["edges"]] == ["apikey"]


async def test_wrong_audience_expired_token_and_no_membership_are_unauthenticated(
    gql: GraphQLClient,
    sandbox: SandboxKeys,
    oidc_provider: IdentityProvider,
    people: OidcVerifier,
) -> None:
    await member(gql, sandbox, "alice", "VIEWER")
    await member(gql, sandbox, "brief", "VIEWER")
    other_audience = await oidc_provider.token("alice", OTHER_RESOURCE)
    assert jwt.decode(other_audience, options={"verify_signature": False})["aud"] == "other"
    refused = await as_person(gql, other_audience, WHO, sandbox=sandbox.name)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # No membership and no role in the roles claim: a valid token of a stranger is refused.
    stranger = await as_person(gql, await oidc_provider.token("stranger"), WHO, sandbox=sandbox.name)
    assert stranger.status_code == 401

    # `brief` tokens live three seconds (2-3 s: `iat` is a whole second): accepted, then refused once `exp` has passed.
    brief = await oidc_provider.token("brief")
    expires = jwt.decode(brief, options={"verify_signature": False})["exp"]
    assert (await as_person(gql, brief, WHO, sandbox=sandbox.name)).status_code == 200
    await asyncio.sleep(max(0.0, expires + 1 - time.time()))  # until `exp` (in the token) has passed
    assert (await as_person(gql, brief, WHO, sandbox=sandbox.name)).status_code == 401

    # A token signed by someone else (right claims, wrong key) is refused.
    claims = jwt.decode(brief, options={"verify_signature": False}) | {"exp": int(time.time()) + 600}
    from cryptography.hazmat.primitives.asymmetric import rsa

    forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = jwt.get_unverified_header(brief)
    forged = jwt.encode(claims, forged_key, algorithm="RS256", headers={"kid": header["kid"]})
    assert (await as_person(gql, forged, WHO, sandbox=sandbox.name)).status_code == 401


async def test_a_rotated_signing_key_is_fetched_when_a_token_names_it(
    gql: GraphQLClient,
    sandbox: SandboxKeys,
    oidc_provider: IdentityProvider,
    people: OidcVerifier,
) -> None:
    await member(gql, sandbox, "dave", "VIEWER")
    before = await oidc_provider.token("dave")
    assert (await as_person(gql, before, WHO, sandbox=sandbox.name)).status_code == 200
    fetches = people.fetches
    new_kid = await oidc_provider.rotate()
    after = await oidc_provider.token("dave")
    assert jwt.get_unverified_header(after)["kid"] == new_kid != jwt.get_unverified_header(before)["kid"]
    answer = await as_person(gql, after, WHO, sandbox=sandbox.name)
    assert answer.status_code == 200, answer.text
    assert people.fetches == fetches + 1  # the unknown key id made Herald fetch the key set once
    # The old key is still published: tokens signed before the rotation stay valid until they expire.
    assert (await as_person(gql, before, WHO, sandbox=sandbox.name)).status_code == 200
    assert people.fetches == fetches + 1


async def test_the_roles_claim_grants_a_role_without_a_membership(
    gql: GraphQLClient,
    oidc_provider: IdentityProvider,
    people: OidcVerifier,
) -> None:
    if not await Sandbox.filter(name=CLAIMED_SANDBOX).exists():
        await create_sandbox(CLAIMED_SANDBOX, actor="test")
    answer = await as_person(gql, await oidc_provider.token("gina"), WHO)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["viewer"] == {"role": "PUBLISHER", "sandbox": {"name": CLAIMED_SANDBOX}}
    assert data["me"]["role"] is None  # no membership: the claim alone


async def test_a_member_of_several_sandboxes_names_one_and_removal_takes_effect(
    gql: GraphQLClient,
    sandbox: SandboxKeys,
    oidc_provider: IdentityProvider,
    people: OidcVerifier,
) -> None:
    other = await new_sandbox("carols")
    user = await member(gql, sandbox, "carol", "PUBLISHER")
    await member(gql, other, "carol", "VIEWER")
    token = await oidc_provider.token("carol")
    assert (await as_person(gql, token, WHO)).status_code == 401  # which sandbox?
    here = (await as_person(gql, token, WHO, sandbox=sandbox.name)).json()["data"]["viewer"]
    there = (await as_person(gql, token, WHO, sandbox=other.name)).json()["data"]["viewer"]
    assert (here["role"], there["role"]) == ("PUBLISHER", "VIEWER")
    assert (await as_person(gql, token, WHO, sandbox="no-such-sandbox")).status_code == 401

    members = await gql(USERS, key=sandbox.admin)
    assert {"sub": "carol", "email": "carol@example.com", "role": "PUBLISHER"} in members["users"]
    removed = (await gql(REMOVE, {"id": user["id"]}, key=sandbox.admin))["userMembershipRemove"]
    assert removed["__typename"] == "UserMembershipRemoveSuccess"
    assert (await as_person(gql, token, WHO, sandbox=sandbox.name)).status_code == 401
    assert (await as_person(gql, token, WHO, sandbox=other.name)).status_code == 200
    # Another sandbox's ADMIN cannot remove carol from this one (not found there).
    again = (await gql(REMOVE, {"id": user["id"]}, key=sandbox.admin))["userMembershipRemove"]
    assert again["__typename"] == "NotFoundError"
    audit = await gql(AUDIT, {"type": "Membership"}, key=sandbox.admin)
    assert [edge["node"]["action"] for edge in audit["auditEvents"]["edges"]] == ["DELETE", "CREATE"]


async def test_membership_input_is_checked(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    refused = (await gql(SET_ROLE, {"input": {"sub": " ", "role": "ADMIN"}}, key=sandbox.admin))["userMembershipSet"]
    assert refused == {"__typename": "InvalidInputError", "fieldErrors": [{"field": "input.sub", "code": "INVALID"}]}
    long_email = {"sub": "someone", "role": "ADMIN", "email": "a" * 320 + "@x.com"}
    refused = (await gql(SET_ROLE, {"input": long_email}, key=sandbox.admin))["userMembershipSet"]
    assert refused["fieldErrors"] == [{"field": "input.email", "code": "TOO_LONG"}]


async def test_websocket_connection_init_accepts_a_persons_token(
    server: RunningServer,
    sandbox: SandboxKeys,
    gql: GraphQLClient,
    oidc_provider: IdentityProvider,
    people: OidcVerifier,
) -> None:
    await member(gql, sandbox, "alice", "MANAGER")
    token = await oidc_provider.token("alice")
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"Authorization": f"Bearer {token}", "sandbox": sandbox.name}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": WHO}}))
        answer = json.loads(await ws.recv())
        assert answer["type"] == "next", answer
        assert answer["payload"]["data"]["me"]["sub"] == "alice"
    wrong = await oidc_provider.token("alice", OTHER_RESOURCE)
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {wrong}"}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4401
