"""The two SQL dialects and the parameter collector every hand-written statement uses. Pure: imports no framework."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Dialect(StrEnum):
    POSTGRES = "postgres"
    SQLITE = "sqlite"


class SqlParams:
    """Collects parameters and hands out placeholders: `?` (SQLite) or `$n` (PostgreSQL)."""

    def __init__(self, dialect: Dialect, values: list[Any] | None = None) -> None:
        self.dialect = dialect
        self.values: list[Any] = list(values or [])

    def add(self, value: Any) -> str:
        self.values.append(value)
        return "?" if self.dialect is Dialect.SQLITE else f"${len(self.values)}"

    def typed(self, value: Any, pg_type: str | None = None) -> str:
        """A placeholder with its PostgreSQL type spelled out (asyncpg cannot infer it in VALUES lists)."""
        placeholder = self.add(value)
        if pg_type and self.dialect is Dialect.POSTGRES:
            return f"CAST({placeholder} AS {pg_type})"
        return placeholder
