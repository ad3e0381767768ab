"""On SQLite, `serve` and `worker` are two processes on one file. A transaction that read before another process
committed a write could not write afterwards ("database is locked" at once, whatever the busy timeout); Herald's
client begins transactions IMMEDIATE, so the second writer waits its turn instead (api/sqlite_engine.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.exceptions import OperationalError

from api.settings import connection_config
from api.sqlite_engine import ImmediateSqliteClient


def client(kind: type[SqliteClient], path: Path) -> SqliteClient:
    credentials = dict(connection_config(f"sqlite://{path}")["credentials"])  # type: ignore[index]
    return kind(connection_name="default", **{**credentials, "busy_timeout": "5000"})


async def read_then_write_while_another_commits(kind: type[SqliteClient], path: Path) -> list[tuple[int, int]]:
    first, second = client(kind, path), client(kind, path)
    await first.create_connection(with_db=True)
    await second.create_connection(with_db=True)
    try:
        await first.execute_script("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER)")
        await first.execute_script("DELETE FROM counter; INSERT INTO counter VALUES (1, 0)")
        read = asyncio.Event()

        async def other_process_writes() -> None:
            await read.wait()
            await second.execute_query("UPDATE counter SET n = n + 10 WHERE id = 1")

        async def read_then_write() -> None:
            # The client's own transaction wrapper, begun and committed as `in_transaction()` does.
            conn = first._in_transaction().connection
            conn._connection = first._connection
            await conn.begin()
            try:
                await conn.execute_query("SELECT n FROM counter WHERE id = 1")
                read.set()
                await asyncio.sleep(0.3)  # the other write is attempted meanwhile (it waits, or commits)
                await conn.execute_query("UPDATE counter SET n = n + 1 WHERE id = 1")
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

        await asyncio.gather(read_then_write(), other_process_writes())
        return [tuple(row) for row in (await first.execute_query("SELECT id, n FROM counter"))[1]]
    finally:
        await first.close()
        await second.close()


async def test_a_transaction_that_read_first_still_writes(tmp_path: Path) -> None:
    assert await read_then_write_while_another_commits(ImmediateSqliteClient, tmp_path / "h.sqlite3") == [(1, 11)]


async def test_the_stock_client_fails_there(tmp_path: Path) -> None:
    # What the test above guards against: Tortoise's own client begins DEFERRED.
    with pytest.raises(OperationalError, match="locked"):
        await read_then_write_while_another_commits(SqliteClient, tmp_path / "stock.sqlite3")
