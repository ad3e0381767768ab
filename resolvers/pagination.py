"""Cursor connections (Relay) over Tortoise querysets, with keyset pagination."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson
import strawberry
from strawberry.types.nodes import SelectedField, Selection
from tortoise.expressions import Q
from tortoise.fields import BigIntField, DatetimeField, IntField
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models.sql.params import SqlParams
from models.sql.reads import RowReader, fetch, row_reader
from resolvers.errors import ClientError

if TYPE_CHECKING:
    from resolvers.context import Info

NodeT = TypeVar("NodeT")


@strawberry.type(description="Where a page sits in the whole list.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow `endCursor`.")
    has_previous_page: bool = strawberry.field(description="Items precede `startCursor`.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge of this page.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge; pass it as `after`.")


@strawberry.type(description="One item of a page, with its cursor.")
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(description="Opaque position of this item.")
    node: NodeT = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list, with cursors to move on (`first`/`after`).")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]] = strawberry.field(description="The items of this page.")
    page_info: PageInfo = strawberry.field(description="Cursors and whether more items exist.")
    _count_query: strawberry.Private[QuerySet | None]
    # For lists built with raw SQL (e.g. segment membership): counts the whole list when asked.
    _count: strawberry.Private[Callable[[], Awaitable[int]] | None] = None

    @strawberry.field(description="Number of items in the whole list (all pages), with the filters applied.")
    async def total_count(self) -> int:
        if self._count is not None:
            return await self._count()
        if self._count_query is None:
            return len(self.edges)
        return await self._count_query.count()

    @strawberry.field(description="The items of this page, without cursors.")
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]


@dataclass(frozen=True, slots=True)
class SortKey:
    """An ordering for keyset pagination; always ends with the primary key as tie-breaker."""

    field: str | None = None
    descending: bool = True

    def fields(self) -> list[tuple[str, bool]]:
        keys = [(self.field, self.descending)] if self.field else []
        return [*keys, ("id", self.descending)]


def check_page_size(first: int | None, max_page_size: int, default: int = 20) -> int:
    if first is None:
        return min(default, max_page_size)
    if first < 0 or first > max_page_size:
        raise ClientError(f"`first` must be between 0 and {max_page_size}.", code="BAD_USER_INPUT")
    return first


def _encode_cursor(values: Sequence[Any]) -> str:
    encoded = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(orjson.dumps(encoded)).decode()


def _decode_cursor(cursor: str, expected: int) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, orjson.JSONDecodeError, ValueError, UnicodeError):
        values = None
    if not isinstance(values, list) or len(values) != expected:
        raise ClientError("`after` is not a cursor of this list.", code="BAD_USER_INPUT")
    return values


def _after_filter(keys: list[tuple[str, bool]], values: list[Any]) -> Q:
    """(k1 > v1) OR (k1 = v1 AND k2 > v2) ... with > or < per key direction."""
    disjuncts: list[Q] = []
    for i, (name, desc) in enumerate(keys):
        equal_prefix = {keys[j][0]: values[j] for j in range(i)}
        disjuncts.append(Q(**equal_prefix, **{f"{name}__{'lt' if desc else 'gt'}": values[i]}))
    result = disjuncts[0]
    for q in disjuncts[1:]:
        result |= q
    return result


async def paginate(
    query: QuerySet,
    *,
    first: int | None,
    after: str | None,
    max_page_size: int,
    to_node: Callable[[Any], NodeT],
    sort: SortKey = SortKey(),
) -> Connection[NodeT]:
    """One SELECT for the page (plus one COUNT only when `totalCount` is asked for)."""
    size = check_page_size(first, max_page_size)
    keys = sort.fields()
    page_query = query
    if after:
        values = _decode_cursor(after, len(keys))
        typed = [_cursor_value(query.model, name, value) for (name, _), value in zip(keys, values, strict=True)]
        page_query = page_query.filter(_after_filter(keys, typed))
    ordering = [f"-{name}" if desc else name for name, desc in keys]
    # One row more than the page says whether more follow (also for `first: 0`).
    rows = list(await page_query.order_by(*ordering).limit(size + 1))
    has_next = len(rows) > size
    rows = rows[:size]
    edges = [Edge(cursor=_encode_cursor([getattr(row, name) for name, _ in keys]), node=to_node(row)) for row in rows]
    return _connection(edges, has_next=has_next, after=after, count_query=query)


def _connection(
    edges: list[Edge[NodeT]],
    *,
    has_next: bool,
    after: str | None,
    count_query: QuerySet | None = None,
    count: Callable[[], Awaitable[int]] | None = None,
) -> Connection[NodeT]:
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=bool(after),
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        _count_query=count_query,
        _count=count,
    )


@dataclass(frozen=True, slots=True)
class SqlListing:
    """A list as SQL: the rows of `model` matching `where`, whose placeholders are in `params` (built with
    models.sql.reads). Always scope `where` to the caller's sandbox."""

    model: type[Model]
    where: str
    params: SqlParams


