"""Herald's SQLite client: transactions begin IMMEDIATE.

The embedded default runs `serve` and `worker` as separate processes on one database file. A transaction begun
DEFERRED reads first and asks for the write lock at its first write; if another process holds it then, SQLite
answers "database is locked" at once, without waiting out the busy timeout (waiting could deadlock two such
upgrades). Taking the write lock at BEGIN makes every transaction wait its turn within `busy_timeout` instead (the
remedy Rails and Django 5.1, with `transaction_mode`, offer for this). Statements outside a transaction are as before.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.exceptions import TransactionManagementError


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class ImmediateSqliteClient(SqliteClient):
    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient


def get_client_class(db_info: dict[str, Any]) -> type[SqliteClient]:
    return ImmediateSqliteClient
