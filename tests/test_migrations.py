"""Migrations, applied one by one to a database that holds rows, must end where the models say.

Guards against the SQLite traps in STACK-NOTES: table rebuilds that drop indexes and unique constraints,
cascades that delete child rows, and indexes on names that are not columns (silently accepted as literals).
Migrations run in subprocesses (`herald migrate TARGET`), as an operator runs them.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tortoise.fields.relational import ForeignKeyFieldInstance, OneToOneFieldInstance
from tortoise.models import Model

from api.settings import MODEL_MODULES
from tests.conftest import TEST_DB, fresh_database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
NOW = datetime(2026, 1, 1, tzinfo=UTC).isoformat()

# Rows inserted right after each migration is applied: (table, {column: value}).
# A new migration that adds tables should add rows for them here, so later migrations are tested on data.
SEEDS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "0001_initial": [
        ("sandbox", {"id": 1, "name": "seed", "created_at": NOW}),
        ("sandbox", {"id": 2, "name": "seed-two", "created_at": NOW}),
        *[
            (
                "api_key",
                {
                    "id": i,
                    "sandbox_id": 1 + i % 2,
                    "name": f"k{i}",
                    "role": "ADMIN",
                    "display_prefix": "hrld_x",
                    "key_hash": f"{i:064d}",
                    "created_at": NOW,
                },
            )
            for i in range(1, 4)
        ],
        *[
            (
                "identity_namespace",
                {
                    "id": i,
                    "sandbox_id": 1,
                    "code": f"C{i}",
                    "name": "n",
                    "type": "EMAIL",
                    "description": "",
                    "standard": True,
                    "created_at": NOW,
                    "updated_at": NOW,
                },
            )
            for i in range(1, 4)
        ],
        *[
            (
                "audit_event",
                {
                    "id": i,
                    "sandbox_id": 1,
                    "actor": "seed",
                    "action": "CREATE",
                    "object_type": "Sandbox",
                    "object_id": "1",
                    "created_at": NOW,
                },
            )
            for i in range(1, 6)
        ],
    ],
    "0008_outbox": [
        (
            "outbox_event",
            {"id": 1, "sandbox_id": 1, "topic": "campaign.status", "payload": "{}", "created_at": NOW},
        ),
    ],
}


def migration_names() -> list[str]:
    return sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.py"))


def herald_models() -> list[type[Model]]:
    import importlib

    found = []
    for module_name in MODEL_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Model)
                and value.__module__ == module_name
                and not value._meta.abstract
            ):
                found.append(value)
    return found


def _column(model: type[Model], name: str) -> str:
    field = model._meta.fields_map.get(name)
    if isinstance(field, (ForeignKeyFieldInstance, OneToOneFieldInstance)):
        return f"{name}_id"
    if field is not None and field.source_field:
        return field.source_field
    return name


def declared_indexes(model: type[Model]) -> Counter:
    """(columns, unique) for every index the model declares, the primary key excepted."""
    meta = model._meta
    found: Counter = Counter()
    for name, field in meta.fields_map.items():
        if field.pk or (name not in meta.fields_db_projection and name not in _foreign_keys(model)):
            continue
        if field.unique:
            found[((_column(model, name),), True)] += 1
        elif field.index:
            found[((_column(model, name),), False)] += 1
    for group in meta.unique_together:
        found[(tuple(_column(model, n) for n in group), True)] += 1
    for index in meta.indexes:
        names = index if isinstance(index, tuple | list) else index.fields
        found[(tuple(_column(model, n) for n in names), False)] += 1
    return found


def _foreign_keys(model: type[Model]) -> list[str]:
    return [
        name
        for name, field in model._meta.fields_map.items()
        if isinstance(field, (ForeignKeyFieldInstance, OneToOneFieldInstance))
    ]


def _model_named(reference: str) -> type[Model]:
    """The Herald model a field names as "herald.Model"."""
    app, _, name = reference.partition(".")
    return next(model for model in herald_models() if app == "herald" and model.__name__ == name)


def declared_foreign_keys(model: type[Model]) -> Counter:
    """(column, referenced table, ON DELETE) of every foreign key the database should enforce (db_constraint)."""
    found: Counter = Counter()
    for name in _foreign_keys(model):
        field = model._meta.fields_map[name]
        if field.db_constraint:
            # By the field's "app.Model" name: related_model is set only once Tortoise is initialised in this process.
            parent = field.related_model or _model_named(field.model_name)
            found[(f"{name}_id", parent._meta.db_table, str(field.on_delete))] += 1
    return found


def declared_columns(model: type[Model]) -> set[str]:
    return set(model._meta.fields_db_projection.values()) | {f"{name}_id" for name in _foreign_keys(model)}


async def _run_migrate(database_url: str, target: str | None) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    args = [sys.executable, "-m", "api.cli", "migrate"] + ([f"herald.{target}"] if target else [])
    process = await asyncio.create_subprocess_exec(*args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, (out + err).decode()


_PG_RULES = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


class Inspector:
    """Reads tables, columns, indexes and row counts with the raw driver of each database."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.sqlite = database_url.startswith("sqlite")
        # (column, parent table, ON DELETE) per table, filled by describe().
        self.foreign_keys: dict[str, Counter] = {}

    async def execute(self, sql: str, values: list[Any]) -> None:
        if self.sqlite:
            with sqlite3.connect(self.url.removeprefix("sqlite://")) as conn:
                conn.execute(sql, values)
            return
        conn = await asyncpg.connect(self.url.replace("postgres://", "postgresql://", 1))
        try:
            await conn.execute(re.sub(r"\?", lambda _m, c=iter(range(1, 99)): f"${next(c)}", sql), *values)
        finally:
            await conn.close()

    async def insert(self, table: str, row: dict[str, Any]) -> None:
        columns = ", ".join(f'"{c}"' for c in row)
        values = [
            datetime.fromisoformat(v) if (not self.sqlite and isinstance(v, str) and v == NOW) else v
            for v in row.values()
        ]
        await self.execute(f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join("?" * len(row))})', values)

    async def describe(self, table: str) -> tuple[set[str], Counter, int]:
        if self.sqlite:
            with sqlite3.connect(self.url.removeprefix("sqlite://")) as conn:
                columns = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
                indexes: Counter = Counter()
                for _, name, unique, origin, _ in conn.execute(f'PRAGMA index_list("{table}")'):
                    if origin == "pk":
                        continue
                    cols = tuple(row[2] for row in conn.execute(f'PRAGMA index_info("{name}")'))
                    indexes[(cols, bool(unique))] += 1
                count = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                self.foreign_keys[table] = Counter(
                    (row[3], row[2], row[6]) for row in conn.execute(f'PRAGMA foreign_key_list("{table}")')
                )
            return columns, indexes, count
        conn = await asyncpg.connect(self.url.replace("postgres://", "postgresql://", 1))
        try:
            columns = {
                r["column_name"]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
                )
            }
            rows = await conn.fetch(
                """
                SELECT i.indisunique AS unique,
                       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n)
                             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                             ORDER BY k.n) AS columns
                FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                WHERE t.relname = $1 AND NOT i.indisprimary AND i.indisvalid
                """,
                table,
            )
            indexes = Counter((tuple(r["columns"]), r["unique"]) for r in rows)
            count = await conn.fetchval(f'SELECT count(*) FROM "{table}"')
            rows = await conn.fetch(
                """
                SELECT a.attname AS column, r.relname AS parent, c.confdeltype::text AS rule
                FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                WHERE t.relname = $1 AND c.contype = 'f'
                """,
                table,
            )
            self.foreign_keys[table] = Counter((r["column"], r["parent"], _PG_RULES[r["rule"]]) for r in rows)
        finally:
            await conn.close()
        return columns, indexes, count


