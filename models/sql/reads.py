"""Reads on the GraphQL hot path as hand-written SQL run on Tortoise's connection, rows turned into the model
objects Tortoise makes (`Model._init_from_db`) or into dicts of chosen columns converted the same way
(`RowReader`).

Building a statement with Tortoise's query builder costs about 0.25 ms of CPU, as much as sending it and reading
20 rows (bench/graphql_read.py). The statements here are a few string joins, and every value is a parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson
from tortoise import connections
from tortoise.models import Model

from models.sql.params import Dialect, SqlParams

ModelT = TypeVar("ModelT", bound=Model)

FALSE = "(1 = 0)"


def dialect_of(connection_name: str = "default") -> Dialect:
    return Dialect.SQLITE if connections.get(connection_name).capabilities.dialect == "sqlite" else Dialect.POSTGRES


def sql_params() -> SqlParams:
    """Parameters for a statement on the current connection's dialect."""
    sqlite = connections.get("default").capabilities.dialect == "sqlite"
    return SqlParams(Dialect.SQLITE if sqlite else Dialect.POSTGRES)


def json_column(value: Any) -> Any:
    """A JSON column read by raw SQL: decoded by asyncpg's JSONB codec, text from SQLite (and from a JSONB
    expression PostgreSQL returns as text)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def quoted(name: str) -> str:
    """An identifier from our own models (never from a request)."""
    return f'"{name}"'


def one_of(params: SqlParams, column: str, values: Iterable[Any]) -> str:
    """`column` is one of `values`: one array parameter on PostgreSQL (one prepared statement whatever the count),
    an `IN (?, …)` list on SQLite; false for no values."""
    values = list(values)
    if not values:
        return FALSE
    if params.dialect is Dialect.POSTGRES:
        return f"{column} = ANY({params.add(values)})"
    return f"{column} IN ({', '.join(params.add(v) for v in values)})"


async def fetch(sql: str, params: SqlParams) -> Sequence[Any]:
    """Rows (mappings by column name) of one SELECT on the current connection (a transaction's, inside one)."""
    _, rows = await connections.get("default").execute_query(sql, params.values)
    return rows


def models_from_rows(model: type[ModelT], rows: Iterable[Any]) -> list[ModelT]:
    """The objects Tortoise would have made of these rows (all of the table's columns)."""
    return [model._init_from_db(**row) for row in rows]


async def models_by_id(model: type[ModelT], sandbox_id: int, ids: Iterable[int]) -> dict[int, ModelT]:
    """Rows of a sandbox-owned model by primary key, scoped to `sandbox_id`: ids of other sandboxes are absent."""
    params = sql_params()
    sandbox = params.add(sandbox_id)
    sql = (
        f"SELECT * FROM {quoted(model._meta.db_table)} "
        f'WHERE "sandbox_id" = {sandbox} AND {one_of(params, quoted("id"), sorted(set(ids)))}'
    )
    return {row.pk: row for row in models_from_rows(model, await fetch(sql, params))}


class RowReader:
    """Reads chosen columns of a model's table as dicts of the model's attribute names and Python values,
    converted as Tortoise's `_init_from_db` converts them: what a list page needs without the columns it does
    not show (a campaign's content can be kilobytes) and without a model object per row."""

    def __init__(self, model: type[Model]) -> None:
        meta = model._meta
        self.model = model
        self.table = quoted(meta.db_table)
        converters: dict[str, tuple[str, Callable[[Any], Any] | None]] = {}
        for column, attribute, _ in meta.db_native_fields:
            converters[column] = (attribute, None)
        for column, attribute, field in meta.db_default_fields:
            converters[column] = (attribute, field.field_type)
        for column, attribute, field in meta.db_complex_fields:
            converters[column] = (attribute, field.to_python_value)
        self._converters = converters
        self.column_of = {attribute: column for column, (attribute, _) in converters.items()}

    def select_list(self, attributes: Iterable[str] | None) -> str:
        """The SELECT list for these attributes (all columns for None)."""
        if attributes is None:
            return "*"
        return ", ".join(quoted(self.column_of[attribute]) for attribute in attributes)

    def convert(self, columns: Iterable[tuple[str, Any]]) -> dict[str, Any]:
        """(column, value) pairs of one row as attribute -> Python value."""
        converters = self._converters
        values: dict[str, Any] = {}
        for column, value in columns:
            attribute, convert = converters[column]
            values[attribute] = convert(value) if convert is not None and value is not None else value
        return values

    def converter_for(self, columns: Iterable[tuple[int, str]]) -> Callable[[Any], dict[str, Any]]:
        """`convert` for rows holding these columns at these indexes, planned once for a whole result: a page's
        rows all have the same columns, so the per-column lookups need not be repeated per row."""
        plan = [(index, *self._converters[column]) for index, column in columns]

        def convert(row: Any) -> dict[str, Any]:
            values: dict[str, Any] = {}
            for index, attribute, converter in plan:
                value = row[index]
                values[attribute] = converter(value) if converter is not None and value is not None else value
            return values

        return convert

    def values(self, rows: Iterable[Any]) -> list[dict[str, Any]]:
        return [self.convert(zip(row.keys(), row, strict=True)) for row in rows]


@functools.cache
def row_reader(model: type[Model]) -> RowReader:
    """The model's reader, built once."""
    return RowReader(model)
