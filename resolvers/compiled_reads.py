"""Persisted campaign reads compiled into one SQL statement that returns the response's `data` as JSON text
(issue 22: PostgreSQL builds the JSON, as PostGraphile has it do).

A persisted document is compiled once, after stock execution answered it without an error (so it passed every
validation rule and its requested cost is known), when it is made only of what this module can answer:
`campaigns` (only `first`, a literal), `campaign(id:)` and `node(id:)` (a literal id of a campaign, or a
variable of type `ID`/`ID!` resolved per request: a value that is not a campaign's id goes to stock execution),
with campaign fields that are columns, the preset's and segment's id and name, and the summary. Anything else
(other variables, directives, other fields or arguments, totalCount, SQLite) is not compiled: stock execution
answers it. The statement also returns the response's actual cost (resolvers/cost.py `actual_cost`) and `ok`, false
when a value would not have serialized as stock execution serializes it (an unknown enum value, an Int out of
range, tags that are not strings): the request then goes to stock execution, which answers with its error.

Formats are stock execution's: global ids base64("Type:pk"), cursors urlsafe-base64 of `[id]`, datetimes as
Python's `isoformat()` in UTC (microseconds only when not zero), enums by name. Every row is the caller's
sandbox's: the campaign by its `sandbox_id`, its preset and segment by theirs (null otherwise), as the
resolvers read them. tests/graphql/test_compiled_reads.py compares each compiled answer with stock execution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    SelectionSetNode,
    parse,
)

from models.audience.entities import Segment as SegmentModel
from models.campaigns.campaign import Campaign as CampaignModel
from models.campaigns.campaign import list_filter_sql
from models.presets.preset import MessagePreset as MessagePresetModel
from models.sql.params import Dialect, SqlParams
from models.sql.reads import row_reader
from resolvers.campaigns.schema import DEFAULT_LIST_STATUSES
from resolvers.campaigns.types import summary_sql
from resolvers.compiled_arguments import VariableId, campaign_node_pk, id_argument, operation_of
from resolvers.compiled_sql import JsonObject, Unsupported, columns, cursor, datetime_text, global_id, literal
from resolvers.pagination import check_page_size

_INT_MAX = 2**31 - 1
# Campaign fields read straight from a column: GraphQL name -> (model attribute, how the value is written).
_TEXT, _INT, _DATETIME, _ENUM = "text", "int", "datetime", "enum"
_CAMPAIGN_COLUMNS = {
    "name": ("name", _TEXT),
    "description": ("description", _TEXT),
    "type": ("type", _ENUM),
    "category": ("category", _ENUM),
    "channel": ("channel", _ENUM),
    "status": ("status", _ENUM),
    "version": ("version", _INT),
    "priority": ("priority", _INT),
    "throttle": ("throttle_per_second", _INT),
    "activatedAt": ("activated_at", _DATETIME),
    "activatedBy": ("activated_by", _TEXT),
    "stoppedAt": ("stopped_at", _DATETIME),
    "createdAt": ("created_at", _DATETIME),
    "updatedAt": ("updated_at", _DATETIME),
}
# The summary's fields: GraphQL name -> SQL over the summed run figures (alias "s"), as `summary_from_sums`.
_SUMMARY = {
    "audience": 'COALESCE(s."targeted", 0) + COALESCE(s."excluded", 0)',
    "profilesTargeted": 'COALESCE(s."targeted", 0) + COALESCE(s."excluded", 0)',
    "targeted": 'COALESCE(s."targeted", 0)',
    "excluded": 'COALESCE(s."excluded", 0)',
    "sent": 'COALESCE(s."sent", 0)',
    "delivered": 'COALESCE(s."delivered", 0)',
    "actionsDelivered": 'COALESCE(s."delivered", 0)',
    "failed": 'COALESCE(s."failed", 0)',
    "actionsFailed": 'COALESCE(s."failed", 0)',
}
_RELATIONS = {
    "preset": (MessagePresetModel, "preset_id", "MessagePreset"),
    "segment": (SegmentModel, "segment_id", "Segment"),
}


SANDBOX = object()  # a parameter holding the caller's sandbox id


@dataclass(frozen=True, slots=True)
class CompiledRead:
    """One persisted document as a statement; `statement(sandbox_id)` gives its SQL and parameters."""

    document: str
    operation_name: str | None
    requested_cost: int | None
    sql: str
    # The statement's parameters, fixed at compile time but for the caller's sandbox id (SANDBOX stands for it)
    # and the ids given as variables (VariableId).
    fixed_params: tuple[Any, ...]
    variables: frozenset[str] = frozenset()

    def params(self, sandbox_id: int, variables: dict[str, Any] | None = None) -> list[Any] | None:
        """The parameters of one request, or None when its variables are not all campaign ids (stock execution
        then answers: a null, another type's node or an error)."""
        if (variables or {}).keys() != self.variables:
            return None
        values = []
        for value in self.fixed_params:
            if value is SANDBOX:
                value = sandbox_id
            elif isinstance(value, VariableId):
                value = value.pk(variables or {})
                if value is None:
                    return None
            values.append(value)
        return values


class _Compiler:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, max_page_size: int) -> None:
        self.schema = schema
        self.max_page_size = max_page_size
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.params = SqlParams(Dialect.POSTGRES)
        self._sandbox: str | None = None
        self.ctes: list[str] = []
        self.columns: set[str] = set()  # campaign columns the current root reads

    @property
    def sandbox(self) -> str:
        """The placeholder of the caller's sandbox id (added when first used: PostgreSQL refuses unused ones)."""
        if self._sandbox is None:
            self._sandbox = self.params.add(SANDBOX)
        return self._sandbox

    # ---- selections ------------------------------------------------------------------------------------------

    def fields(self, selection_set: SelectionSetNode | None, type_names: frozenset[str]) -> list[FieldNode]:
        """The fields of a selection set, fragments on `type_names` flattened; directives are not compiled."""
        if selection_set is None:
            raise Unsupported("no selection")
        found: list[FieldNode] = []
        for selection in selection_set.selections:
            if selection.directives:
                raise Unsupported("directives")
            if isinstance(selection, FieldNode):
                found.append(selection)
                continue
            if isinstance(selection, InlineFragmentNode):
                condition, under = selection.type_condition, selection.selection_set
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value in self.fragments:
                fragment = self.fragments[selection.name.value]
                if fragment.directives:
                    raise Unsupported("directives")
                condition, under = fragment.type_condition, fragment.selection_set
            else:
                raise Unsupported("fragment")
            if condition is not None and condition.name.value not in type_names:
                raise Unsupported(f"fragment on {condition.name.value}")
            found += self.fields(under, type_names)
        return found

    def enum_sql(self, field_name: str, column_sql: str, target: JsonObject) -> str:
        field_type = self.schema.type_map["Campaign"].fields[field_name].type  # type: ignore[union-attr]
        non_null = isinstance(field_type, GraphQLNonNull)
        enum_type = field_type.of_type if non_null else field_type
        assert isinstance(enum_type, GraphQLEnumType)
        cases = " ".join(
            f"WHEN {literal(str(getattr(v.value, 'value', v.value)))} THEN {literal(name)}"
            for name, v in enum_type.values.items()
        )
        value = f"(CASE {column_sql} {cases} END)"
        # A value outside the enum (or a null in a non-null field) is an error stock execution reports.
        target.checks.append(f"({value} IS NOT NULL{'' if non_null else f' OR {column_sql} IS NULL'})")
        return value

    def campaign(
        self, selection_set: SelectionSetNode | None, type_names: frozenset[str]
    ) -> tuple[JsonObject, set[str]]:
        """A campaign object over the row alias "c" (relations "rel_preset", "rel_segment", summary "s"), and the
        joins it needs."""
        target, joins = JsonObject(), set()
        column = row_reader(CampaignModel).column_of
        for node in self.fields(selection_set, type_names):
            name, key = node.name.value, (node.alias or node.name).value
            if node.arguments:
                raise Unsupported(f"arguments on {name}")
            if name == "__typename":
                target.add(key, "'Campaign'")
            elif name == "id":
                target.add(key, global_id("Campaign", 'c."id"'))
            elif name == "tags":
                tags = f"COALESCE(c.\"{column['tags']}\"::jsonb, '[]'::jsonb)"
                self.columns.add(column["tags"])
                target.add(key, tags)
                target.checks.append(
                    f"(jsonb_typeof({tags}) = 'array' AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements({tags}) AS t "
                    "WHERE jsonb_typeof(t) <> 'string'))"
                )
            elif name in _CAMPAIGN_COLUMNS:
                attribute, kind = _CAMPAIGN_COLUMNS[name]
                sql = f'c."{column[attribute]}"'
                self.columns.add(column[attribute])
                if kind == _ENUM:
                    sql = self.enum_sql(name, sql, target)
                elif kind == _DATETIME:
                    sql = datetime_text(sql)
                elif kind == _INT:
                    target.checks.append(f"({sql} IS NULL OR {sql} BETWEEN {-_INT_MAX - 1} AND {_INT_MAX})")
                target.add(key, sql)
            elif name in _RELATIONS:
                type_name = _RELATIONS[name][2]
                alias = f"rel_{name}"
                related = self.related(node.selection_set, type_name, alias)
                target.add(key, f'CASE WHEN {alias}."id" IS NULL THEN NULL ELSE {related.json()} END')
                target.cost.append(f'(CASE WHEN {alias}."id" IS NULL THEN 0 ELSE {related.cost_sql()} END)')
                joins.add(name)
                self.columns.add(column[_RELATIONS[name][1]])
            elif name == "summary":
                summary = JsonObject()
                for figure in self.fields(node.selection_set, frozenset({"CampaignSummary"})):
                    figure_name, figure_key = figure.name.value, (figure.alias or figure.name).value
                    if figure.arguments or figure.selection_set is not None:
                        raise Unsupported("summary field with arguments")
                    if figure_name == "__typename":
                        summary.add(figure_key, "'CampaignSummary'")
                    elif figure_name in _SUMMARY:
                        summary.add(figure_key, _SUMMARY[figure_name])
                        summary.checks.append(f"({_SUMMARY[figure_name]} <= {_INT_MAX})")
                    else:
                        raise Unsupported(f"summary field {figure_name}")
                target.add(key, summary.json())
                target.cost.append(f"({summary.cost_sql()})")
                target.checks += summary.checks
                joins.add("summary")
            else:
                raise Unsupported(f"campaign field {name}")
        return target, joins

    def related(self, selection_set: SelectionSetNode | None, type_name: str, alias: str) -> JsonObject:
        target = JsonObject()
        for node in self.fields(selection_set, frozenset({type_name, "Node"})):
            name, key = node.name.value, (node.alias or node.name).value
            if node.arguments or node.selection_set is not None:
                raise Unsupported(f"{type_name}.{name}")
            if name == "__typename":
                target.add(key, literal(type_name))
            elif name == "id":
                target.add(key, global_id(type_name, f'{alias}."id"'))
            elif name == "name":
                target.add(key, f'{alias}."name"')
            else:
                raise Unsupported(f"{type_name}.{name}")
        return target

    def joins_sql(self, joins: set[str], rows: str) -> str:
        sql = []
        for name, (model, key, _) in _RELATIONS.items():
            if name in joins:
                reader, foreign_key = row_reader(model), row_reader(CampaignModel).column_of[key]
                sql.append(
                    f'LEFT JOIN {reader.table} AS rel_{name} ON rel_{name}."id" = c."{foreign_key}"'
                    f' AND rel_{name}."sandbox_id" = {self.sandbox}'
                )
        if "summary" in joins:
            # The stock statement's sums (resolvers/campaigns/types.py), over this statement's rows.
            sums = summary_sql('SELECT "id" FROM ' + rows)
            sql.append(f'LEFT JOIN ({sums}) AS s ON s."key" = c."id"')
        return " ".join(sql)

    # ---- root fields -------------------------------------------------------------------------------------------

    def one_campaign(self, index: int, node: FieldNode, pk: int | VariableId, type_names: frozenset[str]) -> str:
        """A CTE answering one campaign (`campaign(id:)`, `node(id:)`): its JSON, cost and checks; no row when
        it is not the caller's."""
        rows = f"rows{index}"
        self.columns = {"id"}
        target, joins = self.campaign(node.selection_set, type_names)
        self.ctes.append(
            f"{rows} AS (SELECT {columns(self.columns)} FROM {row_reader(CampaignModel).table} "
            f'WHERE "sandbox_id" = {self.sandbox} AND "id" = {self.params.add(pk)})'
        )
        self.ctes.append(
            f"root{index} AS (SELECT {target.json()} AS j, {target.cost_sql()} AS cost, {target.check_sql()} AS ok "
            f"FROM {rows} AS c {self.joins_sql(joins, rows)})"
        )
        return f"root{index}"

    def page(self, index: int, node: FieldNode) -> str:
        first: int | None = None
        for argument in node.arguments:
            if argument.name.value != "first" or not isinstance(argument.value, IntValueNode):
                raise Unsupported(f"campaigns({argument.name.value}:)")
            first = int(argument.value.value)
        if first is not None and not 0 <= first <= self.max_page_size:
            raise Unsupported("first out of range")
        size = check_page_size(first, self.max_page_size)
        where = list_filter_sql(self.params, sandbox_id=SANDBOX, statuses=DEFAULT_LIST_STATUSES)  # type: ignore[arg-type]
        rows = f"rows{index}"
        self.columns = {"id"}
        in_page = f"c.rn <= {size}"
        connection, joins = JsonObject(), set()
        node_checks: list[str] = []
        for part in self.fields(node.selection_set, frozenset({"CampaignConnection"})):
            name, key = part.name.value, (part.alias or part.name).value
            if part.arguments:
                raise Unsupported(f"{name} arguments")
            if name == "__typename":
                connection.add(key, "'CampaignConnection'")
            elif name in ("edges", "nodes"):
                if name == "nodes":
                    item, joins_of = self.campaign(part.selection_set, frozenset({"Campaign", "Node"}))
                    item_checks = item.checks
                else:
                    item, joins_of, item_checks = self.edge(part.selection_set)
                joins |= joins_of
                node_checks += item_checks
                connection.add(
                    key,
                    f"COALESCE(json_agg({item.json()} ORDER BY c.\"id\" DESC) FILTER (WHERE {in_page}), '[]'::json)",
                )
                connection.cost.append(f"COALESCE(SUM({item.cost_sql()}) FILTER (WHERE {in_page}), 0)")
            elif name == "pageInfo":
                info = JsonObject()
                for field_node in self.fields(part.selection_set, frozenset({"PageInfo"})):
                    info_name, info_key = field_node.name.value, (field_node.alias or field_node.name).value
                    if info_name == "__typename":
                        info.add(info_key, "'PageInfo'")
                    elif info_name == "hasNextPage":
                        info.add(info_key, f"COUNT(*) > {size}")
                    elif info_name == "hasPreviousPage":
                        info.add(info_key, "FALSE")
                    elif info_name in ("startCursor", "endCursor"):
                        pk = f'{"MAX" if info_name == "startCursor" else "MIN"}(c."id") FILTER (WHERE {in_page})'
                        info.add(info_key, f"CASE WHEN {pk} IS NULL THEN NULL ELSE {cursor(pk)} END")
                    else:
                        raise Unsupported(f"pageInfo.{info_name}")
                connection.add(key, info.json())
                connection.cost.append(info.cost_sql())
            else:
                raise Unsupported(f"connection field {name}")
        checks = " AND ".join(node_checks) or "TRUE"
        self.ctes.append(
            f'{rows} AS (SELECT {columns(self.columns)}, row_number() OVER (ORDER BY "id" DESC) AS rn FROM '
            f'{row_reader(CampaignModel).table} WHERE {where} ORDER BY "id" DESC LIMIT {self.params.add(size + 1)})'
        )
        self.ctes.append(
            f"root{index} AS (SELECT {connection.json()} AS j, {connection.cost_sql()} AS cost, "
            f"COALESCE(BOOL_AND({checks}) FILTER (WHERE {in_page}), TRUE) AS ok "
            f"FROM {rows} AS c {self.joins_sql(joins, rows)})"
        )
        return f"root{index}"

    def edge(self, selection_set: SelectionSetNode | None) -> tuple[JsonObject, set[str], list[str]]:
        edge, joins, checks = JsonObject(), set(), []
        for part in self.fields(selection_set, frozenset({"CampaignEdge"})):
            name, key = part.name.value, (part.alias or part.name).value
            if part.arguments:
                raise Unsupported(f"{name} arguments")
            if name == "__typename":
                edge.add(key, "'CampaignEdge'")
            elif name == "cursor":
                edge.add(key, cursor('c."id"'))
            elif name == "node":
                item, joins = self.campaign(part.selection_set, frozenset({"Campaign", "Node"}))
                edge.add(key, item.json())
                edge.cost.append(f"({item.cost_sql()})")
                checks = item.checks
            else:
                raise Unsupported(f"edge field {name}")
        return edge, joins, checks


