"""Compiled reads (api/compiled_front.py, resolvers/compiled_reads.py) answer exactly as stock execution: each
persisted document is sent with its text (which stock execution answers) and by its hash alone (which the
compiled statement answers on PostgreSQL), and the two responses compared: status, media type, data with its
key order, errors and `extensions.cost`. On SQLite nothing is compiled and both come from stock execution."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from tortoise import connections

from api.app import create_app
from models.campaigns.campaign import Campaign as CampaignModel
from models.campaigns.campaign import CampaignRun as CampaignRunModel
from tests.conftest import TEST_DB, GraphQLClient, RunningServer, SandboxKeys, make_settings, new_sandbox
from tests.graphql.test_campaigns import active_in_app_preset, audience, create, ready_input
from tests.graphql.test_planned_execution import BENCH_PAGE, BENCH_PAGE_FIELDS

COMPILED = TEST_DB == "postgres"  # SQLite: no compiled statements (no base64 in SQL for ids and cursors)
WIDE_FIELDS = (
    "__typename id name description tags type category channel status version priority throttle activatedAt "
    "activatedBy stoppedAt createdAt updatedAt preset { __typename id name } segment { id name } "
    "summary { __typename audience targeted excluded sent delivered failed profilesTargeted }"
)
WIDE_PAGE = (
    "query Wide { campaigns(first: 2) { __typename edges { __typename cursor node { " + WIDE_FIELDS + " } } "
    "nodes { id again: name } pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor } } }"
)


def _ext(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(document.encode()).hexdigest()}}


def _shape(response: httpx.Response) -> tuple[int, str, bytes]:
    """Status, media type and the body as ordered JSON, the request id in masked errors and the budget's
    available points (which move between two requests) left out."""
    body = orjson.loads(response.content)
    budget = (body.get("extensions") or {}).get("cost", {}).get("budget")
    if budget is not None:
        assert isinstance(budget["available"], int)
        budget["available"] = "some"
    text = re.sub(r"[0-9a-f]{32}", "<request id>", orjson.dumps(body).decode())
    return response.status_code, response.headers["content-type"], text.encode()


async def _compare(
    gql: GraphQLClient,
    document: str,
    key: str | None,
    *,
    compiled: bool = COMPILED,
    accept: str | None = None,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stock execution's answer to `document` (sent with its text), which equals the answer to its hash alone;
    `compiled` says whether the compiled statement gave the latter."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if accept:
        headers["Accept"] = accept
    # None with GRAPHQL_PLANNED_EXECUTION=false (a CI tier): stock execution answers both.
    reads = gql.app.state.graphql_app.compiled_reads  # type: ignore[union-attr]
    given = {"variables": variables} if variables is not None else {}
    stock = await gql.http.post(
        gql.url, json={"query": document, "extensions": _ext(document), **given}, headers=headers
    )
    before = reads.answered if reads is not None else 0
    by_hash = await gql.http.post(gql.url, json={"extensions": _ext(document), **given}, headers=headers)
    if reads is not None:
        assert reads.answered - before == (1 if compiled else 0), document
    assert _shape(by_hash) == _shape(stock), document
    assert by_hash.headers["x-request-id"]
    return orjson.loads(stock.content)


@pytest.fixture
async def campaigns(gql: GraphQLClient, sandbox: SandboxKeys) -> list[dict[str, Any]]:
    """A ready campaign (preset, segment, two runs with figures), a bare one (tags, no channel, no runs) and a
    third whose preset is another sandbox's (as no API lets it be: read as null)."""
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=1)
    ready = await create(gql, sandbox, ready_input(preset_id, segment_id, name="Ready 'quoted' \"name\" ✓"))
    bare = await create(gql, sandbox, {"name": "Bare", "tags": ["x", "y"]})
    sealed = await create(gql, sandbox, ready_input(preset_id, segment_id, name="Sealed"))
    other = await new_sandbox("other")
    foreign_preset = await active_in_app_preset(gql, other)
    ready_pk, sealed_pk = _pk(ready["id"]), _pk(sealed["id"])
    await CampaignModel.filter(id=sealed_pk).update(preset_id=_pk(foreign_preset))
    row = await CampaignModel.get(id=ready_pk)
    for day, figures in enumerate(((10, 2, 9, 7, 1), (5, 0, 5, 5, 0)), start=1):
        targeted, excluded, sent, delivered, failed = figures
        await CampaignRunModel.create(
            sandbox_id=row.sandbox_id,
            campaign_id=ready_pk,
            scheduled_for=datetime(2026, 1, day, tzinfo=UTC),
            targeted=targeted,
            excluded=excluded,
            sent=sent,
            delivered=delivered,
            failed=failed,
        )
    # A whole second: isoformat() leaves the microseconds out.
    await CampaignModel.filter(id=ready_pk).update(activated_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))
    return [sealed, bare, ready]


