"""Segment rules compiled to one parameterised SQL predicate over the profile table (see segment_rules for the
semantics, shared with the pure-Python evaluator). Imports neither Tortoise nor Strawberry; values always travel
as parameters, the only text that reaches SQL comes from this module's fixed fragments."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from models.audience.segment_rules import (
    _LIST_OPS,
    _PRESENCE_OPS,
    _TEXT_OPS,
    Operator,
    RuleCycleError,
    SegmentRef,
    value_kind,
    window_bounds,
)
from models.sql.params import Dialect, SqlParams

_TRUE, _FALSE = "(1 = 1)", "(1 = 0)"


def compile_rule(
    tree: Any,
    *,
    params: SqlParams,
    now: datetime,
    segments: Mapping[int, SegmentRef],
    profile: str = "p",
) -> str:
    """One boolean SQL expression over the `profile` table alias; values are appended to `params`.

    Every condition is made two-valued (never NULL), so `NOT` agrees with the evaluator.
    """
    compiler = _Compiler(params, now, segments, profile)
    return compiler.node(tree, frozenset())


def attribute_text(path: str, params: SqlParams, profile: str = "p") -> str:
    """SQL for the attribute at `path` when it is a JSON string, else NULL (e.g. an address field)."""
    return _Compiler(params, datetime.now(), {}, profile).typed(path, "string")


class _Compiler:
    def __init__(self, params: SqlParams, now: datetime, segments: Mapping[int, SegmentRef], alias: str) -> None:
        self.params = params
        self.pg = params.dialect is Dialect.POSTGRES
        self.now = now
        self.segments = segments
        self.alias = alias

    def node(self, node: dict[str, Any], stack: frozenset[int]) -> str:
        ((key, child),) = node.items()
        if key in ("all", "any"):
            if not child:
                return _TRUE if key == "all" else _FALSE
            joiner = " AND " if key == "all" else " OR "
            return "(" + joiner.join(self.node(item, stack) for item in child) + ")"
        if key == "not":
            return f"(NOT {self.node(child, stack)})"
        if key == "inSegment":
            return self.in_segment(child, stack)
        return self.condition(child)

    def in_segment(self, segment_id: int, stack: frozenset[int]) -> str:
        ref = self.segments.get(segment_id)
        if ref is None:
            return _FALSE
        if ref.kind == "STATIC":
            placeholder = self.params.add(segment_id)
            return (
                f"({self.alias}.id IN (SELECT segment_member.profile_id FROM segment_member "
                f"WHERE segment_member.segment_id = {placeholder}))"
            )
        if segment_id in stack:
            raise RuleCycleError(segment_id)
        return self.node(ref.definition, stack | {segment_id})

    # -- attribute access: each returns an expression that is NULL unless the attribute has that type

    def _path(self, path: str) -> str:
        if self.pg:
            return f"{self.params.add(path.split('.'))}::text[]"
        return self.params.add("$." + path)

    def json_type(self, path: str) -> str:
        if self.pg:
            return f"jsonb_typeof({self.alias}.attributes #> {self._path(path)})"
        return f"json_type({self.alias}.attributes, {self._path(path)})"

    def typed(self, path: str, kind: str) -> str:
        a = self.alias
        if self.pg:
            pg_type = {"string": "string", "number": "number", "boolean": "boolean"}[kind]
            extracted = f"{a}.attributes #>> {self._path(path)}"
            if kind == "number":
                extracted = f"({extracted})::numeric"
            value = f"(CASE WHEN {self.json_type(path)} = '{pg_type}' THEN {extracted} END)"
            return f'{value} COLLATE "C"' if kind == "string" else value
        if kind == "boolean":
            # json_type says 'true' or 'false'; booleans compare as that text (parameters too).
            return f"(CASE WHEN {self.json_type(path)} IN ('true', 'false') THEN {self.json_type(path)} END)"
        types = "('text')" if kind == "string" else "('integer', 'real')"
        extracted = f"json_extract({a}.attributes, {self._path(path)})"
        return f"(CASE WHEN {self.json_type(path)} IN {types} THEN {extracted} END)"

    def value(self, value: Any) -> str:
        kind = value_kind(value)
        if kind == "boolean":
            value = "true" if value else "false"
        placeholder = self.params.add(value)
        if not self.pg:
            return placeholder
        return f"{placeholder}::numeric" if kind == "number" else f"{placeholder}::text"

    def value_list(self, values: list[Any]) -> str:
        kind = value_kind(values[0])
        if kind == "boolean":
            values = ["true" if v else "false" for v in values]
        if self.pg:
            return f"ANY({self.params.add(list(values))}::{'numeric' if kind == 'number' else 'text'}[])"
        return f"(SELECT value FROM json_each({self.params.add(orjson.dumps(values).decode())}))"

    def two_valued(self, expression: str) -> str:
        return f"COALESCE({expression}, {_FALSE})"

    def condition(self, condition: Mapping[str, Any]) -> str:
        operator = Operator(condition["operator"])
        path = condition["path"]
        value = condition.get("value")
        if operator in _PRESENCE_OPS:
            exists = self.two_valued(f"{self.json_type(path)} <> 'null'")
            return exists if operator is Operator.EXISTS else f"(NOT {exists})"
        if operator is Operator.WITHIN_LAST_DAYS:
            low, high = window_bounds(self.now, value)
            attribute = self.typed(path, "string")
            return self.two_valued(f"{attribute} BETWEEN {self.value(low)} AND {self.value(high)}")
        if operator in _LIST_OPS:
            attribute = self.typed(path, value_kind(value[0]))
            values = self.value_list(value)
            if self.pg:
                test = f"{attribute} = {values}" if operator is Operator.IN else f"NOT ({attribute} = {values})"
            else:
                test = f"{attribute} {'IN' if operator is Operator.IN else 'NOT IN'} {values}"
            return self.two_valued(test)
        if operator is Operator.BETWEEN:
            attribute = self.typed(path, value_kind(value[0]))
            return self.two_valued(f"{attribute} BETWEEN {self.value(value[0])} AND {self.value(value[1])}")
        attribute = self.typed(path, value_kind(value))
        if operator in _TEXT_OPS:
            return self.two_valued(self.text_test(operator, attribute, value))
        sql_operator = {
            Operator.EQ: "=",
            Operator.NE: "<>",
            Operator.GT: ">",
            Operator.GTE: ">=",
            Operator.LT: "<",
            Operator.LTE: "<=",
        }[operator]
        return self.two_valued(f"{attribute} {sql_operator} {self.value(value)}")

    def text_test(self, operator: Operator, attribute: str, value: str) -> str:
        if operator is Operator.CONTAINS:
            function = "strpos" if self.pg else "instr"
            return f"{function}({attribute}, {self.value(value)}) > 0"
        length = f"char_length({self.value(value)})" if self.pg else f"length({self.value(value)})"
        if operator is Operator.STARTS_WITH:
            return f"substr({attribute}, 1, {length}) = {self.value(value)}"
        if self.pg:
            return f"right({attribute}, {length}) = {self.value(value)}"
        return f"substr({attribute}, -{length}) = {self.value(value)}"