def compile_read(schema: GraphQLSchema, document: str, requested_cost: int | None, max_page_size: int) -> CompiledRead:
    """The statement answering `document` (raises Unsupported when it cannot)."""
    parsed = parse(document)
    operation, variables = operation_of(parsed)
    compiler = _Compiler(schema, parsed, max_page_size)
    roots: list[tuple[str, str]] = []
    keys: set[str] = set()
    for index, node in enumerate(compiler.fields(operation.selection_set, frozenset({"Query"}))):
        name, key = node.name.value, (node.alias or node.name).value
        if key in keys:
            raise Unsupported("response key twice")
        keys.add(key)
        if name == "campaigns":
            roots.append((key, compiler.page(index, node)))
        elif name == "campaign":
            from resolvers.campaigns.refusals import campaign_pk

            given = id_argument(node, variables)
            pk = given if isinstance(given, VariableId) else campaign_pk(given)
            if pk is None:
                raise Unsupported("not a campaign id")  # answered null without a statement by stock execution
            roots.append((key, compiler.one_campaign(index, node, pk, frozenset({"Campaign"}))))
        elif name == "node":
            given = id_argument(node, variables)
            pk = given if isinstance(given, VariableId) else campaign_node_pk(given)
            if pk is None:
                raise Unsupported("not a campaign's global id")
            roots.append((key, compiler.one_campaign(index, node, pk, frozenset({"Campaign", "Node"}))))
        else:
            raise Unsupported(f"root field {name}")
    data = ", ".join(f"{literal(key)}, (SELECT j FROM {root})" for key, root in roots)
    cost = " + ".join([str(len(roots)), *(f"COALESCE((SELECT cost FROM {root}), 0)" for _, root in roots)])
    ok = " AND ".join(f"COALESCE((SELECT ok FROM {root}), TRUE)" for _, root in roots)
    sql = f"WITH {', '.join(compiler.ctes)} SELECT json_build_object({data})::text, {cost}, {ok}"
    return CompiledRead(
        document=document,
        operation_name=operation.name.value if operation.name else None,
        requested_cost=requested_cost,
        sql=sql,
        fixed_params=tuple(compiler.params.values),
        variables=variables,
    )