def _cursor_value(model: type[Model], name: str, value: Any) -> Any:
    """A cursor's value for the key `name`, as the database compares it; a value of the wrong type is the
    client's error (a string where an id is, a date that does not parse), not a failed statement."""
    field = model._meta.fields_map[name]
    if isinstance(field, DatetimeField):
        try:
            parsed = field.to_python_value(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed
    elif isinstance(field, IntField | BigIntField):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, str):
        return value
    raise ClientError("`after` is not a cursor of this list.", code="BAD_USER_INPUT")


def _after_sql(listing: SqlListing, params: SqlParams, keys: list[tuple[str, bool]], values: list[Any]) -> str:
    """(k1 < v1) OR (k1 = v1 AND k2 < v2) ... with < or > per key direction, as `_after_filter`."""
    values = [_cursor_value(listing.model, name, value) for (name, _), value in zip(keys, values, strict=True)]
    disjuncts: list[str] = []
    for i, (name, desc) in enumerate(keys):
        terms = [f'"{keys[j][0]}" = {params.add(values[j])}' for j in range(i)]
        terms.append(f'"{name}" {"<" if desc else ">"} {params.add(values[i])}')
        disjuncts.append("(" + " AND ".join(terms) + ")")
    return "(" + " OR ".join(disjuncts) + ")"


@dataclass(frozen=True, slots=True)
class JoinedRelation:
    """A to-one relation of the listed rows read in the page's statement (a LEFT JOIN scoped to `sandbox_id`):
    the related row's `attributes` (all for None) and id, as `joined[name]`; None where the key is null or
    the row is not the sandbox's."""

    name: str
    model: type[Model]
    key: str  # attribute of the listed model holding the related row's id
    attributes: AbstractSet[str] | None
    sandbox_id: int


@dataclass(frozen=True, slots=True)
class JoinedFigures:
    """Figures per listed row computed in the page's statement: `select(ids)` is a SELECT of the columns
    `columns` grouped by a first column "key" matching a listed row's id, given SQL that selects the page's ids.
    `joined[name]` holds them (None where no row has the key)."""

    name: str
    select: Callable[[str], str]
    columns: tuple[str, ...]


async def paginate_sql(
    listing: SqlListing,
    *,
    first: int | None,
    after: str | None,
    max_page_size: int,
    to_node: Callable[[dict[str, Any], dict[str, Any]], NodeT],
    sort: SortKey = SortKey(),
    attributes: AbstractSet[str] | None = None,
    relations: Sequence[JoinedRelation] = (),
    figures: Sequence[JoinedFigures] = (),
) -> Connection[NodeT]:
    """`paginate` for a list given as SQL, with the relations and figures its rows show: one statement for the
    page (one more, a COUNT, only when `totalCount` is asked). Rows reach `to_node` as dicts of the model's
    attributes (models.sql_reads.RowReader: `attributes` and the sort keys, or all), with the `joined` dict of
    their relations and figures."""
    size = check_page_size(first, max_page_size)
    keys = sort.fields()
    reader = row_reader(listing.model)
    table = reader.table
    if attributes is not None:
        attributes = {*attributes, *(name for name, _ in keys), *(relation.key for relation in relations)}
    params = SqlParams(listing.params.dialect, listing.params.values)  # a copy: the COUNT reuses the filter's
    where = listing.where
    if after:
        where = f"{where} AND {_after_sql(listing, params, keys, _decode_cursor(after, len(keys)))}"
    ordering = ", ".join(f'"{name}" {"DESC" if desc else "ASC"}' for name, desc in keys)
    columns = reader.select_list(sorted(attributes) if attributes is not None else None)
    # One row more than the page says whether more follow (also for `first: 0`).
    sql = f"SELECT {columns} FROM {table} WHERE {where} ORDER BY {ordering} LIMIT {params.add(size + 1)}"
    if relations or figures:
        sql = _joined_page_sql(sql, params, reader, keys, relations, figures)
    rows = await fetch(sql, params)
    has_next = len(rows) > size
    edges = []
    split = _row_splitter(reader, list(rows[0].keys()), relations, figures) if rows else None
    for row in rows[:size]:
        values, joined = split(row)  # type: ignore[misc]
        edges.append(Edge(cursor=_encode_cursor([values[name] for name, _ in keys]), node=to_node(values, joined)))

    async def count() -> int:
        (row,) = await fetch(f'SELECT COUNT(*) AS "count" FROM {table} WHERE {listing.where}', listing.params)
        return int(row["count"])

    return _connection(edges, has_next=has_next, after=after, count=count)


