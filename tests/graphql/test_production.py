"""A server in production settings: links to loopback refused by review, introspection and the SDL for
authenticated callers, codes on request errors, CORS for listed origins, GraphiQL without a CDN."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys, make_settings, running_server
from tests.graphql.test_campaigns import REVIEW, create
from tests.graphql.test_profiles import upsert
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_runs import email_preset, gold, gold_segment
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

APP_ORIGIN = "http://127.0.0.1:5173"


@pytest.fixture
async def prod_server(server: RunningServer) -> AsyncIterator[RunningServer]:
    settings = make_settings(
        server.settings.database_url,
        env="prod",
        public_url="http://127.0.0.1:8000",
        allow_http_public_url=True,
        allowed_origins=[APP_ORIGIN],
    )
    async with running_server(settings, lifespan="off") as running:
        yield running


async def test_review_refuses_links_to_loopback_in_production(
    gql: GraphQLClient, sandbox: SandboxKeys, prod_server: RunningServer
) -> None:
    async with smtp_sink(SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
    await upsert(gql, sandbox.admin, [gold("ann@example.com", "Ann")])
    campaign = await create(
        gql,
        sandbox,
        {
            "name": "Tracked",
            "action": {"channel": "EMAIL", "presetId": preset_id},
            "content": {
                "email": {
                    "subject": "Hi",
                    "html": '<a href="https://shop.example.com">Shop</a><a href="{{ context.unsubscribeUrl }}">u</a>',
                    "text": "Hi",
                }
            },
            "audience": {"segmentId": await gold_segment(gql, sandbox), "namespaceCode": "Email"},
        },
    )
    manager = sandbox.keys[Role.MANAGER]
    in_dev = (await gql(REVIEW, {"id": campaign["id"]}, key=manager))["campaignReview"]
    assert "LINKS_TO_LOOPBACK" not in {a["code"] for a in in_dev["alerts"]}

    async with httpx.AsyncClient(timeout=30) as http:
        prod = GraphQLClient(http, prod_server.graphql_url)
        review = (await prod(REVIEW, {"id": campaign["id"]}, key=manager))["campaignReview"]
    (alert,) = [a for a in review["alerts"] if a["code"] == "LINKS_TO_LOOPBACK"]
    assert alert["severity"] == "ERROR" and "PUBLIC_URL" in alert["message"] and alert["field"] == "tracking"
    assert review["canActivate"] is False


async def test_introspection_and_the_sdl_for_authenticated_callers_in_production(
    prod_server: RunningServer, sandbox: SandboxKeys
) -> None:
    key = sandbox.keys[Role.VIEWER]
    async with httpx.AsyncClient(timeout=30) as http:
        prod = GraphQLClient(http, prod_server.graphql_url)
        assert (await prod("{ __schema { queryType { name } } }", key=key))["__schema"]["queryType"]["name"] == "Query"
        assert (await prod.raw("{ __schema { queryType { name } } }")).status_code == 401

        sdl = await http.get(f"{prod_server.graphql_url}/schema.graphql", headers={"Authorization": f"Bearer {key}"})
        assert sdl.status_code == 200 and sdl.headers["content-type"].startswith("application/graphql")
        assert "type Query {" in sdl.text and "campaignReview(" in sdl.text
        anonymous = await http.get(f"{prod_server.graphql_url}/schema.graphql")
        assert anonymous.status_code == 401 and anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_introspection_can_be_turned_off(server: RunningServer, sandbox: SandboxKeys) -> None:
    settings = make_settings(server.settings.database_url, env="prod", graphql_introspection=False)
    async with running_server(settings, lifespan="off") as closed, httpx.AsyncClient(timeout=30) as http:
        reply = await GraphQLClient(http, closed.graphql_url).raw("{ __schema { types { name } } }", key=sandbox.admin)
        assert reply.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        sdl = await http.get(
            f"{closed.graphql_url}/schema.graphql", headers={"Authorization": f"Bearer {sandbox.admin}"}
        )
        assert sdl.status_code == 404


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ viewer { role }", {}, "GRAPHQL_PARSE_FAILED"),
        ("{ viewer { nope } }", {}, "GRAPHQL_VALIDATION_FAILED"),
        ("query($id: ID!) { campaign(id: $id) { id } }", {}, "BAD_USER_INPUT"),
    ],
)
async def test_request_errors_carry_a_code(
    gql: GraphQLClient, sandbox: SandboxKeys, query: str, variables: dict, code: str
) -> None:
    reply = await gql.raw(query, variables, key=sandbox.admin)
    assert [e["extensions"]["code"] for e in reply.json()["errors"]] == [code], reply.json()


async def test_cors_for_listed_origins_only(prod_server: RunningServer, sandbox: SandboxKeys) -> None:
    url = prod_server.graphql_url
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with httpx.AsyncClient(timeout=30) as http:
        allowed = await http.options(url, headers={"Origin": APP_ORIGIN, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
        assert {"GET", "POST"} <= {m.strip() for m in allowed.headers["access-control-allow-methods"].split(",")}
        allowed_headers = {h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type"} <= allowed_headers
        assert "Origin" in allowed.headers["vary"] and int(allowed.headers["access-control-max-age"]) > 0

        refused = await http.options(url, headers={"Origin": "http://evil.example", **preflight})
        assert refused.status_code == 400
        assert not [h for h in refused.headers if h.lower().startswith("access-control-")]

        body = {"query": "{ viewer { role } }"}
        auth = {"Authorization": f"Bearer {sandbox.admin}"}
        answer = await http.post(url, json=body, headers={"Origin": APP_ORIGIN, **auth})
        assert answer.json()["data"]["viewer"]["role"] == "ADMIN"
        assert answer.headers["access-control-allow-origin"] == APP_ORIGIN and "Origin" in answer.headers["vary"]
        # A 401 a browser can read too, so the app can tell the user their key is wrong.
        anonymous = await http.post(url, json=body, headers={"Origin": APP_ORIGIN})
        assert anonymous.status_code == 401 and anonymous.headers["access-control-allow-origin"] == APP_ORIGIN
        other = await http.post(url, json=body, headers={"Origin": "http://evil.example", **auth})
        assert "access-control-allow-origin" not in other.headers


async def test_graphiql_is_served_offline_whatever_the_url_holds(server: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        # GraphiQL state in the URL (a reload of an older page) still gets the page, not 401/406.
        page = await http.get(f"{server.graphql_url}?q=%7B%20viewer%20%7D&variables=", headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "https://" not in page.text  # nothing from a CDN
        for name in ("graphiql.min.js", "graphiql.min.css", "react.production.min.js", "graphql-ws.min.js"):
            asset = await http.get(f"{server.base_url}/graphql/ide/{name}")
            assert asset.status_code == 200 and len(asset.content) > 1000, name
            assert f"/graphql/ide/{name}" in page.text
        assert (await http.get(f"{server.base_url}/graphql/ide/../settings.py")).status_code == 404
        # A query in the URL is a GraphQL request, even from a browser.
        query = await http.get(f"{server.graphql_url}?query=%7B%20viewer%20%7B%20role%20%7D%20%7D")
        assert query.status_code == 401


async def test_graphiql_can_load_self_hosted_assets(server: RunningServer) -> None:
    settings = make_settings(server.settings.database_url, graphiql_assets_url="https://cdn.internal/graphiql/")
    async with running_server(settings, lifespan="off") as other, httpx.AsyncClient(timeout=30) as http:
        page = await http.get(other.graphql_url, headers={"Accept": "text/html"})
        assert '<script src="https://cdn.internal/graphiql/graphiql.min.js">' in page.text
