"""Segment rules: validation and a pure-Python evaluator (the compiler to SQL is segment_sql, same semantics).

A rule is a tree of plain JSON values, the form stored in `segment.definition`:

    {"all": [rule, ...]}   every child holds (an empty list holds for everyone)
    {"any": [rule, ...]}   at least one child holds (an empty list holds for no one)
    {"not": rule}
    {"condition": {"path": "loyalty.points", "operator": "GTE", "value": 100}}
    {"inSegment": 12}      member of segment 12 (database id, same sandbox)

Semantics, shared by the evaluator and both SQL dialects: `path` is a dotted path into the profile's
attributes. A comparison holds only when the attribute exists and has the JSON type of the value
(string, number or boolean); a missing attribute, JSON null or another type makes it false — wrap the
condition in `not` to include those. Strings compare by code point and case-sensitively.
WITHIN_LAST_DAYS compares ISO-8601 UTC text (`2026-11-02T10:00:00Z`) with the window ending now.

Imports neither Tortoise nor Strawberry. SQL values always travel as parameters; the only text that
reaches SQL comes from this module's fixed fragments.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

MAX_DEPTH = 10
MAX_CONDITIONS = 200
MAX_EXPANDED_CONDITIONS = 1000
MAX_LIST_ITEMS = 500
MAX_STRING_LENGTH = 1000
MAX_DAYS = 36500
MAX_SAFE_INTEGER = 2**53
PATH_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
MAX_PATH_KEYS = 10


class Operator(StrEnum):
    EQ = "EQ"
    NE = "NE"
    IN = "IN"
    NOT_IN = "NOT_IN"
    CONTAINS = "CONTAINS"
    STARTS_WITH = "STARTS_WITH"
    ENDS_WITH = "ENDS_WITH"
    EXISTS = "EXISTS"
    NOT_EXISTS = "NOT_EXISTS"
    GT = "GT"
    GTE = "GTE"
    LT = "LT"
    LTE = "LTE"
    BETWEEN = "BETWEEN"
    WITHIN_LAST_DAYS = "WITHIN_LAST_DAYS"


_SCALAR_OPS = {Operator.EQ, Operator.NE}
_LIST_OPS = {Operator.IN, Operator.NOT_IN}
_TEXT_OPS = {Operator.CONTAINS, Operator.STARTS_WITH, Operator.ENDS_WITH}
_PRESENCE_OPS = {Operator.EXISTS, Operator.NOT_EXISTS}
_ORDER_OPS = {Operator.GT, Operator.GTE, Operator.LT, Operator.LTE}


@dataclass(frozen=True, slots=True)
class RuleProblem:
    field: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """What the compiler and evaluator need to know about a segment named by `inSegment`."""

    kind: str  # "RULE" or "STATIC"
    definition: Any = None
    members: frozenset[int] = field(default_factory=frozenset)  # evaluator only


class RuleCycleError(Exception):
    """Segments reach themselves through `inSegment`; validation on save prevents it."""


# ---------------------------------------------------------------------------------------------------------
# Validation


def value_kind(value: Any) -> str:
    """JSON type class of a value: string, number, boolean, null, array, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_rule(tree: Any, *, field: str = "rule") -> list[RuleProblem]:
    """Every problem of a rule tree's shape, operators and values; empty when the rule can be saved."""
    problems: list[RuleProblem] = []
    conditions = 0
    too_deep = False

    def visit(node: Any, path: str, depth: int) -> None:
        nonlocal conditions, too_deep
        if depth > MAX_DEPTH:
            if not too_deep:
                problems.append(RuleProblem(path, "TOO_DEEP", f"rules may nest at most {MAX_DEPTH} levels"))
            too_deep = True
            return
        if not isinstance(node, dict) or len(node) != 1:
            problems.append(
                RuleProblem(path, "INVALID_NODE", "give exactly one of all, any, not, condition, inSegment")
            )
            return
        ((key, child),) = node.items()
        if key in ("all", "any"):
            if not isinstance(child, list):
                problems.append(RuleProblem(f"{path}.{key}", "INVALID_NODE", "must be a list of rules"))
                return
            for i, item in enumerate(child):
                visit(item, f"{path}.{key}[{i}]", depth + 1)
        elif key == "not":
            visit(child, f"{path}.not", depth + 1)
        elif key == "condition":
            conditions += 1
            problems.extend(_validate_condition(child, f"{path}.condition"))
        elif key == "inSegment":
            conditions += 1
            if not isinstance(child, int) or isinstance(child, bool) or child <= 0:
                problems.append(RuleProblem(f"{path}.inSegment", "NOT_FOUND", "no such segment"))
        else:
            problems.append(
                RuleProblem(path, "INVALID_NODE", "give exactly one of all, any, not, condition, inSegment")
            )

    visit(tree, field, 1)
    if conditions > MAX_CONDITIONS:
        problems.append(RuleProblem(field, "TOO_MANY_CONDITIONS", f"{conditions} conditions; at most {MAX_CONDITIONS}"))
    return problems


