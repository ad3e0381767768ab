"""GraphQL limits and attack cases: each is refused clearly, before any resolver, in bounded time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from graphql import get_introspection_query

from api.app import create_app
from resolvers.limits import contains_nul
from resolvers.schema import SchemaOptions, build_schema
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys, make_settings

# Every rejection below must come back well within this (seconds, on a loaded 2-core CI machine).
BOUND = 3.0


async def _timed(gql: GraphQLClient, query: str, key: str, variables: dict | None = None) -> tuple[dict, float]:
    started = time.perf_counter()
    response = await gql.raw(query, variables, key=key)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return response.json(), elapsed


def _nested(levels: int) -> str:
    return "{ viewer { " + "sandbox { " * levels + "name" + " }" * (levels + 1) + " }"


@pytest.mark.parametrize(
    ("name", "query", "expected"),
    [
        ("nesting 20", _nested(20), "exceeds maximum operation depth of 12"),
        ("nesting 200", _nested(200), "nested too deeply"),
        ("nesting 5,000", _nested(5000), "nested too deeply"),
        ("1,000 aliases", "{ " + " ".join(f"a{i}: __typename" for i in range(1000)) + " }", "more than 3000 tokens"),
        ("40 aliases", "{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(40)) + " }", "aliases"),
        ("10,000 repeated fields", "{ viewer { " + "role " * 10_000 + "} }", "more than 3000 tokens"),
        ("100,000 directives", "{ viewer " + "@a " * 100_000 + "{ role } }", "more than 3000 tokens"),
        (
            "circular fragments",
            "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
            "Cannot spread fragment 'A' within itself via 'B'",
        ),
    ],
)
async def test_abusive_documents_are_refused_quickly(
    gql: GraphQLClient, sandbox: SandboxKeys, name: str, query: str, expected: str
) -> None:
    body, elapsed = await _timed(gql, query, sandbox.admin)
    assert body["data"] is None, name
    assert any(expected in error["message"] for error in body["errors"]), body["errors"][:2]
    assert elapsed < BOUND, f"{name} took {elapsed:.2f}s"


async def test_ten_megabyte_variables_get_413(server: RunningServer, sandbox: SandboxKeys) -> None:
    variables = {"blob": "x" * 10_000_000}
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            server.graphql_url,
            json={"query": "{ viewer { role } }", "variables": variables},
            headers={"Authorization": f"Bearer {sandbox.admin}"},
        )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert time.perf_counter() - started < BOUND


@pytest.mark.parametrize("first", [99_999_999, -1, 101])
async def test_huge_or_negative_first_is_refused_before_resolvers(
    gql: GraphQLClient, sandbox: SandboxKeys, first: int
) -> None:
    for query, variables in [
        (f"{{ auditEvents(first: {first}) {{ totalCount }} }}", None),
        ("query($f: Int) { auditEvents(first: $f) { totalCount } }", {"f": first}),
    ]:
        body, elapsed = await _timed(gql, query, sandbox.admin, variables)
        error = body["errors"][0]
        assert (
            error["extensions"]["code"] == "BAD_USER_INPUT" and "`first` must be between 0 and 100" in error["message"]
        )
        assert "path" not in error  # refused in validation, not by the resolver
        assert elapsed < BOUND


async def test_complexity_counts_page_sizes(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    page = "auditEvents(first: {n}) {{ edges {{ node {{ id actor action objectType objectId createdAt }} }} }}"
    # Each page costs 1 + n * (edges 1 + node 1 + 6 fields): 25 pages of 10 cost 2,025, of 100 cost 20,025.
    small = "{ " + " ".join(f"p{i}: " + page.format(n=10) for i in range(25)) + " }"
    large = "{ " + " ".join(f"p{i}: " + page.format(n=100) for i in range(25)) + " }"
    assert (await gql(small, key=sandbox.admin))["p0"]["edges"]
    body, elapsed = await _timed(gql, large, sandbox.admin)
    error = body["errors"][0]
    assert body["data"] is None and error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "complexity": 20_025, "limit": 20_000}
    assert elapsed < BOUND


async def test_the_standard_introspection_query_fits_the_complexity_limit(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    data = await gql(get_introspection_query(descriptions=True, directive_is_repeatable=True), key=sandbox.admin)
    assert data["__schema"]["queryType"]["name"] == "Query"


async def test_exponential_introspection_is_refused(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    query = "{ __schema { types { " + "fields { type { " * 6 + "name" + " } }" * 6 + " } } }"
    body, elapsed = await _timed(gql, query, sandbox.admin)
    # graphql-core's own rule refuses more than two nested `fields`; the complexity limit is the second fence.
    error = body["errors"][0]
    assert error["message"] == "Maximum introspection depth exceeded" or (
        error.get("extensions", {}).get("code") == "QUERY_TOO_COMPLEX"
    )
    assert elapsed < BOUND


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ('mutation { workerPing(input: {message: "a\\u0000b"}) { __typename } }', None),
        ("mutation($m: String!) { workerPing(input: {message: $m}) { __typename } }", {"m": "a\x00b"}),
        ("mutation($i: WorkerPingInput!) { workerPing(input: $i) { __typename } }", {"i": {"message": "\x00"}}),
        ("query($t: String) { auditEvents(objectType: $t) { totalCount } }", {"t": "x\x00"}),
        ('{ node(id: "QXVkaXRFdmVudDox\\u0000") { id } }', None),
    ],
)
async def test_strings_with_nul_bytes_are_bad_input_before_resolvers(
    gql: GraphQLClient, sandbox: SandboxKeys, query: str, variables: dict | None
) -> None:
    body, _ = await _timed(gql, query, sandbox.admin, variables)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "NUL" in body["errors"][0]["message"]


def test_nul_is_found_at_any_depth_of_a_json_value() -> None:
    deep: list = ["\x00"]
    for _ in range(100_000):
        deep = [deep]
    assert contains_nul({"a": [1, {"b": deep}]}) and contains_nul({"k\x00": 1})
    assert not contains_nul({"a": ["b", 1, None, {"c": "d"}]})


async def test_another_sandboxs_ids_read_as_null(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    theirs = await gql(
        "{ identityNamespaces { id } auditEvents(first: 5) { edges { node { id } } } }", key=other_sandbox.admin
    )
    ids = [n["id"] for n in theirs["identityNamespaces"]] + [e["node"]["id"] for e in theirs["auditEvents"]["edges"]]
    query = "query($id: ID!) { node(id: $id) { id } }"
    for foreign_id in ids:
        body, elapsed = await _timed(gql, query, sandbox.admin, {"id": foreign_id})
        assert body["data"] == {"node": None} and "errors" not in body and elapsed < BOUND


@pytest.fixture
async def locked_down(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """The app as production runs it (introspection, and with it field suggestions, off), served in-process on
    the session server's database: a second lifespan would close the ORM connections the session server uses."""
    app = create_app(make_settings(server.settings.database_url, graphql_introspection=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://locked") as http:
        yield http


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ viewer { rol } }", None),
        ("{ auditEvent { id } }", None),
        ("query($r: Rol) { viewer { role } }", None),
        ("{ auditEvents(frst: 1) { totalCount } }", None),
        ('mutation { workerPing(input: {mesage: "x"}) { __typename } }', None),
        ("mutation($i: WorkerPingInput!) { workerPing(input: $i) { __typename } }", {"i": {"mesage": "x"}}),
    ],
)
async def test_without_introspection_errors_suggest_no_names(
    locked_down: httpx.AsyncClient, sandbox: SandboxKeys, query: str, variables: dict | None
) -> None:
    client = GraphQLClient(locked_down, "/graphql")
    body = (await client.raw(query, variables, key=sandbox.admin)).json()
    introspection = (await client.raw("{ __schema { types { name } } }", key=sandbox.admin)).json()
    assert body["errors"]
    assert all("did you mean" not in error["message"].lower() for error in body["errors"]), body["errors"]
    assert "introspection has been disabled" in introspection["errors"][0]["message"]


