"""Planned field execution (resolvers/execution_context.py) answers exactly as strawberry's and graphql-core's own:
the same data and the same errors (message, path, locations, extensions, in the same order), for the shapes it
completes itself and for every case it hands back to graphql-core."""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import pytest
import strawberry
from graphql import GraphQLObjectType

from api.auth import authenticate
from resolvers.context import Context, GraphQLLimits
from resolvers.execution_plan import Complete, Resolve, strawberry_made_is_type_of
from resolvers.schema import HeraldSchema, SchemaOptions, build_schema
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import CAMPAIGN_FIELDS, active_in_app_preset, audience, create, ready_input

# ---- a schema made to hit every branch ---------------------------------------------------------------------


@strawberry.enum
class Mood(enum.Enum):
    GLAD = "glad"
    SAD = "sad"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Problem:
    reason: str


@strawberry.type
class Item(Named):
    tags: list[str]
    note: str | None = None
    score: int = 0
    mood: Mood = Mood.GLAD
    child: Item | None = None
    kids: list[Item] = strawberry.field(default_factory=list)
    maybe_kids: list[Item | None] = strawberry.field(default_factory=list)
    odd: Any = strawberry.field(default=None, graphql_type=int | None)  # type: ignore[misc]

    @strawberry.field
    def upper(self, info: strawberry.Info) -> str:
        return f"{self.name.upper()}@{'.'.join(str(p) for p in info.path.as_list())}"

    @strawberry.field
    def parent(self) -> Item | None:
        return self.child

    @strawberry.field
    def boom(self) -> str:
        raise ValueError(f"boom in {self.name}")

    @strawberry.field
    def maybe_boom(self) -> str | None:
        raise ValueError(f"maybe boom in {self.name}")

    @strawberry.field
    def returned_error(self) -> str | None:
        return ValueError("returned, not raised")  # type: ignore[return-value]

    @strawberry.field
    def not_an_item(self) -> Item | None:
        return Problem(reason="wrong type")  # type: ignore[return-value]

    @strawberry.field
    def strict_kids(self) -> list[Item]:
        return [*self.kids, None]  # type: ignore[list-item]

    @strawberry.field
    def not_a_list(self) -> list[Item] | None:
        return 42  # type: ignore[return-value]

    @strawberry.field
    async def later(self) -> Item:
        await asyncio.sleep(0)
        return Item(name=f"later {self.name}", tags=["l"])

    @strawberry.field
    def later_kids(self) -> list[Item | None]:
        async def one(i: int) -> Item | None:
            await asyncio.sleep(0)
            return Item(name=f"async kid {i}", tags=[]) if i else None

        return [one(0), one(1), Item(name="sync kid", tags=[])]  # type: ignore[list-item]

    @strawberry.field
    def greet(self, greeting: str = "hello") -> str:
        return f"{greeting} {self.name}"

    @strawberry.field
    def outcome(self) -> Item | Problem:
        return Problem(reason="no") if self.score < 0 else self

    @strawberry.field
    def named(self) -> Named:
        return self

    # Leaves through resolvers without info, plain and odd: serialized on the spot or by graphql-core.
    @strawberry.field
    def big(self) -> int:
        return 2**40

    @strawberry.field
    def half(self) -> int:
        return 2.5  # type: ignore[return-value]

    @strawberry.field
    def flag(self) -> bool:
        return 1  # type: ignore[return-value]

    @strawberry.field
    def mood_now(self) -> Mood:
        return self.mood

    @strawberry.field
    def bad_mood(self) -> Mood | None:
        return "nope"  # type: ignore[return-value]

    @strawberry.field
    async def later_name(self) -> str:
        await asyncio.sleep(0)
        return f"later {self.name}"


def _tree() -> Item:
    grandchild = Item(name="grandchild", tags=["g"], score=3)
    kids = [Item(name="k1", tags=["a"], child=grandchild), Item(name="k2", tags=[], score=-1, mood=Mood.SAD)]
    return Item(
        name="root",
        tags=["x", "y"],
        note="n",
        score=7,
        child=kids[0],
        kids=kids,
        maybe_kids=[kids[1], None],
        odd="not a number",
    )