def _validate_condition(condition: Any, path: str) -> list[RuleProblem]:
    if not isinstance(condition, dict):
        return [RuleProblem(path, "INVALID_NODE", "a condition needs path, operator and value")]
    problems = []
    attr_path = condition.get("path")
    if not isinstance(attr_path, str) or not _valid_path(attr_path):
        problems.append(
            RuleProblem(
                f"{path}.path",
                "INVALID_PATH",
                f"a dotted path of at most {MAX_PATH_KEYS} keys, each a letter or '_' then letters, "
                "digits or '_' (e.g. person.name.firstName)",
            )
        )
    try:
        operator = Operator(condition.get("operator"))
    except ValueError:
        problems.append(RuleProblem(f"{path}.operator", "UNKNOWN_OPERATOR", "unknown operator"))
        return problems
    problem = _value_problem(operator, condition.get("value"))
    if problem:
        problems.append(RuleProblem(f"{path}.value", "INVALID_VALUE", problem))
    return problems


def _valid_path(path: str) -> bool:
    keys = path.split(".")
    return len(keys) <= MAX_PATH_KEYS and all(PATH_KEY_RE.match(key) for key in keys)


def _scalar_problem(value: Any) -> str | None:
    kind = value_kind(value)
    if kind not in ("string", "number", "boolean"):
        return "must be a string, a number or a boolean"
    if kind == "string" and (len(value) > MAX_STRING_LENGTH or "\x00" in value):
        return f"strings hold at most {MAX_STRING_LENGTH} characters and no NUL"
    if kind == "number" and ((isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_SAFE_INTEGER):
        return f"numbers must be finite and within ±{MAX_SAFE_INTEGER}"
    return None


def _value_problem(operator: Operator, value: Any) -> str | None:
    kind = value_kind(value)
    if operator in _PRESENCE_OPS:
        return None if value is None else f"{operator} takes no value"
    if operator in _SCALAR_OPS:
        return _scalar_problem(value)
    if operator in _LIST_OPS:
        if kind != "array" or not 1 <= len(value) <= MAX_LIST_ITEMS:
            return f"{operator} needs a list of 1 to {MAX_LIST_ITEMS} values"
        for item in value:
            if problem := _scalar_problem(item):
                return problem
        if len({value_kind(item) for item in value}) != 1:
            return f"the values of {operator} must all be of one type"
        return None
    if operator in _TEXT_OPS:
        if kind != "string" or not value:
            return f"{operator} needs a non-empty string"
        return _scalar_problem(value)
    if operator in _ORDER_OPS:
        if kind not in ("string", "number"):
            return f"{operator} needs a number or a string"
        return _scalar_problem(value)
    if operator is Operator.BETWEEN:
        if kind != "array" or len(value) != 2 or value_kind(value[0]) != value_kind(value[1]):
            return "BETWEEN needs [low, high]: two numbers or two strings"
        if value_kind(value[0]) not in ("string", "number"):
            return "BETWEEN needs [low, high]: two numbers or two strings"
        return _scalar_problem(value[0]) or _scalar_problem(value[1])
    if operator is Operator.WITHIN_LAST_DAYS:
        if kind != "number" or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
            return f"WITHIN_LAST_DAYS needs a whole number of days from 1 to {MAX_DAYS}"
        return None
    raise AssertionError(operator)  # pragma: no cover - every operator is handled above


# ---------------------------------------------------------------------------------------------------------
# References between segments


def referenced_segments(tree: Any) -> set[int]:
    """Ids named by `inSegment` anywhere in a (validated) tree."""
    return {node["inSegment"] for node in _walk(tree) if "inSegment" in node}


def in_segment_fields(tree: Any, field: str = "rule") -> list[tuple[str, int]]:
    """(field path, segment id) of every `inSegment` node, for error reporting."""
    found: list[tuple[str, int]] = []

    def visit(node: Any, path: str) -> None:
        if not isinstance(node, dict) or len(node) != 1:
            return
        ((key, child),) = node.items()
        if key in ("all", "any") and isinstance(child, list):
            for i, item in enumerate(child):
                visit(item, f"{path}.{key}[{i}]")
        elif key == "not":
            visit(child, f"{path}.not")
        elif key == "inSegment":
            found.append((f"{path}.inSegment", child))

    visit(tree, field)
    return found


def _walk(tree: Any) -> Iterator[dict[str, Any]]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or len(node) != 1:
            continue
        yield node
        ((key, child),) = node.items()
        if key in ("all", "any") and isinstance(child, list):
            stack.extend(child)
        elif key == "not":
            stack.append(child)


def find_cycle(segment_id: int | None, tree: Any, segments: Mapping[int, SegmentRef]) -> list[int] | None:
    """The chain of segment ids through which `tree` (the new rule of `segment_id`) reaches itself."""
    if segment_id is None:
        return None
    seen: set[int] = set()

    def visit(ref_id: int, chain: list[int]) -> list[int] | None:
        if ref_id == segment_id:
            return [*chain, ref_id]
        if ref_id in seen:
            return None
        seen.add(ref_id)
        ref = segments.get(ref_id)
        if ref is None or ref.kind != "RULE":
            return None
        for child in sorted(referenced_segments(ref.definition)):
            if found := visit(child, [*chain, ref_id]):
                return found
        return None

    for ref_id in sorted(referenced_segments(tree)):
        if found := visit(ref_id, [segment_id]):
            return found
    return None


def expanded_condition_count(tree: Any, segments: Mapping[int, SegmentRef]) -> int:
    """Conditions after inlining every RULE segment reached through `inSegment` (what the SQL holds)."""
    memo: dict[int, int] = {}

    def count(node: Any, stack: frozenset[int]) -> int:
        total = 0
        for item in _walk(node):
            if "condition" in item:
                total += 1
            elif "inSegment" in item:
                ref_id = item["inSegment"]
                ref = segments.get(ref_id)
                if ref is None or ref.kind != "RULE":
                    total += 1
                elif ref_id in stack:
                    raise RuleCycleError(ref_id)
                else:
                    if ref_id not in memo:
                        memo[ref_id] = count(ref.definition, stack | {ref_id})
                    total += memo[ref_id]
        return total

    return count(tree, frozenset())


# ---------------------------------------------------------------------------------------------------------
# Pure-Python evaluation (the reference semantics; the SQL must agree with it)

_MISSING = object()


def lookup(attributes: Any, path: str) -> Any:
    current = attributes
    for key in path.split("."):
        if not isinstance(current, dict) or key not in current:
            return _MISSING
        current = current[key]
    return current


def window_bounds(now: datetime, days: int) -> tuple[str, str]:
    """WITHIN_LAST_DAYS holds for ISO-8601 UTC text between these bounds (inclusive)."""
    start = (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S")
    # '~' sorts after every character of an ISO-8601 timestamp, so any fraction or zone suffix fits.
    return start, now.strftime("%Y-%m-%dT%H:%M:%S") + "~"


def evaluate(
    tree: Any,
    attributes: Mapping[str, Any],
    *,
    profile_id: int,
    now: datetime,
    segments: Mapping[int, SegmentRef],
) -> bool:
    def visit(node: dict[str, Any], stack: frozenset[int]) -> bool:
        ((key, child),) = node.items()
        if key == "all":
            return all(visit(item, stack) for item in child)
        if key == "any":
            return any(visit(item, stack) for item in child)
        if key == "not":
            return not visit(child, stack)
        if key == "inSegment":
            ref = segments.get(child)
            if ref is None:
                return False
            if ref.kind == "STATIC":
                return profile_id in ref.members
            if child in stack:
                raise RuleCycleError(child)
            return visit(ref.definition, stack | {child})
        return _evaluate_condition(child, attributes, now)

    return visit(tree, frozenset())


def _evaluate_condition(condition: Mapping[str, Any], attributes: Mapping[str, Any], now: datetime) -> bool:
    operator = Operator(condition["operator"])
    value = condition.get("value")
    actual = lookup(attributes, condition["path"])
    present = actual is not _MISSING and actual is not None
    if operator is Operator.EXISTS:
        return present
    if operator is Operator.NOT_EXISTS:
        return not present
    if operator is Operator.WITHIN_LAST_DAYS:
        low, high = window_bounds(now, value)
        return isinstance(actual, str) and low <= actual <= high
    expected_kind = value_kind(value[0] if operator in _LIST_OPS or operator is Operator.BETWEEN else value)
    if not present or value_kind(actual) != expected_kind:
        return False
    match operator:
        case Operator.EQ:
            return actual == value
        case Operator.NE:
            return actual != value
        case Operator.IN:
            return actual in value
        case Operator.NOT_IN:
            return actual not in value
        case Operator.CONTAINS:
            return value in actual
        case Operator.STARTS_WITH:
            return actual.startswith(value)
        case Operator.ENDS_WITH:
            return actual.endswith(value)
        case Operator.GT:
            return actual > value
        case Operator.GTE:
            return actual >= value
        case Operator.LT:
            return actual < value
        case Operator.LTE:
            return actual <= value
        case Operator.BETWEEN:
            return value[0] <= actual <= value[1]
    raise AssertionError(operator)  # pragma: no cover
