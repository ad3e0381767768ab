"""Applying migrations safely, and refusing to serve an unmigrated database."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.migrations.api import migrate as tortoise_migrate
from tortoise.migrations.executor import MigrationExecutor

from api.settings import Settings, tortoise_config

logger = logging.getLogger(__name__)

# Arbitrary constant shared by every Herald process: the key of the PostgreSQL advisory lock.
MIGRATION_LOCK_KEY = 0x4E52414C44  # "HERALD"-ish


class UnmigratedDatabaseError(RuntimeError):
    pass


def _sqlite_path(database_url: str) -> Path:
    return Path(urlsplit(database_url).netloc + urlsplit(database_url).path)


def _asyncpg_dsn(database_url: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(scheme="postgresql", query=""))


@contextlib.asynccontextmanager
async def migration_lock(settings: Settings, timeout_seconds: float = 300) -> AsyncIterator[None]:
    """One migrating process at a time; the others wait, then find nothing left to do."""
    url = settings.resolved_database_url
    deadline = time.monotonic() + timeout_seconds
    if settings.is_sqlite:
        db_path = _sqlite_path(url)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{db_path}.migrate-lock", "w") as lock_file:
            while True:
                try:
                    fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError("another process holds the migration lock") from None
                    await asyncio.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        return
    # A blocking pg_advisory_lock can deadlock against CREATE INDEX CONCURRENTLY: poll the try-variant.
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY):
            if time.monotonic() > deadline:
                raise TimeoutError("another process holds the migration lock")
            await asyncio.sleep(0.2)
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def migrate_database(settings: Settings, target: str | None = None) -> list[str]:
    """Apply pending migrations under the lock; returns the names applied."""
    applied: list[str] = []

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(name)
            logger.info("applied migration %s.%s", app_label, name)

    async with migration_lock(settings):
        try:
            await tortoise_migrate(
                config=tortoise_config(settings.resolved_database_url, for_migrations=True),
                target=target,
                progress=progress,
            )
        finally:
            await Tortoise.close_connections()
    return applied


async def pending_migrations() -> list[str]:
    """Migrations not yet applied to the database Tortoise is connected to."""
    app_config = Tortoise.apps and {"herald": _herald_app_config()}
    executor = MigrationExecutor(get_connection("default"), app_config)
    return [f"{step.migration.app_label}.{step.migration.name}" for step in await executor.plan()]


def _herald_app_config() -> dict:
    return tortoise_config("sqlite://:memory:")["apps"]["herald"]


async def ensure_migrated() -> None:
    pending = await pending_migrations()
    if pending:
        raise UnmigratedDatabaseError(
            f"The database is not migrated ({len(pending)} pending: {', '.join(pending)}). Run `herald migrate` first."
        )
