"""Segment rules compiled to SQL on the test database (SQLite or PostgreSQL) agree with the expected members
and with the pure-Python evaluator: every operator on fixed data, and random rules on random profiles."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tortoise import connections

from models.audience.entities import Profile, Segment, SegmentKind, SegmentMember
from models.audience.segment_rules import SegmentRef, evaluate, validate_rule
from models.audience.segment_sql import compile_rule
from models.sql.params import SqlParams
from models.sql.reads import dialect_of
from models.tenancy.sandbox import Sandbox
from tests.conftest import RunningServer, new_sandbox

NOW = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)


def iso(delta_days: float, suffix: str = "Z") -> str:
    return (NOW - timedelta(days=delta_days)).strftime("%Y-%m-%dT%H:%M:%S") + suffix


FIXTURE_PROFILES: dict[str, dict[str, Any]] = {
    "ann": {
        "person": {"name": {"firstName": "Ann"}},
        "loyalty": {"points": 150, "tier": "gold"},
        "country": "FR",
        "vip": True,
        "lastPurchase": iso(2),
        "city": "Évry",
    },
    "bob": {
        "person": {"name": {"firstName": "Bob"}},
        "loyalty": {"points": 50},
        "country": "DE",
        "vip": False,
        "lastPurchase": iso(40, "+00:00"),
        "city": "Zurich",
    },
    "cat": {
        "person": {"name": {"firstName": "Catherine"}},
        "loyalty": {"points": "many"},
        "country": None,
        "lastPurchase": (NOW - timedelta(days=1)).strftime("%Y-%m-%d"),
    },
    "dan": {"loyalty": {"points": 100.0, "tier": "silver"}, "country": "fr", "tags": ["FR"], "vip": "true"},
    "eve": {},
}


def cond(path: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"condition": {"path": path, "operator": operator, "value": value}}


FIRST = "person.name.firstName"
POINTS = "loyalty.points"
OPERATOR_CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("EQ string", cond("country", "EQ", "FR"), {"ann"}),
    ("EQ boolean", cond("vip", "EQ", True), {"ann"}),
    ("EQ boolean false", cond("vip", "EQ", False), {"bob"}),
    ("EQ int matches float", cond(POINTS, "EQ", 100), {"dan"}),
    ("EQ string on mixed types", cond(POINTS, "EQ", "many"), {"cat"}),
    ("NE skips missing, null and other types", cond("country", "NE", "FR"), {"bob", "dan"}),
    ("IN strings", cond("country", "IN", ["FR", "DE"]), {"ann", "bob"}),
    ("IN numbers", cond(POINTS, "IN", [50, 150]), {"ann", "bob"}),
    ("IN booleans", cond("vip", "IN", [False]), {"bob"}),
    ("NOT_IN", cond("country", "NOT_IN", ["FR"]), {"bob", "dan"}),
    ("CONTAINS", cond(FIRST, "CONTAINS", "at"), {"cat"}),
    ("CONTAINS ignores arrays", cond("tags", "CONTAINS", "FR"), set()),
    ("STARTS_WITH", cond(FIRST, "STARTS_WITH", "A"), {"ann"}),
    ("STARTS_WITH is case-sensitive", cond(FIRST, "STARTS_WITH", "a"), set()),
    ("STARTS_WITH treats % literally", cond(FIRST, "STARTS_WITH", "%"), set()),
    ("ENDS_WITH", cond(FIRST, "ENDS_WITH", "ine"), {"cat"}),
    ("EXISTS", cond("country", "EXISTS"), {"ann", "bob", "dan"}),
    ("NOT_EXISTS", cond("country", "NOT_EXISTS"), {"cat", "eve"}),
    ("GT number", cond(POINTS, "GT", 100), {"ann"}),
    ("GTE number", cond(POINTS, "GTE", 100), {"ann", "dan"}),
    ("LT number", cond(POINTS, "LT", 100), {"bob"}),
    ("LTE number", cond(POINTS, "LTE", 100.0), {"bob", "dan"}),
    ("GT string", cond("country", "GT", "E"), {"ann", "dan"}),
    ("GT string by code point", cond("city", "GT", "Zz"), {"ann"}),
    ("LT string by code point", cond("city", "LT", "Évry"), {"bob"}),
    ("BETWEEN numbers", cond(POINTS, "BETWEEN", [50, 100]), {"bob", "dan"}),
    ("BETWEEN strings", cond(FIRST, "BETWEEN", ["B", "C"]), {"bob"}),
    ("WITHIN_LAST_DAYS", cond("lastPurchase", "WITHIN_LAST_DAYS", 7), {"ann", "cat"}),
    ("WITHIN_LAST_DAYS longer", cond("lastPurchase", "WITHIN_LAST_DAYS", 60), {"ann", "bob", "cat"}),
    ("all", {"all": [cond("country", "IN", ["FR", "fr"]), cond(POINTS, "GTE", 100)]}, {"ann", "dan"}),
    ("any", {"any": [cond("country", "EQ", "DE"), cond(POINTS, "EQ", "many")]}, {"bob", "cat"}),
    ("not", {"not": cond("country", "EQ", "FR")}, {"bob", "cat", "dan", "eve"}),
    ("empty all is everyone", {"all": []}, {"ann", "bob", "cat", "dan", "eve"}),
    ("empty any is no one", {"any": []}, set()),
    (
        "nested",
        {"all": [{"not": {"any": [cond("vip", "EQ", True), cond("country", "NOT_EXISTS")]}}]},
        {"bob", "dan"},
    ),
]


async def matching_ids(sandbox_id: int, rule: Any, segments: dict[int, SegmentRef]) -> set[int]:
    params = SqlParams(dialect_of())
    sandbox = params.add(sandbox_id)
    predicate = compile_rule(rule, params=params, now=NOW, segments=segments)
    rows = await connections.get("default").execute_query_dict(
        f"SELECT p.id FROM profile p WHERE p.sandbox_id = {sandbox} AND {predicate}", params.values
    )
    return {row["id"] for row in rows}


@pytest.fixture(scope="module")
async def fixture_sandbox(server: RunningServer) -> tuple[int, dict[str, int]]:
    keys = await new_sandbox("rules")
    sandbox = await Sandbox.get(name=keys.name)
    ids = {}
    for name, attributes in FIXTURE_PROFILES.items():
        ids[name] = (await Profile.create(sandbox_id=sandbox.id, attributes=attributes)).id
    return sandbox.id, ids


@pytest.mark.parametrize(("case", "rule", "expected"), OPERATOR_CASES, ids=[c[0] for c in OPERATOR_CASES])
async def test_operator_on_fixture_data(
    fixture_sandbox: tuple[int, dict[str, int]], case: str, rule: dict[str, Any], expected: set[str]
) -> None:
    sandbox_id, ids = fixture_sandbox
    assert validate_rule(rule) == []
    names = {pid: name for name, pid in ids.items()}

    found = {names[pid] for pid in await matching_ids(sandbox_id, rule, {})}
    evaluated = {
        name
        for name, pid in ids.items()
        if evaluate(rule, FIXTURE_PROFILES[name], profile_id=pid, now=NOW, segments={})
    }

    assert found == expected
    assert evaluated == expected


async def test_in_segment_static_and_rule(fixture_sandbox: tuple[int, dict[str, int]]) -> None:
    sandbox_id, ids = fixture_sandbox
    static = await Segment.create(sandbox_id=sandbox_id, name="static", kind=SegmentKind.STATIC)
    for name in ("bob", "cat"):
        await SegmentMember.create(segment_id=static.id, profile_id=ids[name])
    french = cond("country", "IN", ["FR", "fr"])
    rule_segment = await Segment.create(sandbox_id=sandbox_id, name="french", kind=SegmentKind.RULE, definition=french)
    segments = {
        static.id: SegmentRef("STATIC", None, frozenset({ids["bob"], ids["cat"]})),
        rule_segment.id: SegmentRef("RULE", french),
    }
    rule = {"any": [{"inSegment": static.id}, {"all": [{"inSegment": rule_segment.id}, cond(POINTS, "GT", 100)]}]}
    names = {pid: name for name, pid in ids.items()}

    found = {names[pid] for pid in await matching_ids(sandbox_id, rule, segments)}

    assert found == {"bob", "cat", "ann"}
    assert {
        name
        for name, pid in ids.items()
        if evaluate(rule, FIXTURE_PROFILES[name], profile_id=pid, now=NOW, segments=segments)
    } == found


async def test_values_travel_as_parameters(fixture_sandbox: tuple[int, dict[str, int]]) -> None:
    hostile = "x' OR 1=1 --"
    params = SqlParams(dialect_of())
    sql = compile_rule(cond("country", "EQ", hostile), params=params, now=NOW, segments={})
    assert hostile not in sql and "country" not in sql
    assert hostile in params.values
    sandbox_id, _ = fixture_sandbox
    assert await matching_ids(sandbox_id, cond("country", "EQ", hostile), {}) == set()


# ---- property: SQL == Python on random profiles and rules ---------------------------------------------

PATHS = ["a", "b", "c", "c.a", "c.b"]
STRINGS = ["a", "ab", "ba", "B", "é", "%", iso(1), iso(3, "+00:00"), iso(10)[:10]]
NUMBERS = [-1, 0, 1, 2, -1.5, 0.25, 1e3]

scalars = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans())
LEAVES: list[Any] = [*STRINGS, *NUMBERS, True, False, None, ["a", 1], []]


def random_attributes(rnd: random.Random) -> dict[str, Any]:
    """Drawn uniformly: Hypothesis favours simple values, which rarely split a population."""

    def leaf() -> Any:
        return rnd.choice(LEAVES)

    attributes: dict[str, Any] = {}
    for key in ("a", "b"):
        if rnd.random() < 0.85:
            attributes[key] = leaf()
    if rnd.random() < 0.85:
        attributes["c"] = {k: leaf() for k in ("a", "b") if rnd.random() < 0.8} if rnd.random() < 0.7 else leaf()
    return attributes


non_empty_strings = st.sampled_from([s for s in STRINGS if s])
orderable = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS))


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    operator = draw(
        st.sampled_from(
            [
                "EQ",
                "NE",
                "IN",
                "NOT_IN",
                "CONTAINS",
                "STARTS_WITH",
                "ENDS_WITH",
                "EXISTS",
                "NOT_EXISTS",
                "GT",
                "GTE",
                "LT",
                "LTE",
                "BETWEEN",
                "WITHIN_LAST_DAYS",
            ]
        )
    )
    if operator in ("EQ", "NE"):
        value = draw(scalars)
    elif operator in ("IN", "NOT_IN"):
        kind = draw(st.sampled_from([st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans()]))
        value = draw(st.lists(kind, min_size=1, max_size=3))
    elif operator in ("CONTAINS", "STARTS_WITH", "ENDS_WITH"):
        value = draw(non_empty_strings)
    elif operator in ("EXISTS", "NOT_EXISTS"):
        value = None
    elif operator == "BETWEEN":
        kind = draw(st.sampled_from([st.sampled_from(STRINGS), st.sampled_from(NUMBERS)]))
        value = [draw(kind), draw(kind)]
    elif operator == "WITHIN_LAST_DAYS":
        value = draw(st.integers(1, 12))
    else:
        value = draw(orderable)
    return cond(draw(st.sampled_from(PATHS)), operator, value)


rules = st.recursive(
    conditions(),
    lambda children: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(children, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(children, max_size=3)),
        st.builds(lambda item: {"not": item}, children),
    ),
    max_leaves=4,
)


@pytest.fixture(scope="module")
async def property_sandbox(server: RunningServer) -> int:
    keys = await new_sandbox("prop")
    return (await Sandbox.get(name=keys.name)).id


def every_condition() -> list[dict[str, Any]]:
    """Each operator with each value of the pools (and a few lists), on each path."""
    strings, numbers = STRINGS, NUMBERS
    values: dict[str, list[Any]] = {
        "EQ": [*strings, *numbers, True, False],
        "NE": [*strings, *numbers, True, False],
        "IN": [["a", "ba"], [0, 0.25, 1e3], [True], ["é", "%"]],
        "NOT_IN": [["a", "ba"], [0, 0.25, 1e3], [False], ["B"]],
        "CONTAINS": strings,
        "STARTS_WITH": strings,
        "ENDS_WITH": strings,
        "EXISTS": [None],
        "NOT_EXISTS": [None],
        "GT": [*strings, *numbers],
        "GTE": [*strings, *numbers],
        "LT": [*strings, *numbers],
        "LTE": [*strings, *numbers],
        "BETWEEN": [["a", "b"], ["B", "é"], [-1, 1], [0.25, 1e3], [2, 1]],
        "WITHIN_LAST_DAYS": [1, 2, 4, 11, 30],
    }
    return [cond(path, op, value) for op, options in values.items() for value in options for path in PATHS]


async def test_every_condition_on_a_random_population(property_sandbox: int) -> None:
    rnd = random.Random(20261102)
    profiles = [random_attributes(rnd) for _ in range(60)]
    await Profile.filter(sandbox_id=property_sandbox).delete()
    ids = [(await Profile.create(sandbox_id=property_sandbox, attributes=attrs)).id for attrs in profiles]
    mismatches = []
    split = 0
    for rule in every_condition():
        found = await matching_ids(property_sandbox, rule, {})
        expected = {
            pid
            for pid, attrs in zip(ids, profiles, strict=True)
            if evaluate(rule, attrs, profile_id=pid, now=NOW, segments={})
        }
        split += 0 < len(expected) < len(ids)
        if found != expected:
            mismatches.append(rule)
    assert mismatches == []
    assert split > 200  # the population is varied enough for most conditions to split it


def sub_rules(rule: Any) -> list[Any]:
    """The rule and each of its sub-rules: every one is checked on its own."""
    found = [rule]
    ((key, child),) = rule.items()
    if key in ("all", "any"):
        for item in child:
            found.extend(sub_rules(item))
    elif key == "not":
        found.extend(sub_rules(child))
    return found


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rnd=st.randoms(use_true_random=False), rule_list=st.lists(rules, min_size=1, max_size=6))
async def test_sql_equals_python_evaluation(property_sandbox: int, rnd: random.Random, rule_list: list[Any]) -> None:
    profiles = [random_attributes(rnd) for _ in range(16)]
    await Profile.filter(sandbox_id=property_sandbox).delete()
    ids = [(await Profile.create(sandbox_id=property_sandbox, attributes=attrs)).id for attrs in profiles]

    for rule in [sub for top in rule_list for sub in sub_rules(top)]:
        assert validate_rule(rule) == []
        found = await matching_ids(property_sandbox, rule, {})
        expected = {
            pid
            for pid, attrs in zip(ids, profiles, strict=True)
            if evaluate(rule, attrs, profile_id=pid, now=NOW, segments={})
        }
        assert found == expected, (rule, profiles)
