"""The fast read path (DESIGN §10) answers exactly as the general one: prefetched list pages, plain-field
completion in resolvers/execution_context.py, direct resolvers, WebSocket text frames."""

from __future__ import annotations

import json
from typing import Any

import strawberry
import websockets
from graphql import execute, parse

from resolvers.pagination import selected_node_fields
from resolvers.schema import HeraldSchema
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import CAMPAIGN_FIELDS, active_in_app_preset, audience, create, ready_input

PAGE = "query { campaigns(first: 10) { edges { node { ...C } } nodes { ... on Campaign { ...C } } } }" + CAMPAIGN_FIELDS
ONE = "query($id: ID!) { campaign(id: $id) { ...C } }" + CAMPAIGN_FIELDS


async def test_a_page_answers_as_each_campaign_does_alone(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=1)
    for i in range(3):
        await create(gql, sandbox, ready_input(preset_id, segment_id, name=f"Ready {i}"))
    await create(gql, sandbox, {"name": "Bare", "tags": ["x", "y"]})  # no preset, segment or namespace

    page = (await gql(PAGE, key=sandbox.admin))["campaigns"]
    nodes = [edge["node"] for edge in page["edges"]]
    assert len(nodes) == 4 and page["nodes"] == nodes
    assert {n["preset"]["name"] if n["preset"] else None for n in nodes} == {"inbox", None}
    for node in nodes:
        alone = (await gql(ONE, {"id": node["id"]}, key=sandbox.admin))["campaign"]
        assert alone == node


@strawberry.type
class Item:
    name: str
    tags: list[str]
    note: str | None = None


@strawberry.type
class Query:
    @strawberry.field
    def item(self, name: str | None = "a", tags: list[str | None] | None = None) -> Item:
        return Item(name=name, tags=tags if tags is not None else ["x"])  # type: ignore[arg-type]

    @strawberry.field
    def items(self) -> list[Item | None]:
        return [Item(name="a", tags=[]), Item(name=None, tags=[]), Item(name="c", tags=[None])]  # type: ignore[arg-type]


def _both(query: str) -> tuple[Any, Any]:
    fast = HeraldSchema(query=Query).execute_sync(query)
    plain = strawberry.Schema(query=Query).execute_sync(query)
    return fast, plain


def _shape(result: Any) -> tuple[Any, list[tuple[str, list[Any]]]]:
    return result.data, sorted((e.message, e.path) for e in result.errors or [])


def test_plain_fields_complete_and_fail_as_graphql_core_does() -> None:
    for query in (
        '{ item(name: "n", tags: ["p", "q"]) { name tags note } }',
        "{ item(name: null) { name } }",  # null in a non-null field: the error propagates to `item`
        '{ item(tags: ["p", null]) { tags } }',  # null item in a list of non-null items
        "{ items { name tags note } }",
    ):
        fast, plain = _both(query)
        assert _shape(fast) == _shape(plain), query
    fast, _ = _both("{ item(name: null) { name } }")
    assert fast.errors[0].message == "Cannot return null for non-nullable field Item.name."


SEEN_SELECTIONS: list[frozenset[str]] = []


@strawberry.type
class Page:
    edges: list[str]


@strawberry.type
class PageQuery:
    @strawberry.field
    def page(self, info: strawberry.Info) -> Page | None:
        SEEN_SELECTIONS.append(selected_node_fields(info))
        return None


def test_selected_node_fields_sees_through_fragments() -> None:
    # Only the selection is read: a raw document, executed without validation, is enough.
    document = parse(
        "{ page { edges { node { a ...F } } nodes { ... on X { b } } pageInfo { c } } } fragment F on X { d }"
    )
    SEEN_SELECTIONS.clear()
    execute(strawberry.Schema(query=PageQuery)._schema, document)
    assert SEEN_SELECTIONS == [frozenset({"a", "b", "d"})]


async def test_subscription_messages_are_text_frames(server: RunningServer, sandbox: SandboxKeys) -> None:
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox.admin}"}}))
        ack = await ws.recv()
        assert isinstance(ack, str), "graphql-ws clients in browsers cannot parse binary frames"
        assert json.loads(ack)["type"] == "connection_ack"
