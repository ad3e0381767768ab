"""with_db_retry runs a write again when PostgreSQL rolls its transaction back to break a deadlock, as it does for
a cut connection: a batch's outcomes lost to a lock cycle between two workers would be sent again."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from tortoise.transactions import in_transaction

from jobs.sending import with_db_retry
from tests.conftest import TEST_DB

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="deadlock detection is PostgreSQL's")


async def test_a_write_rolled_back_by_a_deadlock_is_written_again(app, database_url: str) -> None:
    other = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        await other.execute("CREATE TABLE IF NOT EXISTS retry_probe (id int PRIMARY KEY, n int NOT NULL)")
        await other.execute("TRUNCATE retry_probe; INSERT INTO retry_probe VALUES (1, 0), (2, 0)")
        # The other session waits longer before checking for a cycle, so the write under test is the victim.
        await other.execute("SET deadlock_timeout = '20s'")
        write_holds_1, other_holds_2, attempts = asyncio.Event(), asyncio.Event(), 0

        async def write() -> None:
            nonlocal attempts
            attempts += 1
            async with in_transaction() as conn:
                await conn.execute_query("UPDATE retry_probe SET n = n + 1 WHERE id = 1")
                write_holds_1.set()
                await other_holds_2.wait()
                await conn.execute_query("UPDATE retry_probe SET n = n + 1 WHERE id = 2")

        async def opposite_order() -> None:
            async with other.transaction():
                await other.execute("UPDATE retry_probe SET n = n + 10 WHERE id = 2")
                other_holds_2.set()
                await write_holds_1.wait()
                await other.execute("UPDATE retry_probe SET n = n + 10 WHERE id = 1")

        await asyncio.wait_for(asyncio.gather(with_db_retry(write), opposite_order()), timeout=60)
        rows = dict(await other.fetch("SELECT id, n FROM retry_probe"))
    finally:
        await other.execute("DROP TABLE IF EXISTS retry_probe")
        await other.close()
    assert attempts == 2
    assert rows == {1: 11, 2: 11}  # both transactions committed once: the victim's retry included
