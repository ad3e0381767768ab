"""Query cost in every response (`extensions.cost`) and the per-key cost budget in Redis: refused with
RATE_LIMITED, HTTP 429 and Retry-After when short, restored at the restore rate (the clock is driven)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from redis.asyncio import Redis

from api.app import create_app
from api.ratelimit import CostBudget
from resolvers.cost import actual_cost
from tests.conftest import RunningServer, SandboxKeys, free_port, make_settings, new_sandbox, running_server

MAXIMUM = 100
RATE = 10.0  # points per second

VIEWER = "{ viewer { role } }"
AUDIT_PAGE = "{ auditEvents(first: 7) { edges { node { id action } } pageInfo { hasNextPage } } }"
NAMESPACES = "{ identityNamespaces { name } viewer { role sandbox { name } } }"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def budgeted(server: RunningServer) -> AsyncIterator[tuple[httpx.AsyncClient, Clock]]:
    """The app in process over ASGI (its lifespan off: the session server owns the database connections)."""
    settings = make_settings(
        server.settings.database_url,
        graphql_max_complexity=MAXIMUM,
        cost_budget_maximum=MAXIMUM,
        cost_restore_rate=RATE,
    )
    app = create_app(settings)
    clock = Clock()
    app.state.graphql_app.cost_budget.clock = clock
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://herald") as http:
        yield http, clock
    await app.state.graphql_app.cost_budget.aclose()


async def _post(http: httpx.AsyncClient, query: str, key: str) -> httpx.Response:
    return await http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {key}"})


async def test_three_queries_report_their_cost_exactly(
    budgeted: tuple[httpx.AsyncClient, Clock], sandbox: SandboxKeys
) -> None:
    http, _ = budgeted
    bodies = [(await _post(http, query, sandbox.admin)).json() for query in (VIEWER, AUDIT_PAGE, NAMESPACES)]
    events = len(bodies[1]["data"]["auditEvents"]["edges"])
    namespaces = len(bodies[2]["data"]["identityNamespaces"])
    assert (events, namespaces) == (5, 6), bodies  # a new sandbox: its creation and 4 keys; 6 namespaces

    # viewer { role }: 2 fields, all present.
    assert bodies[0]["extensions"]["cost"] == {
        "requested": 2,
        "actual": 2,
        "budget": {"maximum": MAXIMUM, "available": MAXIMUM - 2, "restoreRate": RATE},
    }
    # auditEvents 1 + 7 x (edges 1 + node 1 + id 1 + action 1 + pageInfo 1 + hasNextPage 1) = 43 requested;
    # actual: auditEvents 1 + edges 1 + 5 x (node 1 + id 1 + action 1) + pageInfo 1 + hasNextPage 1 = 19.
    assert bodies[1]["extensions"]["cost"] == {
        "requested": 43,
        "actual": 19,
        "budget": {"maximum": MAXIMUM, "available": MAXIMUM - 2 - 19, "restoreRate": RATE},
    }
    # identityNamespaces 1 + 5 (an unpaged list counts 5 items) x name 1, viewer 1 + role 1 + sandbox 1 + name
    # 1 = 10 requested; actual 1 + 6 x 1 + 4 = 11 (more than requested: the list is longer than 5).
    assert bodies[2]["extensions"]["cost"] == {
        "requested": 10,
        "actual": 11,
        "budget": {"maximum": MAXIMUM, "available": MAXIMUM - 2 - 19 - 11, "restoreRate": RATE},
    }


async def test_a_key_exhausting_its_budget_is_refused_and_recovers_at_the_restore_rate(
    budgeted: tuple[httpx.AsyncClient, Clock], sandbox: SandboxKeys
) -> None:
    http, clock = budgeted
    key = (await new_sandbox("cost")).admin
    big = "{ auditEvents(first: 24) { edges { node { id action } } } }"  # 1 + 24 x 4 = 97 requested
    first = await _post(http, big, key)
    assert first.status_code == 200 and first.json()["extensions"]["cost"]["budget"]["available"] == 100 - 17
    refused = await _post(http, big, key)  # 83 available < 97
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"  # (97 - 83) / 10 per second, rounded up
    body = refused.json()
    assert "data" not in body or body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 2, "requested": 97}
    assert body["extensions"]["cost"] == {
        "requested": 97,
        "actual": 0,
        "budget": {"maximum": MAXIMUM, "available": 83, "restoreRate": RATE},
    }
    # Another key has its own budget.
    assert (await _post(http, big, sandbox.admin)).status_code == 200

    clock.now += 1.25  # 95.5 available: still short
    assert (await _post(http, big, key)).status_code == 429
    clock.now += 0.25  # 98
    again = await _post(http, big, key)
    assert again.status_code == 200, again.text
    assert again.json()["extensions"]["cost"]["budget"]["available"] == 98 - 17
    # Restoring stops at the maximum.
    clock.now += 3600
    assert (await _post(http, VIEWER, key)).json()["extensions"]["cost"]["budget"]["available"] == MAXIMUM - 2


async def test_errors_and_refusals_keep_graphql_response_json_status(
    budgeted: tuple[httpx.AsyncClient, Clock], sandbox: SandboxKeys
) -> None:
    http, _ = budgeted
    headers = {"Authorization": f"Bearer {sandbox.admin}", "Accept": "application/graphql-response+json"}
    invalid = await http.post("/graphql", json={"query": "{ nope }"}, headers=headers)
    assert invalid.status_code == 400
    assert invalid.json()["extensions"]["cost"] == {
        "requested": None,
        "actual": None,
        "budget": {"maximum": MAXIMUM, "available": None, "restoreRate": RATE},
    }
    too_big = await http.post(
        "/graphql", json={"query": "{ auditEvents(first: 99) { edges { node { id } } } }"}, headers=headers
    )
    assert too_big.status_code == 400 and too_big.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_websocket_operations_pay_from_the_same_budget(server: RunningServer, protocol: str) -> None:
    settings = make_settings(
        server.settings.database_url, graphql_max_complexity=100, cost_budget_maximum=100, cost_restore_rate=0.001
    )
    key = (await new_sandbox("ws")).admin
    subscription = "subscription { campaignStatusChanged { __typename } }"
    async with running_server(settings, lifespan="off") as running:
        async with websockets.connect(running.ws_url, subprotocols=[protocol]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            start = "subscribe" if protocol == "graphql-transport-ws" else "start"
            refused = None
            # Each subscription pays its requested cost; an error message comes once the budget is spent.
            for i in range(60):  # 50 x 2 points fit in 100; under WS_MAX_SUBSCRIPTIONS (100)
                await ws.send(json.dumps({"id": str(i), "type": start, "payload": {"query": subscription}}))
            while refused is None:
                message = json.loads(await ws.recv())
                if message.get("type") == "error":
                    refused = message
    payload = refused["payload"][0] if isinstance(refused["payload"], list) else refused["payload"]
    assert payload.get("extensions", {}).get("code") == "RATE_LIMITED", refused


async def test_budget_counts_in_redis_and_lets_requests_through_when_redis_is_down(redis: Redis) -> None:
    clock = Clock()
    budget = CostBudget(redis, maximum=10, restore_rate=1.0, clock=clock)
    await redis.delete("herald:cost:987654321")
    assert (await budget.take(987654321, 6)).available == 4
    refused = await budget.take(987654321, 6)
    assert not refused.allowed and refused.retry_after == 2 and refused.available == 4
    assert await budget.settle(987654321, -3) == 7  # a refund after the actual cost
    assert await budget.settle(987654321, 50) == 0  # an extra charge never goes below 0

    unreachable = CostBudget(Redis.from_url(f"redis://127.0.0.1:{free_port()}/0"), maximum=1, restore_rate=1.0)
    assert [(await unreachable.take(1, 5)).allowed for _ in range(3)] == [True, True, True]
    await unreachable.aclose()


def test_actual_cost_counts_fields_and_list_items() -> None:
    assert actual_cost(None) == 0
    assert actual_cost({"a": 1, "b": None}) == 2
    assert actual_cost({"a": [{"x": 1}, {"x": 2}], "b": ["s", "t"]}) == 4
