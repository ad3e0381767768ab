"""Test fixtures: a real database (SQLite or PostgreSQL, chosen by HERALD_TEST_DB), a real Redis, the real app.

HERALD_TEST_DB=sqlite (default) or postgres. The schema is migrated once per run into a template (a SQLite file;
a PostgreSQL database from TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres) and each
process (each pytest-xdist worker) gets its own copy, dropped at the end.
Redis: each process starts its own embedded redis-server, unless TEST_REDIS_URL is given (then that database is
flushed, and the run must be serial: one process).

GraphQL requests go in-process (`gql`: httpx over ASGITransport to `create_app(settings)`); no worker runs, so
queued work waits until a test runs it with `drain_jobs()` (tests/drain.py). `server` serves the same app on a
loopback port for WebSocket clients and for URLs in messages (public_url); tests/e2e and tests/crash run real
processes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from arq.connections import RedisSettings
from redis.asyncio import Redis
from starlette.applications import Starlette

from api.app import create_app
from api.embedded_redis import EmbeddedRedis
from api.migrate import migrate_database
from api.settings import Settings
from jobs.context import CONTEXT_KEY, WorkerContext
from jobs.worker import FUNCTIONS
from models.tenancy.actions import create_api_key, create_sandbox
from models.tenancy.sandbox import Role
from tests.drain import RUNNING_TEST_WORKERS, Drained, TestWorker
from tests.drain import drain_jobs as run_due_jobs
from tests.serving import RunningServer, free_port, running_server, subscribe  # noqa: F401 - fixtures' API

# The test identity provider (tests/oidc): a session fixture, started only in processes whose tests ask for it.
pytest_plugins = ["tests.oidc.provider"]

TEST_DB = os.environ.get("HERALD_TEST_DB", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
# Uploads (profile imports) land under data_dir; keep them out of the working tree.
TEST_DATA_DIR = Path(tempfile.mkdtemp(prefix="herald-test-data-"))
# "gw0", "gw1", … under pytest-xdist; "main" in a serial run.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
# One id per run, chosen by the controlling process (pytest_configure) and inherited by the xdist workers.
RUN_ID_VAR = "HERALD_TEST_RUN_ID"

_redis_url: str | None = None


def _redis() -> str:
    """TEST_REDIS_URL if given; otherwise this process's own embedded redis-server, started on first use."""
    global _redis_url
    if _redis_url is None:
        given = os.environ.get("TEST_REDIS_URL")
        if given:
            _redis_url = given
        else:
            embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="herald-test-redis-")))
            _redis_url = embedded.start()
            atexit.register(embedded.stop)
    return _redis_url


def __getattr__(name: str) -> Any:
    # REDIS_URL is resolved lazily: the xdist controller, which runs no test, starts no Redis.
    if name == "REDIS_URL":
        return _redis()
    raise AttributeError(name)


def _admin_dsn() -> str:
    return POSTGRES_ADMIN_URL.replace("postgres://", "postgresql://", 1)


def _postgres_url(name: str) -> str:
    return f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


