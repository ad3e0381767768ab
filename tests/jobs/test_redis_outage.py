"""Workers that survive Redis (issue 14 point 4), against a redis-server each test starts and kills itself (never
the shared one): the worker's poll, enqueueing and the throttle retry with backoff, one WARNING per outage.

A dropped connection inside arq's WATCH/MULTI job start is made exact by a TCP proxy that cuts the connection on
the first command after a WATCH: redis-py then raises WatchError, which is not a ConnectionError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError

from jobs.queue import JobQueue
from jobs.throttle import Throttle
from jobs.worker import ResilientWorker
from tests.conftest import free_port
from tests.crash.harness import RedisServer


class CuttingProxy:
    """TCP proxy to a redis-server; when armed, cuts the connection at the first command after a WATCH."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.armed = False
        self.cuts = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> CuttingProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def down() -> None:
            with contextlib.suppress(OSError):
                while data := await up_reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        downstream = asyncio.create_task(down())
        watching = False
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self.armed and watching:
                    self.armed = False
                    self.cuts += 1
                    break
                watching = b"WATCH" in data.upper()
                up_writer.write(data)
                await up_writer.drain()
        up_writer.close()
        writer.close()
        downstream.cancel()


class Records(logging.Handler):
    """Log records of a logger, with an event per message fragment the test waits for."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.waiting: dict[str, asyncio.Event] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        for fragment, event in self.waiting.items():
            if fragment in record.getMessage():
                event.set()

    def expect(self, fragment: str) -> asyncio.Event:
        self.waiting[fragment] = asyncio.Event()
        return self.waiting[fragment]

    def warnings(self, fragment: str) -> int:
        return sum(r.levelno == logging.WARNING and fragment in r.getMessage() for r in self.records)


@contextlib.contextmanager
def recording(name: str) -> Any:
    handler, logger = Records(), logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def pool(own_redis: RedisServer) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(RedisSettings.from_dsn(own_redis.url))
    yield redis
    await redis.aclose()


async def within(awaitable: Any, seconds: float = 15) -> Any:
    return await asyncio.wait_for(awaitable, seconds)


async def test_worker_outlives_a_cut_inside_watch_and_redis_killed_twice(own_redis: RedisServer, pool: ArqRedis):
    ran: asyncio.Queue[str] = asyncio.Queue()

    async def noted(ctx: dict[str, Any], label: str) -> str:
        ran.put_nowait(label)
        return label

    noted.__qualname__ = noted.__name__ = "noted"  # arq registers a function by its qualified name
    async with CuttingProxy(own_redis.port) as proxy:
        # max_jobs=1: a job start that leaked arq's semaphore would leave this worker unable to start any job.
        worker = ResilientWorker(
            functions=[noted],
            redis_settings=RedisSettings.from_dsn(f"redis://127.0.0.1:{proxy.port}/0"),
            max_jobs=1,
            poll_delay=0.05,
            handle_signals=False,
        )
        with recording("jobs.worker") as logs:
            running = asyncio.create_task(worker.async_run())
            try:
                # 1. The connection drops inside WATCH/MULTI: WatchError, then the same job starts on a later poll.
                cut_over = logs.expect("Redis is back")
                proxy.armed = True
                await pool.enqueue_job("noted", "after-watch-cut", _job_id="after-watch-cut")
                assert await within(ran.get()) == "after-watch-cut"
                assert proxy.cuts == 1
                # The job can start in a poll that then fails on the cut connection: the outage ends at the next
                # poll that succeeds, and the kills below must each start an outage of their own.
                await within(cut_over.wait())
                # 2. Redis killed and started again, twice (an empty server comes back each time).
                for outage in (1, 2):
                    back = logs.expect("Redis is back")
                    retried = logs.expect("still unavailable")
                    own_redis.stop()
                    await within(retried.wait())  # the poll failed at least twice
                    assert not running.done()
                    own_redis.start()
                    await within(back.wait())
                    async with contextlib.aclosing(await create_pool(RedisSettings.from_dsn(own_redis.url))) as fresh:
                        await fresh.enqueue_job("noted", f"after-restart-{outage}")
                    assert await within(ran.get()) == f"after-restart-{outage}"
                await within(asyncio.gather(*worker.tasks.values()))  # arq's bookkeeping of the last job
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
                await worker.close()
    assert worker.jobs_complete == 3 and worker.jobs_failed == 0
    # The WATCH cut and each kill: one WARNING when it starts and one when Redis is back, not one per attempt.
    assert logs.warnings("Redis unavailable") == 3, [r.getMessage() for r in logs.records]
    assert logs.warnings("Redis is back") == 3


async def test_enqueue_waits_for_redis_to_come_back(own_redis: RedisServer, pool: ArqRedis) -> None:
    with recording("jobs.queue") as logs:
        retried = logs.expect("still unavailable")
        own_redis.stop()
        enqueue = asyncio.create_task(JobQueue(pool).worker_ping(1, "hello", "outage"))
        await within(retried.wait())
        assert not enqueue.done()
        own_redis.start()
        job = await within(enqueue)
    assert job is not None and job.job_id == "worker_ping:outage"
    assert await pool.zcard("arq:queue") == 1
    assert logs.warnings("Redis unavailable") == 1 and logs.warnings("Redis is back") == 1


async def test_enqueue_gives_up_after_its_retry_period(own_redis: RedisServer, pool: ArqRedis) -> None:
    own_redis.stop()
    with recording("jobs.queue") as logs, pytest.raises(RedisError):
        await within(JobQueue(pool, retry_seconds=0.5).worker_ping(1, "hello", "gone"))
    assert logs.warnings("Redis unavailable") == 1
    assert sum("still unavailable" in r.getMessage() for r in logs.records) >= 1


async def test_throttle_waits_for_redis_rather_than_sending_beyond_the_rate(
    own_redis: RedisServer, pool: ArqRedis
) -> None:
    throttle = Throttle(pool, run_id=7, rate=100)
    assert await throttle.take(50) == 0.0
    with recording("jobs.throttle") as logs:
        retried = logs.expect("still unavailable")
        own_redis.stop()
        take = asyncio.create_task(throttle.take(10))
        await within(retried.wait())
        assert not take.done()
        own_redis.start()  # an empty server: the script is loaded again (NOSCRIPT) and the bucket starts full
        assert await within(take) == 0.0
    assert logs.warnings("Redis unavailable") == 1 and logs.warnings("Redis is back") == 1


async def test_a_worker_started_before_redis_waits_for_it(own_redis: RedisServer) -> None:
    ran: asyncio.Queue[str] = asyncio.Queue()

    async def noted(ctx: dict[str, Any], label: str) -> str:
        ran.put_nowait(label)
        return label

    noted.__qualname__ = noted.__name__ = "noted"  # arq registers a function by its qualified name
    own_redis.stop()
    settings = RedisSettings.from_dsn(own_redis.url)
    settings.conn_retries, settings.conn_retry_delay = 1, 0  # arq's own retries, short: ours go on
    worker = ResilientWorker(functions=[noted], redis_settings=settings, poll_delay=0.05, handle_signals=False)
    with recording("jobs.worker") as logs:
        retried = logs.expect("still unavailable")
        running = asyncio.create_task(worker.async_run())
        try:
            await within(retried.wait())
            assert not running.done()
            own_redis.start()
            async with contextlib.aclosing(await create_pool(RedisSettings.from_dsn(own_redis.url))) as pool:
                await pool.enqueue_job("noted", "first")
            assert await within(ran.get()) == "first"
            await within(asyncio.gather(*worker.tasks.values()))
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await worker.close()
    assert logs.warnings("Redis unavailable") == 1