def _pk(global_id: str) -> int:
    import base64

    return int(base64.b64decode(global_id).decode().partition(":")[2])


async def test_the_bench_documents_answer_as_stock_execution(
    gql: GraphQLClient, sandbox: SandboxKeys, campaigns: list[dict[str, Any]]
) -> None:
    page = await _compare(gql, BENCH_PAGE, sandbox.admin)
    nodes = [edge["node"] for edge in page["data"]["campaigns"]["edges"]]
    assert [n["id"] for n in nodes] == [c["id"] for c in campaigns]
    assert nodes[0]["preset"] is None and nodes[1]["preset"] is None and nodes[2]["preset"]["name"]
    assert nodes[2]["summary"] == {"profilesTargeted": 17, "actionsDelivered": 12, "actionsFailed": 1, "excluded": 2}
    for campaign in campaigns:
        one = await _compare(
            gql, f'query One {{ campaign(id: "{campaign["id"]}") {{ {BENCH_PAGE_FIELDS} }} }}', sandbox.admin
        )
        assert one["data"]["campaign"]["id"] == campaign["id"]
        node = await _compare(
            gql,
            f'query N {{ node(id: "{campaign["id"]}") {{ ... on Campaign {{ {BENCH_PAGE_FIELDS} }} }} }}',
            sandbox.admin,
        )
        assert node["data"]["node"] == one["data"]["campaign"]


async def test_every_compiled_field_answers_as_stock_execution(
    gql: GraphQLClient, sandbox: SandboxKeys, campaigns: list[dict[str, Any]]
) -> None:
    wide = await _compare(gql, WIDE_PAGE, sandbox.admin, accept="application/graphql-response+json")
    info = wide["data"]["campaigns"]["pageInfo"]
    assert info["hasNextPage"] is True and info["startCursor"] and info["endCursor"]
    for first in (0, 3, 100):
        await _compare(gql, WIDE_PAGE.replace("first: 2", f"first: {first}"), sandbox.admin)
    ready = campaigns[2]["id"]
    answer = await _compare(
        gql,
        f'query Wide {{ a: campaign(id: "{ready}") {{ {WIDE_FIELDS} }} '
        f'b: node(id: "{ready}") {{ id __typename ... on Campaign {{ name summary {{ audience }} }} }} }}',
        sandbox.admin,
    )
    assert answer["data"]["a"]["activatedAt"] == "2026-03-04T05:06:07+00:00"
    fragment = f'query F {{ campaign(id: "{ready}") {{ ...C }} }} fragment C on Campaign {{ {BENCH_PAGE_FIELDS} }}'
    await _compare(gql, fragment, sandbox.admin)


async def test_not_found_and_other_sandboxes_read_as_null(
    gql: GraphQLClient, sandbox: SandboxKeys, campaigns: list[dict[str, Any]]
) -> None:
    intruder = await new_sandbox("intruder")
    ready = campaigns[2]["id"]
    for document in (
        f'query A {{ campaign(id: "{ready}") {{ {BENCH_PAGE_FIELDS} }} }}',
        f'query B {{ node(id: "{ready}") {{ ... on Campaign {{ id name }} }} }}',
        'query C { campaign(id: "Q2FtcGFpZ246OTk5OTk5OTk=") { id name } }',  # Campaign:99999999
    ):
        answer = await _compare(gql, document, intruder.admin)
        assert list(answer["data"].values()) == [None]
    page = await _compare(gql, BENCH_PAGE, intruder.admin)
    assert page["data"]["campaigns"] == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


