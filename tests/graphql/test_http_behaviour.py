"""GraphQL over HTTP: GET, limits, masking of unexpected errors with the request id, role refusals."""

from __future__ import annotations

import logging

import httpx
import pytest

from models.tenancy.identity import IdentityNamespace
from models.tenancy.sandbox import Role
from resolvers.schema import SchemaOptions, build_schema
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys


async def test_queries_work_over_get_but_mutations_do_not(server: RunningServer, sandbox: SandboxKeys) -> None:
    headers = {"Authorization": f"Bearer {sandbox.admin}"}
    async with httpx.AsyncClient() as http:
        ok = await http.get(server.graphql_url, params={"query": "{ viewer { role } }"}, headers=headers)
        refused = await http.get(
            server.graphql_url,
            params={"query": 'mutation { workerPing(input: {message: "x"}) { __typename } }'},
            headers=headers,
        )
    assert ok.status_code == 200 and ok.json()["data"]["viewer"]["role"] == "ADMIN"
    assert refused.status_code in (400, 405)
    assert "data" not in refused.text or refused.json().get("data") is None


async def test_every_response_carries_a_request_id(server: RunningServer, sandbox: SandboxKeys) -> None:
    async with httpx.AsyncClient() as http:
        generated = await http.post(
            server.graphql_url,
            json={"query": "{ viewer { role } }"},
            headers={"Authorization": f"Bearer {sandbox.admin}"},
        )
        given = await http.get(f"{server.base_url}/healthz", headers={"X-Request-Id": "client-chosen-id-1"})
    assert len(generated.headers["x-request-id"]) == 32
    assert given.headers["x-request-id"] == "client-chosen-id-1"


async def test_unexpected_errors_are_masked_and_logged_with_the_request_id(
    gql: GraphQLClient, sandbox: SandboxKeys, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_filter(*args, **kwargs):
        raise RuntimeError("connection string postgres://secret@db leaked")

    monkeypatch.setattr(IdentityNamespace, "filter", broken_filter)
    with caplog.at_level(logging.ERROR, logger="herald.graphql"):
        response = await gql.raw("{ identityNamespaces { code } }", key=sandbox.admin)

    request_id = response.headers["x-request-id"]
    error = response.json()["errors"][0]
    assert "secret" not in response.text
    assert error["message"] == f"Unexpected error. Request id: {request_id}"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
    assert logged and "leaked" in str(logged[0].exc_info[1])


async def test_role_refusal_is_a_top_level_forbidden_error(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    mutation = 'mutation { workerPing(input: {message: "x"}) { __typename } }'
    response = await gql.raw(mutation, key=sandbox.keys[Role.VIEWER])
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("first", [-1, 101, 10**9])
async def test_page_size_out_of_range_is_refused_before_the_database(
    gql: GraphQLClient, sandbox: SandboxKeys, first: int
) -> None:
    query = "query($f: Int) { auditEvents(first: $f) { totalCount } }"
    response = await gql.raw(query, {"f": first}, key=sandbox.admin)
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "first" in error["message"]


async def test_cursor_pagination_walks_every_item_once(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    query = """query($a: String) {
      auditEvents(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } }
    }"""
    seen, after = [], None
    while True:
        page = (await gql(query, {"a": after}, key=sandbox.admin))["auditEvents"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == page["totalCount"] == 5


async def test_bad_cursor_is_a_clear_error(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    response = await gql.raw('{ auditEvents(after: "not-a-cursor") { totalCount } }', key=sandbox.admin)
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_depth_and_alias_limits(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    deep = "{ viewer { sandbox { name } } }"
    assert (await gql.raw(deep, key=sandbox.admin)).json()["data"]
    aliases = "{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(40)) + " }"
    body = (await gql.raw(aliases, key=sandbox.admin)).json()
    assert "aliases" in body["errors"][0]["message"].lower()
    tokens = "{ " + "viewer { role } " * 800 + "}"
    body = (await gql.raw(tokens, key=sandbox.admin)).json()
    assert "token" in body["errors"][0]["message"].lower()


async def test_depth_limit_comes_from_options() -> None:
    shallow = build_schema(SchemaOptions(max_depth=2))
    result = await shallow.execute("{ auditEvents { edges { node { id } } } }")
    assert result.errors and "exceeds maximum operation depth" in result.errors[0].message


async def test_oversized_body_gets_413(server: RunningServer, sandbox: SandboxKeys) -> None:
    big = "{ viewer { role } }" + " " * (server.settings.graphql_max_body_bytes + 10)
    async with httpx.AsyncClient() as http:
        response = await http.post(
            server.graphql_url, json={"query": big}, headers={"Authorization": f"Bearer {sandbox.admin}"}
        )
    assert response.status_code == 413


async def test_health_and_readiness(server: RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{server.base_url}/healthz")).json() == {"status": "ok"}
        ready = await http.get(f"{server.base_url}/readyz")
        metrics = await http.get(f"{server.base_url}/metrics")
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert "herald_http_requests_total" in metrics.text


async def test_graphiql_page_is_served_in_dev(server: RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        page = await http.get(server.graphql_url, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
