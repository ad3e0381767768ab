"""In-app inbox rows: multi-row INSERT statements run against the test database kind (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import asyncpg
import orjson
import pytest

from jobs.channels.base import InAppContent, OutgoingMessage, SendStatus
from jobs.channels.inapp import INBOX_COLUMNS, InAppAdapter, inbox_rows, insert_statements
from tests.conftest import POSTGRES_ADMIN_URL, TEST_DB

DDL = """CREATE {temp} TABLE inbox_message (
    id {serial} PRIMARY KEY, sandbox_id INTEGER NOT NULL, idempotency_key VARCHAR(128) NOT NULL UNIQUE,
    namespace VARCHAR(64) NOT NULL, identity VARCHAR(255) NOT NULL, campaign_id INTEGER, title TEXT NOT NULL,
    body TEXT NOT NULL, data {json} NOT NULL, created_at {ts} NOT NULL)"""


def messages(keys: range) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(f"run1-{i}", f"user-{i}", InAppContent(f"Hi {i}", "New offer", {"n": i, "tags": ["a"]}))
        for i in keys
    ]


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[tuple[str, Callable[..., Awaitable], Callable[..., Awaitable]]]:
    """(dialect, execute(sql, params), fetch(sql)) on a fresh inbox table."""
    if TEST_DB == "postgres":
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL.replace("postgres://", "postgresql://", 1))
        await conn.execute(DDL.format(temp="TEMPORARY", serial="SERIAL", json="JSONB", ts="TIMESTAMPTZ"))
        try:
            yield "postgres", lambda sql, params: conn.execute(sql, *params), conn.fetch
        finally:
            await conn.close()
        return
    async with aiosqlite.connect(tmp_path / "inbox.sqlite3") as conn:
        await conn.execute(DDL.format(temp="", serial="INTEGER", json="JSON", ts="TIMESTAMP"))

        async def execute(sql: str, params: list) -> None:
            await conn.execute(sql, params)
            await conn.commit()

        async def fetch(sql: str) -> list:
            async with conn.execute(sql) as cursor:
                return list(await cursor.fetchall())

        yield "sqlite", execute, fetch


async def test_batch_becomes_inbox_rows_and_a_rerun_writes_nothing_twice(database):
    dialect, execute, fetch = database
    adapter = InAppAdapter(execute, dialect=dialect, sandbox_id=7, namespace="crm", campaign_id=3)
    results = await adapter.send_batch(messages(range(50)))
    assert [r.status for r in results] == [SendStatus.SENT] * 50
    assert results[0].provider_message_id == "run1-0"
    # The same deliveries again (a worker crashed after writing), plus new ones.
    again = await adapter.send_batch(messages(range(40, 60)))
    assert all(r.status is SendStatus.SENT for r in again)

    rows = await fetch("SELECT identity, title, data, sandbox_id, namespace, campaign_id FROM inbox_message")
    assert len(rows) == 60
    by_identity = {row[0]: row for row in rows}
    _, title, data, sandbox_id, namespace, campaign_id = by_identity["user-42"]
    assert (title, sandbox_id, namespace, campaign_id) == ("Hi 42", 7, "crm", 3)
    assert orjson.loads(data) == {"n": 42, "tags": ["a"]}


async def test_database_failure_is_a_retry_for_the_whole_batch(database):
    dialect, execute, _ = database

    async def broken(sql: str, params: list) -> None:
        await execute(sql.replace("inbox_message", "no_such_table"), params)

    adapter = InAppAdapter(broken, dialect=dialect, sandbox_id=1, namespace="crm", campaign_id=None)
    results = await adapter.send_batch(messages(range(3)))
    assert {r.status for r in results} == {SendStatus.RETRY}


def test_statements_split_under_the_bind_limit():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rows = inbox_rows(messages(range(10_000)), sandbox_id=1, namespace="crm", campaign_id=None, now=now)
    statements = insert_statements(rows, "sqlite")
    assert sum(len(params) for _, params in statements) == 10_000 * len(INBOX_COLUMNS)
    assert all(len(params) <= 32766 for _, params in statements)
    # PostgreSQL: one statement, one array per column, whatever the number of rows.
    [(sql, params)] = insert_statements(rows, "postgres")
    assert "unnest($1::BIGINT[], $2::TEXT[]" in sql and sql.endswith("DO NOTHING")
    assert len(params) == len(INBOX_COLUMNS) and all(len(column) == 10_000 for column in params)
    assert params[0][0] == 1 and params[1][:2] == ["run1-0", "run1-1"] and params[-1][-1] == now
    assert insert_statements([], "postgres") == []
    with pytest.raises(TypeError):
        inbox_rows([OutgoingMessage("k", "a", content=None)], sandbox_id=1, namespace="n", campaign_id=None)  # type: ignore[arg-type]