@strawberry.type
class Query:
    @strawberry.field
    def item(self) -> Item:
        return _tree()

    @strawberry.field
    def items(self) -> list[Item | None]:
        return [_tree(), None, Item(name=None, tags=[]), Item(name="bad tags", tags=["ok", None])]  # type: ignore[arg-type,list-item]

    @strawberry.field
    def strict_items(self) -> list[Item]:
        return [_tree(), Item(name=None, tags=[])]  # type: ignore[arg-type]

    @strawberry.field
    async def async_item(self) -> Item | None:
        return _tree()


PLANNED = HeraldSchema(query=Query)
PLAIN = strawberry.Schema(query=Query)

ITEM_FIELDS = "name tags note score mood upper __typename"
QUERIES: list[tuple[str, dict[str, Any] | None]] = [
    (f"{{ item {{ {ITEM_FIELDS} child {{ name child {{ name }} }} kids {{ name score kids {{ name }} }} }} }}", None),
    (f"{{ items {{ {ITEM_FIELDS} }} }}", None),  # a null item, a null in a non-null field, a null in list[str!]
    ("{ strictItems { name } }", None),  # the null propagates through the non-null list to the root
    ("{ item { maybeKids { name } strictKids { name } } }", None),
    ("{ item { boom } }", None),
    ("{ item { maybeBoom returnedError kids { maybeBoom } } }", None),
    ("{ item { kids { boom } } }", None),
    ("{ item { notAnItem { name } notAList { name } } }", None),
    ("{ item { odd } }", None),  # coercion fails
    ("{ item { later { name later { name } } laterKids { name } } }", None),
    ("{ asyncItem { name kids { later { name upper } boom } } }", None),
    ('{ item { greet hi: greet(greeting: "hi") } }', None),
    (
        "{ item { kids { outcome { __typename ... on Item { name } ... on Problem { reason } } named { name "
        "... on Item { score } } } } }",
        None,
    ),
    (
        "query($s: Boolean!, $i: Boolean!) { item { a: name b: name @skip(if: $s) ... on Item @include(if: $i) "
        "{ score } kids { ...K } } } fragment K on Item { name tags @include(if: $i) child { ...K2 } } "
        "fragment K2 on Named { name ... on Item { note } }",
        {"s": True, "i": False},
    ),
    (
        "query($s: Boolean!, $i: Boolean!) { item { a: name b: name @skip(if: $s) ... on Item @include(if: $i) "
        "{ score } kids { ...K } } } fragment K on Item { name tags @include(if: $i) child { ...K2 } } "
        "fragment K2 on Named { name ... on Item { note } }",
        {"s": False, "i": True},
    ),
    ("{ item { kids { name } kids { score child { name } } k: kids { parent { name } } } }", None),
    ("{ __typename item { __typename parent { __typename } } }", None),
    ("{ item { moodNow laterName kids { moodNow laterName flag } } }", None),
    ("{ item { big } }", None),
    ("{ item { half } }", None),
    ("{ items { badMood } }", None),
]


def _shape(result: Any) -> tuple[Any, list[dict[str, Any]]]:
    return result.data, [error.formatted for error in result.errors or []]


@pytest.mark.parametrize(("query", "variables"), QUERIES)
async def test_planned_execution_answers_as_graphql_core(query: str, variables: dict[str, Any] | None) -> None:
    planned, plain = await PLANNED.execute(query, variables), await PLAIN.execute(query, variables)
    assert _shape(planned) == _shape(plain)


@pytest.mark.parametrize(("query", "variables"), [q for q in QUERIES if "later" not in q[0] and "async" not in q[0]])
def test_planned_execution_answers_as_graphql_core_synchronously(query: str, variables: dict[str, Any] | None) -> None:
    planned, plain = PLANNED.execute_sync(query, variables), PLAIN.execute_sync(query, variables)
    assert _shape(planned) == _shape(plain)