@pytest.mark.parametrize("kind", [TEST_DB])
async def test_every_migration_keeps_rows_indexes_and_constraints(tmp_path: Path, kind: str) -> None:
    names = migration_names()
    assert names and names[0] == "0001_initial"
    async with fresh_database(tmp_path, kind) as url:
        inspector = Inspector(url)
        expected_rows: Counter = Counter()
        for name in names:
            await _run_migrate(url, name)
            for table, row in SEEDS.get(name, []):
                await inspector.insert(table, row)
                expected_rows[table] += 1

        await _run_migrate(url, None)  # and nothing is left to apply

        problems = []
        for model in herald_models():
            table = model._meta.db_table
            columns, indexes, count = await inspector.describe(table)
            if columns != declared_columns(model):
                problems.append(f"{table}: columns {sorted(columns)} != declared {sorted(declared_columns(model))}")
            if indexes != declared_indexes(model):
                problems.append(f"{table}: indexes {dict(indexes)} != declared {dict(declared_indexes(model))}")
            if inspector.foreign_keys[table] != declared_foreign_keys(model):
                problems.append(
                    f"{table}: foreign keys {dict(inspector.foreign_keys[table])} "
                    f"!= declared {dict(declared_foreign_keys(model))}"
                )
            if count != expected_rows[table]:
                problems.append(f"{table}: {count} rows, expected {expected_rows[table]}")
        assert problems == []


async def test_concurrent_migrate_processes_both_succeed(tmp_path: Path) -> None:
    async with fresh_database(tmp_path) as url:
        await asyncio.gather(_run_migrate(url, None), _run_migrate(url, None), _run_migrate(url, None))
        _, _, applied = await Inspector(url).describe("tortoise_migrations")
        assert applied == len(migration_names())
