"""Making a crash land at an exact moment without hooks in Herald: the test holds a PostgreSQL lock the worker's
next statement needs, waits until pg_stat_activity shows that statement waiting on it, breaks the worker
(kill -9 or pg_terminate_backend), then lets go."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.crash.harness import CHECKER_APP
from tests.e2e.polling import wait_until


class Locker:
    """A transaction of the test's own (named like the checker, so connection cuts spare it)."""

    def __init__(self, database_url: str) -> None:
        self.dsn = database_url.replace("postgres://", "postgresql://", 1)
        self.conn: asyncpg.Connection | None = None
        self.watcher: asyncpg.Connection | None = None  # pg_stat_activity is a snapshot per transaction
        self.pid = 0
        self.tx: Any = None

    async def __aenter__(self) -> Locker:
        self.conn = await asyncpg.connect(self.dsn, server_settings={"application_name": CHECKER_APP})
        self.watcher = await asyncpg.connect(self.dsn, server_settings={"application_name": CHECKER_APP})
        self.pid = await self.conn.fetchval("SELECT pg_backend_pid()")
        self.tx = self.conn.transaction()
        await self.tx.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()
        await self.conn.close()
        await self.watcher.close()

    async def hold(self, sql: str, *args: Any) -> None:
        await self.conn.execute(sql, *args)

    async def release(self) -> None:
        if self.tx is not None:
            await self.tx.rollback()
            self.tx = None

    async def waiters(self, *fragments: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Waits until a client backend waits on this transaction's locks (wait_event_type 'Lock') with a
        statement containing every fragment (case-insensitive); returns the waiters."""

        found: list[dict[str, Any]] = []

        async def blocked() -> list[dict[str, Any]] | None:
            rows = await self.watcher.fetch(
                "SELECT pid, query, wait_event_type, wait_event, pg_blocking_pids(pid) AS blockers "
                "FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = current_database() "
                "AND state <> 'idle'"
            )
            found[:] = [dict(r) for r in rows]
            waiting = [r for r in found if r["wait_event_type"] == "Lock" and self.pid in r["blockers"]]
            match = any(all(f.lower() in r["query"].lower() for f in fragments) for r in waiting)
            return waiting if match else None

        try:
            return await wait_until(blocked, timeout=timeout, interval=0.05)
        except TimeoutError:
            raise AssertionError(f"no backend waits on the test's lock with {fragments}: {found}") from None
