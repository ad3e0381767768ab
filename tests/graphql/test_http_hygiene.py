"""HTTP hygiene: CSRF-safe media types, GraphQL-over-HTTP status codes, batching off, mutations never over GET."""

from __future__ import annotations

import httpx
import pytest

from models.tenancy.sandbox import Role
from tests.conftest import RunningServer, SandboxKeys

QUERY = "{ viewer { role } }"


@pytest.fixture
async def http(sandbox: SandboxKeys):
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {sandbox.admin}"}) as client:
        yield client


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/jsonx"],
)
async def test_post_without_a_json_media_type_is_415(server: RunningServer, http, content_type: str) -> None:
    body = f'{{"query": "{QUERY}"}}'
    response = await http.post(server.graphql_url, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/graphql-response+json"]
)
async def test_post_with_a_json_media_type_runs(server: RunningServer, http, content_type: str) -> None:
    body = f'{{"query": "{QUERY}"}}'
    response = await http.post(server.graphql_url, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200 and response.json()["data"]["viewer"]["role"] == "ADMIN"


async def test_mutation_over_get_is_405_and_not_executed(server: RunningServer, http) -> None:
    response = await http.get(server.graphql_url, params={"query": "mutation { workerPing(input: {}) { __typename } }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "data" not in response.json()


async def test_batching_is_off(server: RunningServer, http) -> None:
    response = await http.post(server.graphql_url, json=[{"query": QUERY}, {"query": QUERY}])
    assert response.status_code == 400
    assert "data" not in response.json()


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ viewer { role ", None),  # parse error
        ("{ viewer { nope } }", None),  # validation error
        ("query($f: Int) { auditEvents(first: $f) { totalCount } }", {"f": "ten"}),  # variable coercion
    ],
)
async def test_graphql_response_json_request_errors_are_400_without_data(
    server: RunningServer, http, query: str, variables
) -> None:
    accept_new = {"Accept": "application/graphql-response+json"}
    new = await http.post(server.graphql_url, json={"query": query, "variables": variables}, headers=accept_new)
    legacy = await http.post(
        server.graphql_url, json={"query": query, "variables": variables}, headers={"Accept": "application/json"}
    )
    assert new.status_code == 400 and new.headers["content-type"].startswith("application/graphql-response+json")
    assert "data" not in new.json() and new.json()["errors"]
    assert legacy.status_code == 200 and legacy.headers["content-type"].startswith("application/json")
    assert legacy.json()["data"] is None


async def test_graphql_response_json_field_errors_stay_200_with_data(
    server: RunningServer, sandbox: SandboxKeys
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            server.graphql_url,
            json={"query": "mutation { workerPing(input: {}) { __typename } }"},
            headers={
                "Authorization": f"Bearer {sandbox.keys[Role.VIEWER]}",
                "Accept": "application/graphql-response+json",
            },
        )
    # The VIEWER key is refused on the field: execution started, so `data` is present (null) and status 200.
    assert response.status_code == 200
    body = response.json()
    assert "data" in body and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_unacceptable_accept_header_is_406(server: RunningServer, http) -> None:
    response = await http.post(server.graphql_url, json={"query": QUERY}, headers={"Accept": "text/html"})
    assert response.status_code == 406


async def test_subscription_over_post_is_a_bad_request_not_a_method_error(server: RunningServer, http) -> None:
    response = await http.post(server.graphql_url, json={"query": "subscription { workerPong { pingId } }"})
    assert response.status_code == 400
    assert "data" not in response.json()