def _joined_page_sql(
    page_sql: str,
    params: SqlParams,
    listed: RowReader,
    keys: list[tuple[str, bool]],
    relations: Sequence[JoinedRelation],
    figures: Sequence[JoinedFigures],
) -> str:
    """The page's SELECT as a CTE, its rows LEFT JOINed to their relations and figures: the joins see only
    the page's rows. Joined columns are named "relation.column"."""
    select = ['"page".*']
    joins = []
    for relation in relations:
        reader = row_reader(relation.model)
        alias = f'"{relation.name}"'
        wanted = {"id", *relation.attributes} if relation.attributes is not None else set(reader.column_of)
        for column in sorted(reader.column_of[attribute] for attribute in wanted):
            select.append(f'{alias}."{column}" AS "{relation.name}.{column}"')
        joins.append(
            f'LEFT JOIN {reader.table} AS {alias} ON {alias}."id" = "page"."{listed.column_of[relation.key]}" '
            f'AND {alias}."sandbox_id" = {params.add(relation.sandbox_id)}'
        )
    for figure in figures:
        alias = f'"{figure.name}"'
        select.append(f'{alias}."key" AS "{figure.name}.key"')
        select += [f'{alias}."{column}" AS "{figure.name}.{column}"' for column in figure.columns]
        figures_sql = figure.select('SELECT "id" FROM "page"')
        joins.append(f'LEFT JOIN ({figures_sql}) AS {alias} ON {alias}."key" = "page"."id"')
    ordering = ", ".join(f'"page"."{name}" {"DESC" if desc else "ASC"}' for name, desc in keys)
    return f'WITH "page" AS ({page_sql}) SELECT {", ".join(select)} FROM "page" {" ".join(joins)} ORDER BY {ordering}'


def _row_splitter(
    reader: RowReader, columns: Sequence[str], relations: Sequence[JoinedRelation], figures: Sequence[JoinedFigures]
) -> Callable[[Any], tuple[dict[str, Any], dict[str, Any]]]:
    """What splits each row of a joined page (columns named "relation.column") into the listed row's values and
    `joined` (relations converted by their models), worked out once from the result's column names."""
    own: list[tuple[int, str]] = []
    parts: dict[str, list[tuple[int, str]]] = {}
    for index, column in enumerate(columns):
        name, dot, rest = column.partition(".")
        if dot:
            parts.setdefault(name, []).append((index, rest))
        else:
            own.append((index, column))
    convert_own = reader.converter_for(own)
    related = [(r.name, row_reader(r.model).converter_for(parts.get(r.name, ()))) for r in relations]
    figure_columns = [(figure.name, parts.get(figure.name, [])) for figure in figures]

    def split(row: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        joined: dict[str, Any] = {}
        for name, convert in related:
            values = convert(row)
            joined[name] = values if values.get("id") is not None else None
        for name, at in figure_columns:
            figures_of_row = {rest: row[index] for index, rest in at}
            joined[name] = figures_of_row if figures_of_row.get("key") is not None else None
        return convert_own(row), joined

    return split


_TOWARDS_NODES = {((), "edges"), ((), "nodes"), (("edges",), "node")}
_NODE_LEVELS = {("edges", "node"), ("nodes",)}


def selected_node_fields(info: Info) -> frozenset[str]:
    """GraphQL names of the fields the query selects on a connection's nodes (`edges { node { … } }` and
    `nodes { … }`), through fragments: what a list resolver may load for the whole page at once."""
    return frozenset(selected_node_tree(info))


_TREE_CACHE_SIZE = 512
# ids of the field nodes -> (the nodes, kept so their ids stay theirs; the tree), as resolvers/selection.py keeps
# its trees: a persisted document yields the same nodes request after request, and the tree depends on them only.
_node_trees: dict[tuple[int, ...], tuple[tuple[Any, ...], dict[str, frozenset[str]]]] = {}


def selected_node_tree(info: Info) -> dict[str, frozenset[str]]:
    """`selected_node_fields`, each with the names of the fields selected under it (through fragments). Worked
    out once per document (strawberry's `selected_fields` was ~5% of a page request's CPU); do not mutate."""
    nodes = tuple(info._raw_info.field_nodes)
    key = tuple(id(node) for node in nodes)
    cached = _node_trees.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], nodes, strict=True)):
        return cached[1]
    tree = _node_tree(info)
    if len(_node_trees) >= _TREE_CACHE_SIZE:
        _node_trees.clear()
    _node_trees[key] = (nodes, tree)
    return tree


def _node_tree(info: Info) -> dict[str, frozenset[str]]:
    tree: dict[str, set[str]] = {}

    def names_under(selections: Sequence[Selection], into: set[str]) -> None:
        for selection in selections:
            if isinstance(selection, SelectedField):
                into.add(selection.name)
            else:
                names_under(selection.selections, into)

    def walk(selections: Sequence[Selection], path: tuple[str, ...]) -> None:
        for selection in selections:
            if not isinstance(selection, SelectedField):  # a fragment: its fields sit at the same level
                walk(selection.selections, path)
            elif path in _NODE_LEVELS:
                names_under(selection.selections, tree.setdefault(selection.name, set()))
            elif (path, selection.name) in _TOWARDS_NODES:
                walk(selection.selections, (*path, selection.name))

    for field in info.selected_fields:
        walk(field.selections, ())
    return {name: frozenset(under) for name, under in tree.items()}
