"""Fixtures of the crash tests: a migrated database per module, a redis-server of the module's own, the world of
one scenario (Herald) and the slow SMTP sink."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import fresh_database
from tests.crash.harness import ROOT, Herald, RedisServer, SlowSink
from tests.jobs.smtp_sink import smtp_sink


@pytest.fixture(scope="module")
async def crash_db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with fresh_database(tmp_path_factory.mktemp("crash")) as url:
        env = Herald(url, RedisServer(Path("/tmp")), Path("/tmp")).env()
        migrate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api.cli", "migrate", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
        )
        _, err = await migrate.communicate()
        assert migrate.returncode == 0, err.decode()[-3000:]
        yield url


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def herald(crash_db: str, own_redis: RedisServer, tmp_path: Path) -> AsyncIterator[Herald]:
    if own_redis.process is None or own_redis.process.poll() is not None:
        own_redis.start()
    own_redis.cli("FLUSHALL")  # our own server, not the shared 6379
    world = Herald(crash_db, own_redis, tmp_path)
    await world.connect()
    try:
        yield world
    finally:
        await world.close()
        for log in tmp_path.glob("worker-*.log"):
            text = log.read_text(errors="replace")
            if "Traceback" in text or "error" in text.lower():
                print(f"---- {log.name}\n{text[-6000:]}")


@pytest.fixture
async def sink() -> AsyncIterator[tuple[SlowSink, int]]:
    handler = SlowSink()
    async with smtp_sink(handler) as running:
        yield handler, running.port