async def test_refusals_and_what_is_not_compiled_go_to_stock_execution(
    gql: GraphQLClient, sandbox: SandboxKeys, campaigns: list[dict[str, Any]]
) -> None:
    document = f'query A {{ campaign(id: "{campaigns[2]["id"]}") {{ id name }} }}'
    await _compare(gql, document, sandbox.admin)
    # Every role may read (VIEWER is what the root fields declare), and the client's request id is echoed.
    for role_key in sandbox.keys.values():
        await _compare(gql, document, role_key)
    echoed = await gql.http.post(
        gql.url,
        json={"extensions": _ext(document)},
        headers={"Authorization": f"Bearer {sandbox.admin}", "X-Request-Id": "client-chosen-id-1"},
    )
    assert echoed.headers["x-request-id"] == "client-chosen-id-1"
    # No key, a wrong key: 401 from the app, whatever the hash.
    assert (await gql.http.post(gql.url, json={"extensions": _ext(document)})).status_code == 401
    wrong = {"Authorization": "Bearer hk_not_a_key"}
    assert (await gql.http.post(gql.url, json={"extensions": _ext(document)}, headers=wrong)).status_code == 401
    # Not compiled: variables other than ids, totalCount, other arguments, other root fields.
    await _compare(
        gql,
        "query P($n: Int) { campaigns(first: $n) { edges { node { id } } } }",
        sandbox.admin,
        compiled=False,
        variables={"n": 2},
    )
    await _compare(
        gql, "query T { campaigns(first: 2) { totalCount edges { node { id } } } }", sandbox.admin, compiled=False
    )
    await _compare(
        gql, "query S { campaigns(sort: NAME_ASC) { edges { node { id } } } }", sandbox.admin, compiled=False
    )
    await _compare(
        gql, "query V { viewer { role } campaigns { edges { node { id } } } }", sandbox.admin, compiled=False
    )
    await _compare(gql, 'query X { campaign(id: "x") { id } }', sandbox.admin, compiled=False)


async def test_ids_given_as_variables_are_compiled_and_resolved_per_request(
    gql: GraphQLClient, sandbox: SandboxKeys, campaigns: list[dict[str, Any]]
) -> None:
    """`campaign(id: $id)` and `node(id: $id)`, as SPA clients send them: one compiled statement for every id; an
    id that is no campaign's (another type's node, garbage, a missing or null variable) is stock execution's."""
    one = f"query One($id: ID!) {{ campaign(id: $id) {{ {BENCH_PAGE_FIELDS} }} }}"
    node = f"query N($id: ID!) {{ node(id: $id) {{ __typename ... on Campaign {{ {BENCH_PAGE_FIELDS} }} }} }}"
    for campaign in campaigns:
        by_id = await _compare(gql, one, sandbox.admin, variables={"id": campaign["id"]})
        assert by_id["data"]["campaign"]["id"] == campaign["id"]
        by_node = await _compare(gql, node, sandbox.admin, variables={"id": campaign["id"]})
        assert by_node["data"]["node"]["name"] == by_id["data"]["campaign"]["name"]
    ready = campaigns[2]["id"]
    # campaign(id:) also takes the database id, as a string or an int (ID's input coercion).
    for plain in (str(_pk(ready)), _pk(ready)):
        answer = await _compare(gql, one, sandbox.admin, variables={"id": plain})
        assert answer["data"]["campaign"]["id"] == ready
    # Not this sandbox's, or no such campaign: null from the statement as from stock execution.
    intruder = await new_sandbox("intruder")
    assert (await _compare(gql, one, intruder.admin, variables={"id": ready}))["data"] == {"campaign": None}
    missing = {"id": "Q2FtcGFpZ246OTk5OTk5OTk="}  # Campaign:99999999
    assert (await _compare(gql, node, sandbox.admin, variables=missing))["data"] == {"node": None}
    # Another type's node, not an id, a null or missing variable, an extra one: stock execution answers.
    segment = await gql("{ segments(first: 1) { edges { node { id } } } }", key=sandbox.admin)
    segment_id = segment["segments"]["edges"][0]["node"]["id"]
    assert (await _compare(gql, node, sandbox.admin, compiled=False, variables={"id": segment_id}))["data"] == {
        "node": {"__typename": "Segment"}
    }
    for variables in ({"id": "x"}, {"id": None}, {}, {"id": ready, "other": 1}, {"id": [ready]}):
        await _compare(gql, one, sandbox.admin, compiled=False, variables=variables)


