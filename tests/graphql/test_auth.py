"""Authentication over HTTP and WebSocket, and sandbox isolation of the foundation fields."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from api import auth
from models.tenancy.actions import revoke_api_key
from models.tenancy.sandbox import ApiKey, hash_api_key
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.sql_counter import count_sql

VIEWER_QUERY = "query { viewer { sandbox { name } role } }"


async def test_valid_key_sees_its_sandbox_and_role(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    for role, key in sandbox.keys.items():
        data = await gql(VIEWER_QUERY, key=key)
        assert data["viewer"] == {"sandbox": {"name": sandbox.name}, "role": role.value}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer hrld_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer", "hrld_without_scheme"],
)
async def test_missing_or_wrong_key_is_401_without_data(server: RunningServer, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with httpx.AsyncClient() as http:
        response = await http.post(server.graphql_url, json={"query": VIEWER_QUERY}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_revoked_key_is_refused(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    key = sandbox.keys[next(iter(sandbox.keys))]
    await gql(VIEWER_QUERY, key=key)
    stored = await ApiKey.get(key_hash=hash_api_key(key))
    await revoke_api_key(stored.id, actor="test")

    response = await gql.raw(VIEWER_QUERY, key=key)

    assert response.status_code == 401
    assert "data" not in response.json()


async def test_requests_arriving_together_with_one_key_share_its_lookup(sandbox: SandboxKeys) -> None:
    """With the key cache on, a key not cached yet is looked up once for all the requests waiting on it (a
    server's 32 connections of one key sent 32 lookups each time its entry expired)."""
    digest = hash_api_key(sandbox.admin)
    auth._CACHE.pop(digest, None)
    with count_sql() as alone:
        expected = await auth.authenticate(sandbox.admin, cache_seconds=5)
    auth._CACHE.pop(digest, None)
    with count_sql() as together:
        callers = await asyncio.gather(*(auth.authenticate(sandbox.admin, cache_seconds=5) for _ in range(8)))
    assert expected is not None and callers == [expected] * 8
    assert len(together) == len(alone) >= 1
    assert not auth._LOOKUPS  # nothing left behind once the lookup is over


async def test_key_is_stored_hashed_only(sandbox: SandboxKeys) -> None:
    stored = await ApiKey.get(key_hash=hash_api_key(sandbox.admin))
    assert sandbox.admin not in {stored.key_hash, stored.display_prefix, stored.name}
    assert len(stored.key_hash) == 64


async def _ws_close_code(url: str, protocol: str, init_payload: dict | None) -> int:
    async with websockets.connect(url, subprotocols=[protocol]) as ws:
        message = {"type": "connection_init"}
        if init_payload is not None:
            message["payload"] = init_payload
        await ws.send(json.dumps(message))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.recv()
        return closed.value.rcvd.code


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize("payload", [None, {}, {"Authorization": "Bearer hrld_wrong"}, {"apiKey": "nope"}])
async def test_websocket_without_valid_key_closes_4401(server: RunningServer, protocol: str, payload) -> None:
    assert await _ws_close_code(server.ws_url, protocol, payload) == 4401


async def test_websocket_with_key_is_acknowledged(server: RunningServer, sandbox: SandboxKeys) -> None:
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox.admin}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": VIEWER_QUERY}}))
        reply = json.loads(await ws.recv())
        assert reply["payload"]["data"]["viewer"]["sandbox"]["name"] == sandbox.name


async def test_audit_events_and_nodes_do_not_cross_sandboxes(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    query = "query { auditEvents(first: 50) { totalCount edges { node { id objectType } } } }"
    mine = (await gql(query, key=sandbox.admin))["auditEvents"]
    theirs = (await gql(query, key=other_sandbox.admin))["auditEvents"]
    my_ids = {edge["node"]["id"] for edge in mine["edges"]}
    their_ids = {edge["node"]["id"] for edge in theirs["edges"]}
    assert my_ids and their_ids and not (my_ids & their_ids)
    # Sandbox creation + four keys, each audited.
    assert mine["totalCount"] == 5

    node_query = "query($id: ID!) { node(id: $id) { id ... on AuditEvent { objectType } } }"
    for foreign_id in their_ids:
        assert (await gql(node_query, {"id": foreign_id}, key=sandbox.admin))["node"] is None
    own_id = next(iter(my_ids))
    assert (await gql(node_query, {"id": own_id}, key=sandbox.admin))["node"]["id"] == own_id


@pytest.mark.parametrize("bad_id", ["", "garbage", "QXVkaXRFdmVudDotMQ==", "Tm9wZToxMjM=", "QXVkaXRFdmVudDp4"])
async def test_malformed_node_ids_read_as_null(gql: GraphQLClient, sandbox: SandboxKeys, bad_id: str) -> None:
    data = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": bad_id}, key=sandbox.admin)
    assert data["node"] is None


async def test_identity_namespaces_are_the_standard_set(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    data = await gql("query { identityNamespaces { code type standard } }", key=sandbox.keys[next(iter(sandbox.keys))])
    codes = {item["code"] for item in data["identityNamespaces"]}
    assert codes == {"Email", "Phone", "ECID", "CRMID", "FCM", "APNS"}
    assert all(item["standard"] for item in data["identityNamespaces"])