async def test_with_introspection_on_suggestions_are_given(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    body = (await gql.raw("{ viewer { rol } }", key=sandbox.admin)).json()
    assert "Did you mean 'role'?" in body["errors"][0]["message"]


def test_validation_is_cached_per_document() -> None:
    schema = build_schema(SchemaOptions())
    hits_before = _validation_cache_info(schema).hits
    for _ in range(3):
        assert schema.execute_sync("{ __typename }").errors is None
    assert _validation_cache_info(schema).hits >= hits_before + 2


def _validation_cache_info(schema):
    limits = next(e for e in schema.extensions if getattr(e, "__name__", "") == "RequestLimits")
    return limits.validate_cached.cache_info()


async def test_deeply_nested_json_body_is_a_clear_400(server: RunningServer, sandbox: SandboxKeys) -> None:
    body = '{"query": "{ viewer { role } }", "variables": {"v": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            server.graphql_url,
            content=body,
            headers={"Authorization": f"Bearer {sandbox.admin}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert "JSON" in response.json()["errors"][0]["message"]


async def test_complexity_is_checked_per_request_for_variables_and_cached_without(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    page = "p{i}: auditEvents(first: $n) {{ edges {{ node {{ id actor action objectType objectId createdAt }} }} }}"
    with_variable = "query($n: Int) { " + " ".join(page.format(i=i) for i in range(25)) + " }"
    assert (await gql(with_variable, {"n": 10}, key=sandbox.admin))["p0"]["edges"] is not None
    refused = (await gql.raw(with_variable, {"n": 100}, key=sandbox.admin)).json()
    assert refused["errors"][0]["extensions"]["complexity"] == 20_025
    assert (await gql(with_variable, {"n": 10}, key=sandbox.admin))["p0"]["edges"] is not None
    constant = with_variable.replace("query($n: Int) ", "").replace("$n", "100")
    for _ in range(2):  # the second answer comes from the per-document cache
        body = (await gql.raw(constant, key=sandbox.admin)).json()
        assert body["data"] is None and body["errors"][0]["extensions"]["complexity"] == 20_025
