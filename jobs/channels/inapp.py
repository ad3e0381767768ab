"""In-app: "sending" is writing inbox rows, many per statement, idempotent on the delivery key.

The inbox model does not exist yet; `INBOX_TABLE` / `INBOX_COLUMNS` are the shape the integrator's model
should have (unique `idempotency_key`), read by `inAppMessages(namespace, identity)`.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from jobs.channels.base import FailureCode, InAppContent, OutgoingMessage, SendResult

INBOX_TABLE = "inbox_message"


@dataclass(frozen=True, slots=True)
class InboxRow:
    sandbox_id: int
    idempotency_key: str
    namespace: str
    identity: str
    campaign_id: int | None
    title: str
    body: str
    data: str  # JSON text
    created_at: datetime


INBOX_COLUMNS = tuple(InboxRow.__dataclass_fields__)
_row_values = operator.attrgetter(*INBOX_COLUMNS)  # dataclasses.astuple deep-copies: ~10x slower
# SQLite's bind limit is 32766 since 3.32 (999 before).
_MAX_PARAMS = {"sqlite": 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999}


def inbox_rows(
    messages: Sequence[OutgoingMessage],
    *,
    sandbox_id: int,
    namespace: str,
    campaign_id: int | None,
    now: datetime | None = None,
) -> list[InboxRow]:
    created_at = now or datetime.now(UTC)
    rows = []
    for message in messages:
        content = message.content
        if not isinstance(content, InAppContent):
            raise TypeError(f"not in-app content: {type(content).__name__}")
        rows.append(
            InboxRow(
                sandbox_id,
                message.idempotency_key,
                namespace,
                message.address,
                campaign_id,
                content.title,
                content.body,
                orjson.dumps(dict(content.data)).decode(),
                created_at,
            )
        )
    return rows


# PostgreSQL types of INBOX_COLUMNS, for the arrays `unnest` reads. `data` as JSON: assignable to a TEXT column
# (Herald's) and to a JSONB one (an integrator's), which TEXT is not.
_PG_TYPES = ("BIGINT", "TEXT", "TEXT", "TEXT", "BIGINT", "TEXT", "TEXT", "JSON", "TIMESTAMPTZ")


def insert_statements(rows: Sequence[InboxRow], dialect: str, table: str = INBOX_TABLE) -> list[tuple[str, list]]:
    """`INSERT … ON CONFLICT (idempotency_key) DO NOTHING` of the rows: on PostgreSQL one statement reading one
    array per column through `unnest` (cheap to bind whatever the count); on SQLite multi-row VALUES, split to
    stay under the bind limit."""
    columns = ", ".join(INBOX_COLUMNS)
    conflict = "ON CONFLICT (idempotency_key) DO NOTHING"
    if dialect == "postgres":
        if not rows:
            return []
        values = [_row_values(row) for row in rows]
        arrays = [list(column) for column in zip(*values, strict=True)]
        unnest = ", ".join(f"${i + 1}::{pg_type}[]" for i, pg_type in enumerate(_PG_TYPES))
        return [(f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({unnest}) {conflict}", arrays)]
    width = len(INBOX_COLUMNS)
    per_statement = _MAX_PARAMS[dialect] // width
    statements = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        groups = ("(" + ", ".join("?" * width) + ")" for _ in chunk)
        sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join(groups)} {conflict}"
        statements.append((sql, [value for row in chunk for value in _row_values(row)]))
    return statements


def insert_messages(
    messages: Sequence[OutgoingMessage],
    dialect: str,
    *,
    sandbox_id: int,
    namespace: str,
    campaign_id: int | None,
    now: datetime,
    table: str = INBOX_TABLE,
) -> list[tuple[str, list]]:
    """`insert_statements` of the messages' inbox rows; on PostgreSQL the values every row shares are bound once
    and only the others as arrays (binding is most of the statement's client-side cost)."""
    if dialect != "postgres":
        rows = inbox_rows(messages, sandbox_id=sandbox_id, namespace=namespace, campaign_id=campaign_id, now=now)
        return insert_statements(rows, dialect, table)
    if not messages:
        return []
    keys, identities, titles, bodies, data = [], [], [], [], []
    for message in messages:
        content = message.content
        if not isinstance(content, InAppContent):
            raise TypeError(f"not in-app content: {type(content).__name__}")
        keys.append(message.idempotency_key)
        identities.append(message.address)
        titles.append(content.title)
        bodies.append(content.body)
        data.append(orjson.dumps(dict(content.data)).decode())
    sql = (
        f"INSERT INTO {table} ({', '.join(INBOX_COLUMNS)}) "
        f"SELECT $1::BIGINT, k, $2::TEXT, i, $3::BIGINT, t, b, d, $4::TIMESTAMPTZ "
        f"FROM unnest($5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::JSON[]) AS u(k, i, t, b, d) "
        f"ON CONFLICT (idempotency_key) DO NOTHING"
    )
    return [(sql, [sandbox_id, namespace, campaign_id, now, keys, identities, titles, bodies, data])]


Execute = Callable[[str, list], Awaitable[object]]


class InAppAdapter:
    """Writes a batch as inbox rows through `execute(sql, params)` (e.g. a Tortoise connection's execute_query)."""

    def __init__(
        self, execute: Execute, *, dialect: str, sandbox_id: int, namespace: str, campaign_id: int | None
    ) -> None:
        self.execute = execute
        self.dialect = dialect
        self.sandbox_id = sandbox_id
        self.namespace = namespace
        self.campaign_id = campaign_id

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        rows = inbox_rows(messages, sandbox_id=self.sandbox_id, namespace=self.namespace, campaign_id=self.campaign_id)
        try:
            for sql, params in insert_statements(rows, self.dialect):
                await self.execute(sql, params)
        except Exception as exc:  # any database error: retrying is safe, ON CONFLICT skips rows already written
            return [SendResult.retry(5.0, FailureCode.TEMPORARY, f"inbox write failed: {exc!r}") for _ in messages]
        return [SendResult.sent(message.idempotency_key) for message in messages]

    async def close(self) -> None:
        return None
