"""The fast read path (DESIGN §10) answers exactly as the general one: prefetched list pages, plain-field
completion in resolvers/execution_context.py, direct resolvers, WebSocket text frames."""

from __future__ import annotations

import json
from typing import Any

import pytest
import strawberry
import websockets
from graphql import execute, get_named_type, is_leaf_type, is_non_null_type, is_object_type, parse

from api.settings import Settings
from resolvers.audience.types import Segment
from resolvers.campaigns.types import Campaign
from resolvers.pagination import selected_node_fields
from resolvers.presets.types import MessagePreset
from resolvers.schema import HeraldSchema, build_schema
from resolvers.selection import selected_object_tree
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import CAMPAIGN_FIELDS, active_in_app_preset, audience, create, ready_input
from tests.sql_counter import count_sql

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


def _selection(type_: Any, depth: int = 2) -> str:
    """Every argument-free field of an object type: leaves as they are, objects `depth` levels down, unions and
    interfaces by `__typename`."""
    named = get_named_type(type_)
    if is_leaf_type(named):
        return ""
    if not is_object_type(named):
        return "__typename"
    parts = []
    for name, field in named.fields.items():
        if any(is_non_null_type(arg.type) for arg in field.args.values()):
            continue
        inner = get_named_type(field.type)
        if is_leaf_type(inner):
            parts.append(name)
        elif depth > 0 and (sub := _selection(inner, depth - 1)):
            parts.append(f"{name} {{ {sub} }}")
    return " ".join(parts)


async def test_each_field_reads_what_it_needs_on_a_page(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    """A list page reads only the columns its selected fields need (resolvers/projection.py): each field of a
    campaign, and of its preset and segment, alone on a page answers as the campaign read whole does."""
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=1)
    await create(gql, sandbox, ready_input(preset_id, segment_id, name="Ready"))
    await create(gql, sandbox, {"name": "Bare", "description": "About it", "tags": ["x", "y"]})
    types = build_schema()._schema.type_map
    assert {*types["Campaign"].fields, "__typename"} >= set(Campaign.projection.reads)
    assert set(types["Campaign"].fields) <= set(Campaign.projection.reads), "a Campaign field the projection misses"
    selections = [(name, field) for name, field in types["Campaign"].fields.items()]
    for relation, type_name, projection in (
        ("preset", "MessagePreset", MessagePreset.projection),
        ("segment", "Segment", Segment.projection),
    ):
        assert set(projection.reads) <= set(types[type_name].fields), f"{type_name}: projection of unknown fields"
        selections += [(f"{relation} {{ id {name}", field) for name, field in types[type_name].fields.items()]
    for name, field in selections:
        if any(is_non_null_type(arg.type) for arg in field.args.values()):
            continue
        sub = _selection(field.type)
        selection = f"{name} {{ {sub} }}" if sub else name
        if selection.count("{") > selection.count("}"):  # a field under a relation: close the relation
            selection += " }"
        page = await gql(f"query {{ campaigns(first: 10) {{ nodes {{ id {selection} }} }} }}", key=sandbox.admin)
        nodes = page["campaigns"]["nodes"]
        assert len(nodes) == 2
        for node in nodes:
            alone = await gql(
                f"query($id: ID!) {{ campaign(id: $id) {{ id {selection} }} }}", {"id": node["id"]}, key=sandbox.admin
            )
            assert alone["campaign"] == node, selection


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
SEEN_TREES: list[dict[str, frozenset[str]]] = []


@strawberry.type
class Page:
    edges: list[str]


@strawberry.type
class PageQuery:
    @strawberry.field
    def page(self, info: strawberry.Info) -> Page | None:
        SEEN_SELECTIONS.append(selected_node_fields(info))
        return None

    @strawberry.field
    def one(self, info: strawberry.Info) -> Page | None:
        SEEN_TREES.append(selected_object_tree(info, "X"))
        return None


def test_selected_node_fields_sees_through_fragments() -> None:
    # Only the selection is read: a raw document, executed without validation, is enough.
    document = parse(
        "{ page { edges { node { a ...F } } nodes { ... on X { b } } pageInfo { c } } } fragment F on X { d }"
    )
    SEEN_SELECTIONS.clear()
    execute(strawberry.Schema(query=PageQuery)._schema, document)
    assert SEEN_SELECTIONS == [frozenset({"a", "b", "d"})]


def test_selected_object_tree_sees_through_fragments_of_its_type() -> None:
    document = parse(
        "{ one { a ...F b: c { d ...G } ... on X { e { f } } ... on Y { no } ...H } } "
        "fragment F on X { g { ... on Z { h } } } fragment G on W { i } fragment H on Y { nor }"
    )
    SEEN_TREES.clear()
    schema = strawberry.Schema(query=PageQuery)._schema
    execute(schema, document)
    execute(schema, document)  # the second time from the cache, the same
    expected = {"a": set(), "c": {"d", "i"}, "e": {"f"}, "g": {"h"}}
    assert SEEN_TREES == [{k: frozenset(v) for k, v in expected.items()}] * 2


async def test_subscription_messages_are_text_frames(server: RunningServer, sandbox: SandboxKeys) -> None:
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox.admin}"}}))
        ack = await ws.recv()
        assert isinstance(ack, str), "graphql-ws clients in browsers cannot parse binary frames"
        assert json.loads(ack)["type"] == "connection_ack"


BENCH_FIELDS = (
    "id name status channel tags updatedAt preset { name } segment { name } "
    "summary { profilesTargeted actionsDelivered actionsFailed excluded }"
)


@pytest.mark.skipif(
    not Settings().graphql_planned_execution, reason="stock execution reads the whole row and each relation apart"
)
async def test_one_campaign_by_id_or_node_is_one_statement(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    """`campaign(id:)` and `node(id:)` with the bench page's fields (relations and summary included) read the
    campaign in one statement, of only the columns the selection needs (resolvers/campaigns/reads.py)."""
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=1)
    created = await create(gql, sandbox, ready_input(preset_id, segment_id, name="Ready"))
    queries = {
        "campaign": f"query($id: ID!) {{ campaign(id: $id) {{ {BENCH_FIELDS} }} }}",
        "node": f"query($id: ID!) {{ node(id: $id) {{ ... on Campaign {{ {BENCH_FIELDS} }} }} }}",
    }
    await gql(queries["campaign"], {"id": created["id"]}, key=sandbox.admin)  # the key's lookup, cached after
    for name, query in queries.items():
        with count_sql() as statements:
            data = await gql(query, {"id": created["id"]}, key=sandbox.admin)
        assert data[name]["preset"]["name"] == "inbox" and data[name]["segment"]["name"], data
        assert set(data[name]["summary"].values()) == {0}  # no runs yet
        assert len(statements) == 1, (name, statements)
        assert '"content"' not in statements[0] and '"settings"' not in statements[0], statements[0]
