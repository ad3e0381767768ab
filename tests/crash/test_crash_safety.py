"""Crash safety with real processes (DESIGN §6, §10 reliability).

Each scenario runs real `herald worker` processes against a fresh PostgreSQL database and a redis-server this
module starts itself, sending email to a slow aiosmtpd sink in the test process that records (Message-ID,
recipient) for every DATA; it breaks something mid-run and then checks the ledger (Herald.check).

PostgreSQL only: several worker processes sharing one database, `FOR UPDATE SKIP LOCKED` and
`pg_terminate_backend` are what is under test; SQLite is the embedded single-process mode (DESIGN §9).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.runs import BATCH_SIZE
from tests.conftest import TEST_DB, fresh_database, wait_until
from tests.crash.harness import CHECKER_APP, ROOT, Herald, RedisServer, SlowSink, contactable
from tests.jobs.smtp_sink import smtp_sink

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="needs PostgreSQL (several worker processes)")

# Messages one worker can have in flight when it dies: the batch it claimed (written back as a whole).
IN_FLIGHT = BATCH_SIZE


@pytest.fixture(scope="module")
async def crash_db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with fresh_database(tmp_path_factory.mktemp("crash")) as url:
        env = Herald(url, RedisServer(Path("/tmp")), Path("/tmp")).env()
        done = subprocess.run([sys.executable, "-m", "api.cli", "migrate"], cwd=ROOT, env=env, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
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
            if "Traceback" in text:
                print(f"---- {log.name}\n{text[-6000:]}")


@pytest.fixture
async def sink() -> AsyncIterator[tuple[SlowSink, int]]:
    handler = SlowSink()
    async with smtp_sink(handler) as running:
        yield handler, running.port


async def test_worker_killed_mid_batch_then_restarted(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 1500, "sink_port": port})
    worker = herald.worker()
    # Mid-batch: the sink has messages of a batch whose results are not written yet.
    await wait_until(lambda: len(handler.pairs) >= 700, timeout=60)
    worker.kill9()
    before = len(handler.pairs)
    print("at kill:", before, await herald.statuses(seeded["run_id"]))
    herald.worker()
    result = await herald.check(
        seeded["run_id"], handler, contactable=contactable(1500), crashes=1, in_flight=IN_FLIGHT
    )
    assert before < len(handler.pairs)
    print("kill -9:", result["by_status"], "duplicates", result["duplicated"])