def test_the_common_fields_are_planned() -> None:
    """The plan covers what the read path needs; were strawberry to change these, the comparisons above still
    hold but the page would quietly take the slow path."""
    gql_schema = PLANNED._schema
    plans = PLANNED.execution_context_class.field_plans  # type: ignore[attr-defined]
    item = gql_schema.type_map["Item"]
    assert isinstance(item, GraphQLObjectType) and strawberry_made_is_type_of(item)

    def plan(name: str) -> Any:
        return plans[id(item.fields[name])]

    assert (plan("name").resolve, plan("name").complete) == (Resolve.ATTRIBUTE, Complete.LEAF)
    assert (plan("tags").resolve, plan("tags").complete) == (Resolve.ATTRIBUTE, Complete.LEAF_LIST)
    assert (plan("kids").resolve, plan("kids").complete) == (Resolve.ATTRIBUTE, Complete.OBJECT_LIST)
    assert (plan("parent").resolve, plan("parent").complete) == (Resolve.DIRECT, Complete.OBJECT)
    assert (plan("upper").resolve, plan("upper").complete) == (Resolve.DIRECT_WITH_INFO, Complete.LEAF)
    assert plan("greet").resolve == Resolve.GENERIC
    assert plan("outcome").complete == Complete.GENERIC


# ---- Herald's schema, against its data -----------------------------------------------------------------------

BENCH_PAGE_FIELDS = (
    "id name status channel tags updatedAt preset { name } segment { name } "
    "summary { profilesTargeted actionsDelivered actionsFailed excluded }"
)
BENCH_PAGE = (
    "query CampaignPage { campaigns(first: 20) { edges { node { id name status channel tags updatedAt "
    "preset { name } segment { name } "
    "summary { profilesTargeted actionsDelivered actionsFailed excluded } } } "
    "pageInfo { hasNextPage endCursor } } }"
)
PAGE = (
    "query($first: Int, $withSummary: Boolean!) { campaigns(first: $first) { __typename totalCount "
    "edges { cursor node { ...C summary @include(if: $withSummary) { excluded } } } "
    "nodes { ... on Campaign { ...C } again: name } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"
    + CAMPAIGN_FIELDS
)
NODE = (
    "query($id: ID!) { node(id: $id) { __typename id ... on Campaign { ...C } ... on MessagePreset { name } } "
    'missing: node(id: "bm90aGluZw==") { id } }' + CAMPAIGN_FIELDS
)
# One campaign by id: one statement with planned execution (resolvers/campaigns/reads.py), the whole row and a
# loader per relation without it.
ONE = (
    "query($id: ID!, $other: ID!) { campaign(id: $id) { ...C createdAt description type category throttle "
    "tracking { opens clicks } activatedAt stoppedAt } bench: campaign(id: $id) { "
    + BENCH_PAGE_FIELDS
    + " } named: node(id: $id) { ...C } inline: node(id: $id) { id ... on Campaign { name summary { audience } } "
    '... on MessagePreset { name channel } } wrong: campaign(id: $other) { id } bad: campaign(id: "x") { id } '
    'gone: campaign(id: "Q2FtcGFpZ246OTk5OTk5") { id } }' + CAMPAIGN_FIELDS
)
ARCHIVE_MISSING = (
    "mutation($input: CampaignIdInput!) { campaignArchive(input: $input) { __typename "
    "... on NotFoundError { message id } ... on Error { message } } }"
)


async def test_herald_schema_answers_as_plain_execution(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=1)
    created = [await create(gql, sandbox, ready_input(preset_id, segment_id, name=f"Ready {i}")) for i in range(3)]
    bare = await create(gql, sandbox, {"name": "Bare", "tags": ["x", "y"]})
    caller = await authenticate(sandbox.admin)
    assert caller is not None
    planned = build_schema()
    plain = build_schema(SchemaOptions(planned_execution=False))
    cases: list[tuple[str, dict[str, Any]]] = [
        (BENCH_PAGE, {}),
        (PAGE, {"first": 10, "withSummary": True}),
        (PAGE, {"first": 2, "withSummary": False}),
        (NODE, {"id": created[0]["id"]}),
        (NODE, {"id": preset_id}),
        (ONE, {"id": created[0]["id"], "other": preset_id}),
        (ONE, {"id": bare["id"], "other": created[1]["id"]}),
        (ARCHIVE_MISSING, {"input": {"id": preset_id}}),  # a preset's id where a campaign's is expected
    ]
    for query, variables in cases:
        results = []
        for schema in (planned, plain):
            context = Context(caller=caller, queue=None, events=None, limits=GraphQLLimits())
            results.append(_shape(await schema.execute(query, variables, context_value=context)))
        assert results[0] == results[1], query
        assert results[0][0], query  # data, not only errors
