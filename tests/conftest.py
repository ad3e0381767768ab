"""Test fixtures: a real database (SQLite or PostgreSQL, chosen by HERALD_TEST_DB), real Redis, a real server.

HERALD_TEST_DB=sqlite (default) or postgres. PostgreSQL comes from TEST_POSTGRES_URL (default
postgres://postgres@127.0.0.1:5432/postgres); each session creates a fresh database and drops it at the end.
Redis comes from TEST_REDIS_URL (default redis://127.0.0.1:6379/9); the test database number is flushed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from api.app import create_app
from api.embedded_redis import EmbeddedRedis
from api.migrate import migrate_database
from api.settings import Settings
from models.tenancy.actions import create_api_key, create_sandbox
from models.tenancy.sandbox import Role

TEST_DB = os.environ.get("HERALD_TEST_DB", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def _local_redis_or_embedded() -> str:
    """Redis on 127.0.0.1:6379 if one answers; otherwise a throw-away embedded redis-server for this run."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            if conn.recv(16).startswith(b"+PONG"):
                return "redis://127.0.0.1:6379/9"
    except OSError:
        pass
    embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="herald-test-redis-")))
    url = embedded.start().rsplit("/", 1)[0] + "/9"
    atexit.register(embedded.stop)
    return url


REDIS_URL = os.environ.get("TEST_REDIS_URL") or _local_redis_or_embedded()
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
# Uploads (profile imports) land under data_dir; keep them out of the working tree.
TEST_DATA_DIR = Path(tempfile.mkdtemp(prefix="herald-test-data-"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def fresh_database(tmp_dir: Path, kind: str = TEST_DB) -> AsyncIterator[str]:
    """A new, empty database URL of the given kind; dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite://{tmp_dir / f'herald-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    name = f"herald_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = POSTGRES_ADMIN_URL.replace("postgres://", "postgresql://", 1)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "secret_key": TEST_SECRET,
        "worker_in_process": True,
        "log_level": "INFO",
        # A budget no other test exhausts; tests of the budget set their own.
        "cost_budget_maximum": 10_000_000,
        "cost_restore_rate": 10_000_000,
        # Webhook tests drive deliveries themselves (jobs/webhooks.py) with their own clock.
        "webhook_delivery": False,
        "data_dir": TEST_DATA_DIR,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("herald")


@pytest.fixture(scope="session")
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def database_url(tmp_root: Path) -> AsyncIterator[str]:
    async with fresh_database(tmp_root) as url:
        await migrate_database(make_settings(url))
        yield url


@dataclass
class RunningServer:
    base_url: str
    settings: Settings

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def ws_url(self) -> str:
        return self.graphql_url.replace("http://", "ws://")


@contextlib.asynccontextmanager
async def running_server(settings: Settings, lifespan: str = "on") -> AsyncIterator[RunningServer]:
    """The real app under a real uvicorn, in this event loop, on a free loopback port.

    lifespan="off" serves a second app on the session server's database connections (no queue, events or
    worker): running a second lifespan would close the connections the session server uses."""
    port = free_port()
    if "public_url" not in settings.model_fields_set:
        # Links in messages (tracking, unsubscribe) must reach this very server.
        settings.public_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan=lifespan
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped during startup")
            await asyncio.sleep(0.01)
    try:
        yield RunningServer(base_url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def server(database_url: str, redis: Redis) -> AsyncIterator[RunningServer]:
    async with running_server(make_settings(database_url)) as running:
        yield running


@dataclass
class SandboxKeys:
    name: str
    keys: dict[Role, str]

    @property
    def admin(self) -> str:
        return self.keys[Role.ADMIN]


async def new_sandbox(prefix: str = "sb") -> SandboxKeys:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    await create_sandbox(name, actor="test")
    keys = {}
    for role in Role:
        _, plaintext = await create_api_key(name, role, name=f"test {role.value}", actor="test")
        keys[role] = plaintext
    return SandboxKeys(name=name, keys=keys)


@pytest.fixture
async def sandbox(server: RunningServer) -> SandboxKeys:
    return await new_sandbox()


@pytest.fixture
async def other_sandbox(server: RunningServer) -> SandboxKeys:
    return await new_sandbox("other")


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url

    async def raw(
        self, query: str, variables: dict[str, Any] | None = None, key: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return await self.http.post(self.url, json={"query": query, "variables": variables or {}}, headers=headers)

    async def __call__(self, query: str, variables: dict[str, Any] | None = None, *, key: str) -> dict[str, Any]:
        """Runs an operation and asserts it has no top-level errors."""
        response = await self.raw(query, variables, key)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture
async def gql(server: RunningServer) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield GraphQLClient(http, server.graphql_url)


async def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Polls `predicate` (sync or async) until it returns a truthy value; fails after `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(interval)