async def _drop_postgres(name: str) -> None:
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(tmp_dir: Path, kind: str = TEST_DB) -> AsyncIterator[str]:
    """A new, empty database URL of the given kind; dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite://{tmp_dir / f'herald-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    name = f"herald_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield _postgres_url(name)
    finally:
        await _drop_postgres(name)


def _template_name(run_id: str) -> str:
    return f"herald_tpl_{run_id}"


def _template_dir(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"herald-test-template-{run_id}"


def pytest_configure(config: pytest.Config) -> None:
    """The controlling process migrates the template once, before any xdist worker starts."""
    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get(RUN_ID_VAR):
        return
    # Workers sharing TEST_REDIS_URL would flush and drain one another's queues.
    numprocesses = getattr(config.option, "numprocesses", None)
    if os.environ.get("TEST_REDIS_URL") and numprocesses not in (None, 0, 1):
        raise pytest.UsageError("TEST_REDIS_URL is one Redis database for one process: run with -n 0, or unset it")
    run_id = uuid.uuid4().hex[:10]
    os.environ[RUN_ID_VAR] = run_id
    config._herald_run_id = run_id  # type: ignore[attr-defined]
    asyncio.run(_make_template(run_id))


async def _make_template(run_id: str) -> None:
    directory = _template_dir(run_id)
    directory.mkdir(parents=True, exist_ok=True)
    if TEST_DB == "sqlite":
        await migrate_database(make_settings(f"sqlite://{directory / 'template.sqlite3'}", redis_url="redis://-"))
        return
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{_template_name(run_id)}"')
    finally:
        await conn.close()
    await migrate_database(make_settings(_postgres_url(_template_name(run_id)), redis_url="redis://-"))


# Real processes, seconds to a minute each: started first, so parallel workers are not left waiting on them at
# the end of a run.
SLOW_FIRST = ("tests/e2e/", "tests/crash/", "tests/test_migrations.py", "tests/test_bench_smoke.py")


# What these check does not depend on the database (browsers and CORS, protocol conformance, fuzzing the HTTP
# surface for server errors, pure rules): CI runs them in the SQLite tier only, the PostgreSQL tier being the
# longer (its crash tests need PostgreSQL).
DATABASE_INDEPENDENT = (
    "tests/unit/",
    "tests/conformance/",
    "tests/e2e/test_browser_cors.py",
    "tests/e2e/test_browser_people.py",
    "tests/e2e/test_fuzz_and_secrets.py",
    "tests/test_schema_policy.py",
    "tests/test_schema_snapshot.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(SLOW_FIRST))
    if TEST_DB == "postgres" and not os.environ.get("HERALD_TEST_EVERYTHING"):
        why = "database-independent: run in the SQLite tier (HERALD_TEST_EVERYTHING=1 runs it here too)"
        skip = pytest.mark.skip(reason=why)
        for item in items:
            if item.nodeid.startswith(DATABASE_INDEPENDENT):
                item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    run_id = getattr(config, "_herald_run_id", None)
    if run_id is None:
        return
    shutil.rmtree(_template_dir(run_id), ignore_errors=True)
    if TEST_DB == "postgres":
        asyncio.run(_drop_postgres(_template_name(run_id)))


@contextlib.asynccontextmanager
async def migrated_database(tmp_dir: Path) -> AsyncIterator[str]:
    """This process's copy of the run's migrated template; dropped afterwards."""
    run_id = os.environ[RUN_ID_VAR]
    if TEST_DB == "sqlite":
        path = tmp_dir / f"herald-{WORKER}.sqlite3"
        shutil.copyfile(_template_dir(run_id) / "template.sqlite3", path)
        yield f"sqlite://{path}"
        return
    name = f"herald_test_{run_id}_{WORKER}"
    # PostgreSQL copies a template for one session at a time ("being accessed by other users"): one worker at a
    # time takes this lock to copy.
    with open(_template_dir(run_id) / "copy.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn = await asyncpg.connect(_admin_dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_template_name(run_id)}"')
        finally:
            await conn.close()
    try:
        yield _postgres_url(name)
    finally:
        await _drop_postgres(name)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        # No worker: tests run queued jobs themselves (drain_jobs).
        "worker_in_process": False,
        "log_level": "INFO",
        # A budget no other test exhausts; tests of the budget set their own.
        "cost_budget_maximum": 10_000_000,
        "cost_restore_rate": 10_000_000,
        # Webhook tests drive deliveries themselves (jobs/webhooks.py) with their own clock.
        "webhook_delivery": False,
        "data_dir": TEST_DATA_DIR,
        # A wake-up per accepted trigger, due at once: drain_jobs runs due jobs only.
        "trigger_wake_seconds": 0,
        # Every request marks the API busy: runs are not paced unless a test asks (tests/jobs/test_send_pacing.py).
        "send_share_when_api_busy": 1.0,
    }
    values.update(overrides)
    if "redis_url" not in values:
        values["redis_url"] = _redis()
    return Settings(**values)


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("herald")


@pytest.fixture(scope="session")
async def redis() -> AsyncIterator[Redis]:
    # Flushed: this process's own embedded Redis, or the database TEST_REDIS_URL names explicitly.
    client = Redis.from_url(_redis())
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def database_url(tmp_root: Path) -> AsyncIterator[str]:
    async with migrated_database(tmp_root) as url:
        yield url


@pytest.fixture(scope="session")
async def app(database_url: str, redis: Redis) -> AsyncIterator[Starlette]:
    """The app, its lifespan run once for the session (database connections, queue, events; no worker)."""
    port = free_port()
    # Links in messages (tracking, unsubscribe) point at `server`, which serves this app on that port.
    application = create_app(make_settings(database_url, public_url=f"http://127.0.0.1:{port}"))
    application.state.test_port = port
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def server(app: Starlette) -> AsyncIterator[RunningServer]:
    """The session app on a loopback port (lifespan already running): for WebSocket clients and message links."""
    settings: Settings = app.state.settings
    async with running_server(settings, lifespan="off", app=app, port=app.state.test_port) as running:
        running.app = app
        yield running


@pytest.fixture
def drain_jobs(app: Starlette):
    """`await drain_jobs()` runs every queued job due now, and what those enqueue, to completion (tests/drain.py);
    `until=` makes deferred jobs due by then run now, `dispatch_at=` runs the dispatcher at that time first."""

    async def drain(*, until: Any = None, dispatch_at: Any = None, clock: Any = None) -> Drained:
        return await run_due_jobs(
            app.state.settings, app.state.redis, until=until, dispatch_at=dispatch_at, clock=clock
        )

    return drain


@pytest.fixture
async def worker(app: Starlette) -> AsyncIterator[None]:
    """An arq worker in this process for the test's duration, for requests that wait on a job's result
    themselves (campaignSendProof). Everything else runs its jobs with drain_jobs."""
    settings: Settings = app.state.settings

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx[CONTEXT_KEY] = WorkerContext(settings)

    # Whatever an earlier test left queued runs now, to completion, before this worker starts: otherwise this
    # worker would pick it up and could leave it half-run when the test ends.
    await run_due_jobs(settings, app.state.redis)
    # No cron: the dispatcher would pick up other tests' pending runs.
    running = TestWorker(
        functions=FUNCTIONS,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        on_startup=on_startup,
        handle_signals=False,
        poll_delay=settings.worker_poll_delay_seconds,
    )
    task = asyncio.create_task(running.async_run(), name="test-worker")
    RUNNING_TEST_WORKERS.add(running)
    try:
        yield
    finally:
        RUNNING_TEST_WORKERS.discard(running)
        # It may have picked up a job an earlier test left queued: let the jobs in flight finish (close() would
        # cancel them, leaving arq's in-progress key, which keeps their job from ever running again).
        running.allow_pick_jobs = False
        async with running.polling:  # a poll that read job ids before the flag changed has started them
            pass
        await asyncio.gather(*running.tasks.values())
        await running.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
async def sandbox(app: Starlette) -> SandboxKeys:
    return await new_sandbox()


@pytest.fixture
async def other_sandbox(app: Starlette) -> SandboxKeys:
    return await new_sandbox("other")


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, url: str, app: Starlette | None = None) -> None:
        self.http = http
        self.url = url
        self.app = app

    async def drain_jobs(self, *, until: Any = None, dispatch_at: Any = None, clock: Any = None) -> Drained:
        """Runs the queued jobs to completion (see the `drain_jobs` fixture); for helpers that only get `gql`."""
        assert self.app is not None, "a GraphQLClient on the session app drains its jobs"
        return await run_due_jobs(
            self.app.state.settings, self.app.state.redis, until=until, dispatch_at=dispatch_at, clock=clock
        )

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


def in_process_client(app: Starlette, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client whose requests go straight to the app (no socket), from 127.0.0.1."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 12345))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=30, **kwargs)


@pytest.fixture
async def gql(app: Starlette) -> AsyncIterator[GraphQLClient]:
    async with in_process_client(app) as http:
        yield GraphQLClient(http, "http://127.0.0.1/graphql", app)