async def test_values_stock_execution_refuses_are_answered_by_it(
    gql: GraphQLClient, sandbox: SandboxKeys, campaigns: list[dict[str, Any]]
) -> None:
    """An Int past 32 bits, an enum value the schema does not know: stock execution's error, not a value."""
    ready_pk, bare_pk = _pk(campaigns[2]["id"]), _pk(campaigns[1]["id"])
    document = "query Odd { campaigns(first: 5) { edges { node { id channel summary { audience } } } } }"
    await _compare(gql, document, sandbox.admin)  # compiled, and now it sees odd values
    await CampaignRunModel.filter(campaign_id=ready_pk).update(targeted=2**31 - 1)
    odd = await _compare(gql, document, sandbox.admin, compiled=False)
    assert odd["errors"]
    await CampaignRunModel.filter(campaign_id=ready_pk).update(targeted=1)
    client = connections.get("default")
    await client.execute_query(f'UPDATE "campaign" SET "channel" = \'PIGEON\' WHERE "id" = {bare_pk}')
    odd = await _compare(gql, document, sandbox.admin, compiled=False)
    assert odd["errors"]


async def test_the_cost_budget_is_charged_and_refuses_as_stock_execution(server: RunningServer) -> None:
    """The compiled path pays the requested cost and settles the actual one on the key's budget; a request over
    budget gets stock execution's 429."""
    settings = make_settings(
        server.settings.database_url, graphql_max_complexity=450, cost_budget_maximum=450, cost_restore_rate=10.0
    )
    app = create_app(settings)
    app.state.graphql_app.cost_budget.clock = lambda: 1_000_000.0  # no restoring between requests
    key = (await new_sandbox("budget")).admin
    headers = {"Authorization": f"Bearer {key}"}
    reads = app.state.graphql_app.compiled_reads
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://herald") as http:
        stock = await http.post("/graphql", json={"query": BENCH_PAGE, "extensions": _ext(BENCH_PAGE)}, headers=headers)
        cost = stock.json()["extensions"]["cost"]
        assert cost == {
            "requested": 401,
            "actual": 5,  # data, campaigns, edges (empty), pageInfo and its two fields
            "budget": {"maximum": 450, "available": 445, "restoreRate": 10.0},
        }
        answers = []
        while True:
            before = reads.answered if reads is not None else 0
            answer = await http.post("/graphql", json={"extensions": _ext(BENCH_PAGE)}, headers=headers)
            answers.append(answer)
            if answer.status_code != 200:
                break
            assert reads is None or reads.answered == before + (1 if COMPILED else 0)
        # 445 after the first, 5 less per page, until 400 (< 401 requested) is refused.
        available = [a.json()["extensions"]["cost"]["budget"]["available"] for a in answers[:-1]]
        assert available == list(range(440, 399, -5))
        refused = answers[-1]
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        again = await http.post("/graphql", json={"query": BENCH_PAGE, "extensions": _ext(BENCH_PAGE)}, headers=headers)
        assert _shape(again) == _shape(refused)
    await app.state.graphql_app.cost_budget.aclose()
