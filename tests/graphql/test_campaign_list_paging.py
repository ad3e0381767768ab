"""The `campaigns` list against an independent model of it: every sort with many filters, walked page by page
at several page sizes, compared with an order computed apart (filters in Python, ordering by the ORM so the
database decides collation). Pins paging errors, page info, and that a page answers as each campaign alone."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from strawberry.relay import GlobalID

from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.campaigns.rules import CampaignStatus, CampaignType
from tests.conftest import GraphQLClient, SandboxKeys, in_process_client, new_sandbox
from tests.graphql.test_campaigns import active_in_app_preset, audience, create, ready_input

ALL_STATUSES = ["DRAFT", "SCHEDULED", "LIVE", "STOPPED", "COMPLETED", "FAILED", "ARCHIVED"]
# Written out rather than imported: the list must keep these semantics whatever the implementation.
DEFAULT_STATUSES = {"DRAFT", "SCHEDULED", "LIVE"}
ORDERINGS = {
    "CREATED_DESC": ("-id",),
    "CREATED_ASC": ("id",),
    "MODIFIED_DESC": ("-updated_at", "-id"),
    "NAME_ASC": ("name", "id"),
}
MAX_PAGE_SIZE = 100

NODE_FIELDS = """
fragment N on Campaign {
  id name description status version channel type category tags throttle availableActions
  updatedAt createdAt activatedAt stoppedAt
  preset { id name } segment { id name } namespace { id code }
  summary { profilesTargeted actionsDelivered actionsFailed excluded }
  content {
    email { subject preheader html text } sms { text }
    push { title body deepLink customData } inApp { title body buttons { label url } }
  }
  schedule { startAt endAt frequency timeOfDay daysOfWeek daysOfMonth timeZone }
  tracking { opens clicks }
}
"""
PAGE = """
query($filter: CampaignFilter, $sort: CampaignSort!, $first: Int, $after: String) {
  campaigns(filter: $filter, sort: $sort, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { NODE } } nodes { id }
  }
}
"""
IDS_PAGE = PAGE.replace("NODE", "id")
FULL_PAGE = PAGE.replace("NODE", "...N") + NODE_FIELDS


@dataclass(frozen=True)
class Row:
    pk: int
    id: str  # global id
    name: str
    tags: tuple[str, ...]
    channel: str | None
    status: str


@dataclass
class Seeded:
    sandbox: SandboxKeys
    rows: list[Row]
    foreign_ids: set[str]
    alone: dict[str, dict[str, Any]]  # global id -> `campaign(id:)` answer


BASE = datetime(2024, 3, 10, 12, 0, 0, 123456, tzinfo=UTC)
TIE = datetime(2024, 3, 10, 15, 30, 0, 500000, tzinfo=UTC)
# (name, tags, channel, status, updated_at); same-day times on purpose: a textual date/time comparison that
# mixes "T" and " " separators only goes wrong within one day.
SPECS: list[tuple[str, list[str], str | None, str, datetime]] = [
    ("Spring sale", ["Promo", "Spring"], "IN_APP", "DRAFT", BASE + timedelta(hours=5)),
    ("spring SALE", ["promo"], "EMAIL", "LIVE", TIE),
    ("50% off", ["Promo"], "EMAIL", "SCHEDULED", BASE - timedelta(days=1)),
    ("5000 off", [], "EMAIL", "DRAFT", BASE + timedelta(minutes=1)),
    ("snake_case", ["a_b"], "SMS", "DRAFT", TIE),
    ("snakeXcase", ["axb"], "SMS", "LIVE", BASE + timedelta(microseconds=1)),
    ("back\\slash", ["NEWS"], None, "DRAFT", BASE),
    ("backslash", [], None, "STOPPED", TIE),
    ("Newsletter", ["news", "weekly"], "EMAIL", "DRAFT", BASE + timedelta(hours=2)),
    ("Newsletter", ["News"], "EMAIL", "LIVE", TIE),
    ("Newsletter", [], "IN_APP", "DRAFT", BASE + timedelta(hours=2)),
    ("Newsletter", ["weekly"], "SMS", "ARCHIVED", BASE + timedelta(days=3)),
    ("newsletter", ["NEWS", "Promo"], "EMAIL", "SCHEDULED", datetime(2024, 3, 10, 9, 0, tzinfo=UTC)),
    ("NEWSLETTER weekly", ["Weekly"], "IN_APP", "STOPPED", datetime(2024, 3, 10, 9, 0, tzinfo=UTC)),
    ("Zebra", [], None, "DRAFT", BASE - timedelta(hours=3)),
    ("apple", ["fruit"], "IN_APP", "LIVE", TIE),
    ("Apple", ["Fruit", "promo"], "EMAIL", "DRAFT", BASE + timedelta(hours=11, minutes=59)),
    ("_underscore first", [], "SMS", "DRAFT", BASE + timedelta(seconds=30)),
    ("%percent first", ["50%"], "EMAIL", "ARCHIVED", BASE + timedelta(seconds=30)),
    ("a b c", [], None, "COMPLETED", TIE),
    ("Promo 1", ["promo"], "IN_APP", "DRAFT", BASE - timedelta(days=2)),
    ("Promo 10", ["PROMO"], "IN_APP", "LIVE", BASE - timedelta(days=2, microseconds=5)),
    ("Promo 2", ["promo"], "EMAIL", "FAILED", BASE + timedelta(hours=1)),
    ("Sale-2024", ["Spring", "Summer"], "EMAIL", "DRAFT", BASE + timedelta(hours=1)),
    ("Sale 2024", ["summer"], "SMS", "STOPPED", BASE + timedelta(hours=4)),
    ("Welcome", ["onboarding"], "IN_APP", "SCHEDULED", BASE + timedelta(days=1)),
    ("welcome back", ["Onboarding", "news"], "EMAIL", "DRAFT", BASE + timedelta(hours=6)),
    ("Q3 review", ["red-blue"], None, "ARCHIVED", BASE + timedelta(hours=7)),
    ("100% sure", ["sure"], "IN_APP", "DRAFT", TIE),
    ("x\\y_z%", ["odd"], "EMAIL", "LIVE", BASE + timedelta(hours=3)),
]
# (campaign index, [(targeted, excluded, sent, failed), ...]): distinct, non-zero summaries.
RUNS = {
    0: [(10, 2, 7, 1), (5, 0, 5, 0)],
    1: [(3, 1, 2, 0)],
    8: [(100, 10, 80, 10), (50, 5, 40, 5), (1, 0, 0, 1)],
    10: [(7, 7, 0, 0)],
    13: [(20, 0, 19, 1)],
    15: [(4, 0, 4, 0)],
    21: [(9, 3, 5, 1)],
    25: [(60, 6, 50, 4), (2, 2, 0, 0)],
}


FAR_START = {"startAt": "2099-01-01T00:00:00Z", "frequency": "WEEKLY", "daysOfWeek": ["MONDAY"], "timeOfDay": "08:00"}


async def _set_status(campaign_id: str, status: str, updated_at: datetime) -> None:
    """Statuses and times the API cannot set, written straight to the table. LIVE ones are API-triggered so
    the in-process dispatcher creates no runs for them (which would change them during the test)."""
    changes: dict[str, Any] = {"status": CampaignStatus(status), "updated_at": updated_at}
    if status == "LIVE":
        changes["type"] = CampaignType.API_TRIGGERED
    await Campaign.filter(id=pk(campaign_id)).update(**changes)


def _input(spec: tuple[str, list[str], str | None, str, datetime], i: int, preset_id: str, segment_id: str) -> dict:
    name, tags, channel, status, _ = spec
    if status == "SCHEDULED":  # the in-process dispatcher would start it (and change it) once its start is due
        return {**_input((name, tags, channel, "DRAFT", BASE), i, preset_id, segment_id), "schedule": FAR_START}
    if channel == "IN_APP":
        return ready_input(preset_id, segment_id, name=name, tags=tags, description=f"in-app {i}")
    if channel == "EMAIL":
        return {
            "name": name,
            "tags": tags,
            "action": {"channel": "EMAIL"},
            "content": {"email": {"subject": f"S{i}", "html": f"<p>{i}</p>", "text": f"t{i}"}},
            "tracking": {"opens": i % 2 == 0, "clicks": True},
            "schedule": {"frequency": "DAILY", "timeOfDay": "09:30", "timeZone": "Europe/Paris"},
            "throttle": 10 + i,
        }
    if channel == "SMS":
        return {
            "name": name,
            "tags": tags,
            "action": {"channel": "SMS"},
            "content": {"sms": {"text": f"sms {i}"}},
            "audience": {"namespaceCode": "Email"},
        }
    return {"name": name, "tags": tags}


def pk(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


async def _alone(gql: GraphQLClient, key: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    answers: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 10):  # aliases are limited per operation
        chunk = ids[start : start + 10]
        query = "query { " + " ".join(f'c{i}: campaign(id: "{cid}") {{ ...N }}' for i, cid in enumerate(chunk))
        data = await gql(query + " }" + NODE_FIELDS, key=key)
        answers.update({cid: data[f"c{i}"] for i, cid in enumerate(chunk)})
    return answers


@pytest.fixture(scope="module")
async def seeded(app: Starlette) -> AsyncIterator[Seeded]:
    async with in_process_client(app) as http:
        gql = GraphQLClient(http, "http://127.0.0.1/graphql", app)
        sandbox = await new_sandbox("paging")
        preset_id = await active_in_app_preset(gql, sandbox)
        segment_id = await audience(gql, sandbox, size=1)
        rows: list[Row] = []
        for i, spec in enumerate(SPECS):
            created = await create(gql, sandbox, _input(spec, i, preset_id, segment_id))
            name, tags, channel, status, updated_at = spec
            assert (created["name"], created["tags"], created["channel"]) == (name, tags, channel)
            await _set_status(created["id"], status, updated_at)
            rows.append(Row(pk(created["id"]), created["id"], name, tuple(tags), channel, status))
        stored = dict(await Campaign.filter(id__in=[r.pk for r in rows]).values_list("id", "updated_at"))
        assert [stored[r.pk] for r in rows] == [spec[4] for spec in SPECS]
        sandbox_id = (await Campaign.get(id=rows[0].pk)).sandbox_id
        for index, figures in RUNS.items():
            for n, (targeted, excluded, sent, failed) in enumerate(figures):
                await CampaignRun.create(
                    sandbox_id=sandbox_id,
                    campaign_id=rows[index].pk,
                    scheduled_for=BASE + timedelta(days=n),
                    status=RunStatus.SUCCEEDED,
                    targeted=targeted,
                    excluded=excluded,
                    sent=sent,
                    delivered=sent,
                    failed=failed,
                )

        # Another sandbox whose campaigns match every filter used below: none may ever be listed.
        other = await new_sandbox("paging-other")
        foreign_ids = set()
        for i, status in enumerate(ALL_STATUSES):
            name = ["Newsletter", "50% off", "snake_case", "back\\slash", "Apple", "Spring sale", "x\\y_z%"][i]
            tags = ["promo", "news", "a_b", "red"]
            theirs = await create(gql, other, {"name": name, "tags": tags, "schedule": FAR_START})
            await _set_status(theirs["id"], status, TIE)
            foreign_ids.add(theirs["id"])

        alone = await _alone(gql, sandbox.admin, [r.id for r in rows])
        yield Seeded(sandbox, rows, foreign_ids, alone)


def _matches(row: Row, filter: dict[str, Any] | None) -> bool:
    filter = filter or {}
    if row.status not in (set(filter.get("statuses") or ()) or DEFAULT_STATUSES):
        return False
    if filter.get("channel") is not None and row.channel != filter["channel"]:
        return False
    if filter.get("search") and filter["search"].lower() not in row.name.lower():
        return False
    if filter.get("tags"):
        wanted = {t.strip().lower() for t in filter["tags"]}
        if not wanted & {t.strip().lower() for t in row.tags}:
            return False
    return True


async def expected_ids(seeded: Seeded, sort: str, filter: dict[str, Any] | None) -> list[str]:
    by_pk = {r.pk: r.id for r in seeded.rows}
    pks = [r.pk for r in seeded.rows if _matches(r, filter)]
    ordered = await Campaign.filter(id__in=pks).order_by(*ORDERINGS[sort]).values_list("id", flat=True)
    return [by_pk[p] for p in ordered]


async def walk(
    gql: GraphQLClient, seeded: Seeded, sort: str, filter: dict[str, Any] | None, size: int, expected: list[str]
) -> None:
    """Pages through the list with `after: endCursor`, checking each page against the expected order."""
    full = size == 7  # one size selects every field: the prefetched page path
    seen: list[str] = []
    after: str | None = None
    for _ in range(len(expected) + 2):
        variables = {"filter": filter, "sort": sort, "first": size, "after": after}
        page = (await gql(FULL_PAGE if full else IDS_PAGE, variables, key=seeded.sandbox.admin))["campaigns"]
        ids = [edge["node"]["id"] for edge in page["edges"]]
        where = (sort, filter, size, len(seen))
        assert ids == expected[len(seen) : len(seen) + size], where
        assert [node["id"] for node in page["nodes"]] == ids, where
        assert page["totalCount"] == len(expected), where
        cursors = [edge["cursor"] for edge in page["edges"]]
        assert len(set(cursors)) == len(cursors), where
        assert page["pageInfo"] == {
            "hasNextPage": len(seen) + len(ids) < len(expected),
            "hasPreviousPage": after is not None,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        }, where
        if full:
            for edge in page["edges"]:
                assert edge["node"] == seeded.alone[edge["node"]["id"]], where
        seen += ids
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == expected, (sort, filter, size)


FILTERS: list[dict[str, Any] | None] = [
    None,
    {"statuses": []},  # empty = the default statuses
    {"statuses": ["STOPPED"]},
    {"statuses": ["ARCHIVED", "STOPPED", "DRAFT"]},
    {"statuses": ALL_STATUSES},
    {"statuses": ["LIVE", "SCHEDULED"]},
    {"channel": "EMAIL"},
    {"channel": "IN_APP", "statuses": ALL_STATUSES},
    {"search": "newsletter"},
    {"search": "NEWS", "statuses": ALL_STATUSES},
    {"search": ""},  # empty = no search
    {"search": "50%"},  # must not match "5000 off"
    {"search": "%", "statuses": ALL_STATUSES},
    {"search": "e_c", "statuses": ALL_STATUSES},  # must not match "snakeXcase"
    {"search": "_"},
    {"search": "k\\s", "statuses": ALL_STATUSES},  # must not match "backslash"
    {"search": "\\"},
    {"search": "no such campaign"},
    {"tags": ["PROMO"]},
    {"tags": ["news", "Spring"], "statuses": ALL_STATUSES},
    {"tags": ["a_b"]},  # must not match "axb"
    {"tags": []},  # empty = no tag filter
    {"tags": ["RED-blue"], "statuses": ALL_STATUSES},
    {"tags": ["promo"], "search": "sale", "statuses": ALL_STATUSES},
    {"channel": "SMS", "tags": ["weekly", "A_B", "summer"], "statuses": ["DRAFT", "ARCHIVED", "STOPPED"]},
    {"channel": "EMAIL", "search": "E", "tags": ["promo", "news", "fruit"]},
]
SORTS = list(ORDERINGS)


FIRST_PAGES = (
    "query($filter: CampaignFilter, $sort: CampaignSort!) { "
    + " ".join(
        f"p{n}: campaigns(filter: $filter, sort: $sort, first: {n}) {{ totalCount "
        "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id } } }"
        for n in (1, 3, 7, MAX_PAGE_SIZE)
    )
    + " }"
)


@pytest.mark.parametrize("sort", SORTS)
async def test_first_pages_of_every_filter_give_the_expected_order(
    gql: GraphQLClient, seeded: Seeded, sort: str
) -> None:
    # No cursor involved: filters and ordering alone, every sort (a page of 100 holds the whole list).
    for filter in FILTERS:
        expected = await expected_ids(seeded, sort, filter)
        data = await gql(FIRST_PAGES, {"filter": filter, "sort": sort}, key=seeded.sandbox.admin)
        for size in (1, 3, 7, MAX_PAGE_SIZE):
            page = data[f"p{size}"]
            cursors = [edge["cursor"] for edge in page["edges"]]
            assert [edge["node"]["id"] for edge in page["edges"]] == expected[:size], (sort, filter, size)
            assert page["totalCount"] == len(expected), (sort, filter, size)
            assert page["pageInfo"] == {
                "hasNextPage": len(expected) > size,
                "hasPreviousPage": False,
                "startCursor": cursors[0] if cursors else None,
                "endCursor": cursors[-1] if cursors else None,
            }, (sort, filter, size)


@pytest.mark.parametrize("sort", SORTS)
async def test_walking_every_filter_gives_the_expected_order(gql: GraphQLClient, seeded: Seeded, sort: str) -> None:
    for filter in FILTERS:
        expected = await expected_ids(seeded, sort, filter)
        for size in (1, 3, 7):
            await walk(gql, seeded, sort, filter, size, expected)


async def test_the_seed_covers_what_the_walks_rely_on(seeded: Seeded) -> None:
    # Guards the test itself: ties on updated_at and name, every status, non-empty literal-match cases.
    assert sum(spec[4] == TIE for spec in SPECS) >= 4
    assert sum(r.name == "Newsletter" and r.status in DEFAULT_STATUSES for r in seeded.rows) >= 3
    assert {r.status for r in seeded.rows} == set(ALL_STATUSES)
    everything = {"statuses": ALL_STATUSES}
    for search in ("50%", "e_c", "k\\s", "%", "_", "\\"):
        assert await expected_ids(seeded, "NAME_ASC", {**everything, "search": search})
    summaries = {tuple(a["summary"].values()) for a in seeded.alone.values()}
    assert len(summaries) == len(RUNS) + 1  # each campaign with runs differs, the others are all zero


async def test_defaults_first_zero_and_first_above_the_maximum(gql: GraphQLClient, seeded: Seeded) -> None:
    key = seeded.sandbox.admin
    everything = {"statuses": ALL_STATUSES}
    expected = await expected_ids(seeded, "CREATED_DESC", everything)
    assert len(expected) > 20
    # No sort = CREATED_DESC; no `first` = 20.
    query = "query($f: CampaignFilter) { campaigns(filter: $f) { totalCount pageInfo { hasNextPage } nodes { id } } }"
    default = (await gql(query, {"f": everything}, key=key))["campaigns"]
    assert default == {
        "totalCount": len(expected),
        "pageInfo": {"hasNextPage": True},
        "nodes": [{"id": i} for i in expected[:20]],
    }

    zero = (await gql(IDS_PAGE, {"filter": everything, "sort": "NAME_ASC", "first": 0}, key=key))["campaigns"]
    assert zero["edges"] == zero["nodes"] == [] and zero["totalCount"] == len(expected)
    assert zero["pageInfo"]["hasPreviousPage"] is False
    assert zero["pageInfo"]["startCursor"] is None and zero["pageInfo"]["endCursor"] is None
    # After a cursor, `first: 0` still answers the count and no edges.
    cursor = (await gql(IDS_PAGE, {"sort": "NAME_ASC", "first": 2}, key=key))["campaigns"]["pageInfo"]["endCursor"]
    zero_after = (await gql(IDS_PAGE, {"sort": "NAME_ASC", "first": 0, "after": cursor}, key=key))["campaigns"]
    assert zero_after["edges"] == [] and zero_after["pageInfo"]["hasPreviousPage"] is True

    # The maximum itself is accepted.
    largest = await gql(IDS_PAGE, {"filter": everything, "sort": "NAME_ASC", "first": MAX_PAGE_SIZE}, key=key)
    assert largest["campaigns"]["pageInfo"]["hasNextPage"] is False
    for first in (MAX_PAGE_SIZE + 1, -1):
        for document, variables in (
            (IDS_PAGE, {"sort": "CREATED_DESC", "first": first}),
            (f"query {{ campaigns(first: {first}) {{ totalCount }} }}", {}),
        ):
            body = (await gql.raw(document, variables, key)).json()
            assert body.get("data") is None, body
            assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
                (f"`first` must be between 0 and {MAX_PAGE_SIZE}.", "BAD_USER_INPUT")
            ]


async def test_first_zero_says_items_follow(gql: GraphQLClient, seeded: Seeded) -> None:
    zero = (await gql(IDS_PAGE, {"sort": "NAME_ASC", "first": 0}, key=seeded.sandbox.admin))["campaigns"]
    assert zero["totalCount"] > 0
    assert zero["pageInfo"]["hasNextPage"] is True


def _cursor(values: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode()


async def _refused(gql: GraphQLClient, seeded: Seeded, sort: str, after: str) -> None:
    body = (await gql.raw(IDS_PAGE, {"sort": sort, "first": 3, "after": after}, seeded.sandbox.admin)).json()
    assert body.get("data") is None, (sort, after, body)
    assert [(e["message"], e["extensions"]["code"], e.get("path")) for e in body["errors"]] == [
        ("`after` is not a cursor of this list.", "BAD_USER_INPUT", ["campaigns"])
    ], (sort, after)


@pytest.mark.parametrize(
    "after",
    [
        "not-a-cursor",
        "!!!",
        "é",
        _cursor({"id": 1}),
        _cursor("x"),
        _cursor([]),
        _cursor([1, 2, 3]),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_a_garbage_cursor_is_a_bad_user_input(gql: GraphQLClient, seeded: Seeded, after: str) -> None:
    for sort in SORTS:
        await _refused(gql, seeded, sort, after)


@pytest.mark.parametrize(
    ("sort", "values"),
    [
        ("CREATED_DESC", ["x"]),
        ("CREATED_DESC", [None]),
        ("CREATED_ASC", [{"a": 1}]),
        ("NAME_ASC", ["a", "b"]),
        ("MODIFIED_DESC", ["not a time", 1]),
    ],
)
async def test_a_cursor_with_values_of_the_wrong_type_is_a_bad_user_input(
    gql: GraphQLClient, seeded: Seeded, sort: str, values: list[Any]
) -> None:
    await _refused(gql, seeded, sort, _cursor(values))


async def test_a_tag_with_the_separator_is_refused_and_matches_nothing(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    # Tags are stored as "|a|b|" for the filter: a tag "red|blue" would match filters on "red" and on "blue",
    # and a filter on "red|blue" would match a campaign tagged "red" and "blue".
    body = (
        await gql.raw(
            "mutation($input: CampaignCreateInput!) { campaignCreate(input: $input) { __typename "
            "... on InvalidInputError { fieldErrors { field code } } } }",
            {"input": {"name": "Barred", "tags": ["ok", "red|blue"]}},
            sandbox.admin,
        )
    ).json()
    assert body["data"]["campaignCreate"] == {
        "__typename": "InvalidInputError",
        "fieldErrors": [{"field": "input.tags.1", "code": "INVALID_CHARACTER"}],
    }
    await create(gql, sandbox, {"name": "Two tags", "tags": ["red", "blue"]})
    for tags, found in ((["red|blue"], 0), (["red"], 1), (["red|blue", "blue"], 1)):
        variables = {"filter": {"tags": tags}, "sort": "CREATED_DESC", "first": 10}
        page = (await gql(IDS_PAGE, variables, key=sandbox.admin))["campaigns"]
        assert (len(page["edges"]), page["totalCount"]) == (found, found), tags


async def test_an_empty_after_is_no_cursor(gql: GraphQLClient, seeded: Seeded) -> None:
    # "" is no cursor: the first page.
    expected = await expected_ids(seeded, "NAME_ASC", None)
    page = (await gql(IDS_PAGE, {"sort": "NAME_ASC", "first": 3, "after": ""}, key=seeded.sandbox.admin))["campaigns"]
    assert [edge["node"]["id"] for edge in page["edges"]] == expected[:3]
    assert page["pageInfo"]["hasPreviousPage"] is False and page["pageInfo"]["hasNextPage"] is True


async def test_a_cursor_of_a_sort_with_other_keys_is_refused(gql: GraphQLClient, seeded: Seeded) -> None:
    key = seeded.sandbox.admin
    cursors = {}
    for sort in SORTS:
        page = (await gql(IDS_PAGE, {"sort": sort, "first": 2}, key=key))["campaigns"]
        cursors[sort] = page["pageInfo"]["endCursor"]
    one_key, two_keys = {"CREATED_DESC", "CREATED_ASC"}, {"MODIFIED_DESC", "NAME_ASC"}
    for source in SORTS:
        for target in two_keys if source in one_key else one_key:
            await _refused(gql, seeded, target, cursors[source])


async def test_a_page_answers_as_each_campaign_does_alone(gql: GraphQLClient, seeded: Seeded) -> None:
    # One page of every campaign, every field: the prefetched path against `campaign(id:)`.
    variables = {"filter": {"statuses": ALL_STATUSES}, "sort": "MODIFIED_DESC", "first": MAX_PAGE_SIZE}
    page = (await gql(FULL_PAGE, variables, key=seeded.sandbox.admin))["campaigns"]
    nodes = [edge["node"] for edge in page["edges"]]
    assert {n["id"] for n in nodes} == {r.id for r in seeded.rows}
    assert {n["id"] for n in nodes}.isdisjoint(seeded.foreign_ids)
    for node in nodes:
        assert node == seeded.alone[node["id"]]
    # The page is not trivially uniform: relations set and null, distinct summaries.
    assert {n["preset"]["name"] if n["preset"] else None for n in nodes} == {"inbox", None}
    assert {n["namespace"]["code"] if n["namespace"] else None for n in nodes} == {"Email", None}
    assert any(n["summary"]["actionsFailed"] for n in nodes)
    updated = {r.id: spec[4] for r, spec in zip(seeded.rows, SPECS, strict=True)}
    assert all(datetime.fromisoformat(n["updatedAt"]) == updated[n["id"]] for n in nodes)
    by_id = {n["id"]: n for n in nodes}
    for index, figures in RUNS.items():
        targeted, excluded, sent, failed = (sum(f[k] for f in figures) for k in range(4))
        assert by_id[seeded.rows[index].id]["summary"] == {
            "profilesTargeted": targeted + excluded,
            "actionsDelivered": sent,
            "actionsFailed": failed,
            "excluded": excluded,
        }
