"""Real processes for the crash tests: a redis-server of the test's own, `herald worker` subprocesses, a slow
aiosmtpd sink in the test process, and the ledger checks run after each scenario."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import TEST_SECRET, free_port
from tests.e2e.polling import wait_until
from tests.jobs.smtp_sink import Received, SinkHandler

ROOT = Path(__file__).resolve().parents[2]
CHECKER_APP = "crash-test-checker"
FINAL = ("SENT", "DELIVERED", "FAILED", "BOUNCED", "CANCELLED", "EXCLUDED")


class RedisServer:
    """A redis-server owned by the test (FLUSHALL and restarts never touch the shared 6379)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args: str) -> str:
        done = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True)
        return done.stdout.strip()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class Worker:
    """One `herald worker` process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen | None = None
        self.killed = False

    def start(self) -> Worker:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker"], cwd=ROOT, env=self.env, stdout=handle, stderr=handle
        )
        handle.close()
        return self

    def kill9(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None
            self.killed = True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.process = None

    def sent_for_a_run(self) -> bool:
        """Whether this process finished a run job that sent (arq logs "← job_id:function ● result")."""
        text = self.log.read_text(errors="replace")
        return re.search(r"← (execute_run|send_run_part):\S+ ● \{[^}]*'status'", text) is not None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class SlowSink(SinkHandler):
    """Records (Message-ID, recipient) per DATA; waits `delay` per message so crashes land mid-run; answers 421
    to DATA while `refuse_until` (monotonic) is in the future; refuses RCPT of `gone` domain with 550."""

    delay: float = 0.004
    refuse_until: float = 0.0
    refused_data: int = 0
    pairs: list[tuple[str, str]] = field(default_factory=list)
    # Once `pause_after` messages are in, every DATA waits for `gate` (`paused` tells the test it happened).
    pause_after: int = -1
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    # Once `refuse_after` recipients were accepted, every RCPT gets `refusal` (a relay refusing the sender) until
    # the test sets it back to -1. A whole outcome chunk is refused when it is a multiple of the chunk size.
    refuse_after: int = -1
    refusal: str = "550 5.7.1 Relaying denied: client host blocked using zen.spamhaus.org"
    accepted: int = 0
    refused_rcpt: int = 0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options):
        if address.endswith("@gone.example.com"):
            return "550 5.1.1 No such user"
        if 0 <= self.refuse_after <= self.accepted:
            self.refused_rcpt += 1
            return self.refusal
        self.accepted += 1
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        if 0 <= self.pause_after <= len(self.pairs):
            self.paused.set()
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        if time.monotonic() < self.refuse_until:
            self.refused_data += 1
            return "421 4.3.2 Service not available, try later"
        data = envelope.original_content or b""
        message_id = _header(data, b"message-id")
        for rcpt in envelope.rcpt_tos:
            self.pairs.append((message_id, rcpt))
        self.received.append(Received(message_id, envelope.mail_from or "", list(envelope.rcpt_tos), b"", 0))
        return "250 2.0.0 OK queued"


def _header(data: bytes, name: bytes) -> str:
    for line in data.split(b"\r\n"):
        if not line:
            break
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode()
    return ""


def key_of(message_id: str) -> str:
    return message_id.strip("<>").split("@", 1)[0]


class Herald:
    """The scenario's world: one database, one redis-server, workers, and actions run in subprocesses."""

    def __init__(self, database_url: str, redis: RedisServer, logs: Path, lease: float = 3.0) -> None:
        self.database_url = database_url
        self.redis = redis
        self.logs = logs
        self.lease = lease
        self.workers: list[Worker] = []
        self.db: asyncpg.Connection | None = None

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "DATABASE_URL", "REDIS_URL"))}
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis.url,
            SECRET_KEY=TEST_SECRET,
            RUN_LEASE_SECONDS=str(self.lease),
            SEND_RETRY_BASE_SECONDS="1",
            LOG_LEVEL="WARNING",
            WORKER_POLL_DELAY_SECONDS="0.05",
        )
        env.update(extra)
        return env

    def worker(self, **env: str) -> Worker:
        worker = Worker(self.env(**env), self.logs / f"worker-{len(self.workers)}.log").start()
        self.workers.append(worker)
        return worker

    async def action(self, command: str, spec: dict[str, Any]) -> dict[str, Any]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.crash.actions", command, orjson.dumps(spec).decode(),
            cwd=ROOT, env=self.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()[-4000:]
        return orjson.loads(out)

    async def enqueue(self, run_id: int, job_id: str | None = None) -> None:
        """As activation does (jobs.queue.JobQueue), from this process."""
        from arq import create_pool
        from arq.connections import RedisSettings

        redis = await create_pool(RedisSettings.from_dsn(self.redis.url))
        try:
            await redis.enqueue_job("execute_run", run_id, _job_id=job_id or f"execute_run:{run_id}")
        finally:
            await redis.aclose()

    async def cut_connections(self) -> int:
        """pg_terminate_backend of every backend of the database but the test's own; returns how many."""
        return await self.db.fetchval(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name <> $1",
            CHECKER_APP,
        )

    async def connect(self) -> None:
        if self.database_url.startswith("sqlite"):
            self.db = await SqliteReader.open(self.database_url.split("://", 1)[1].split("?", 1)[0])
            return
        dsn = self.database_url.replace("postgres://", "postgresql://", 1)
        self.db = await asyncpg.connect(dsn, server_settings={"application_name": CHECKER_APP})

    async def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.db is not None:
            await self.db.close()

    # ---- reading the ledger --------------------------------------------------------------------------------

    async def statuses(self, run_id: int) -> dict[str, int]:
        rows = await self.db.fetch("SELECT status, COUNT(*) AS n FROM delivery WHERE run_id = $1 GROUP BY 1", run_id)
        return {r["status"]: r["n"] for r in rows}

    async def wait_sent(self, run_id: int, at_least: int, timeout: float = 60) -> None:
        async def enough() -> bool:
            counts = await self.statuses(run_id)
            return counts.get("SENT", 0) + counts.get("FAILED", 0) >= at_least

        await wait_until(enough, timeout=timeout, interval=0.05)

    async def wait_finished(self, run_id: int, timeout: float = 90) -> asyncpg.Record:
        async def finished() -> asyncpg.Record | None:
            row = await self.db.fetchrow("SELECT * FROM campaign_run WHERE id = $1", run_id)
            return row if row["status"] not in ("PENDING", "RUNNING") else None

        return await wait_until(finished, timeout=timeout, interval=0.1)

    async def _settled(self, run_id: int) -> bool:
        return not await self.db.fetchval(
            "SELECT COUNT(*) FROM delivery WHERE run_id = $1 AND status IN ('QUEUED', 'SENDING', 'TARGETED')", run_id
        )

    async def _settled_and_counted(self, run_id: int) -> bool:
        """The ledger settled, and the run's counters stored after that: a stop's CANCELLED comes first, with
        counters counting the batch in flight pending; its sender recounts once the batch is written."""
        pending = await self.db.fetchval("SELECT pending FROM campaign_run WHERE id = $1", run_id)
        return not pending and await self._settled(run_id)

    async def runs_of(self, campaign_id: int) -> list[asyncpg.Record]:
        return await self.db.fetch("SELECT * FROM campaign_run WHERE campaign_id = $1 ORDER BY id", campaign_id)

    async def check(
        self,
        run_id: int,
        sink: SlowSink,
        *,
        contactable: set[str],
        crashes: int = 0,
        in_flight: int = 0,
        expect_status: str = "SUCCEEDED",
    ) -> dict[str, Any]:
        """The invariants of DESIGN §10 after recovery; returns figures for the test to assert more on."""
        run = await self.wait_finished(run_id)
        # No worker died of what happened (only those the test killed are gone).
        assert all(w.alive for w in self.workers if not w.killed), [w.log.read_text()[-3000:] for w in self.workers]
        assert run["status"] == expect_status, (run["status"], run["failure_reason"])
        # A run cancelled by a stop is final at once; its last batch in flight is written right after.
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: self._settled_and_counted(run_id), timeout=30, interval=0.1)
        run = await self.db.fetchrow("SELECT * FROM campaign_run WHERE id = $1", run_id)
        rows = await self.db.fetch(
            "SELECT profile_id, status, reason, address, idempotency_key FROM delivery WHERE run_id = $1", run_id
        )
        # One ledger row per profile, in a final state; every contactable profile is in the ledger.
        assert len({r["profile_id"] for r in rows}) == len(rows)
        assert all(r["status"] in FINAL for r in rows), collections.Counter(r["status"] for r in rows)
        by_address = {r["address"]: r for r in rows if r["status"] != "EXCLUDED"}
        assert set(by_address) == contactable, (len(by_address), len(contactable))
        # Each Message-ID reached the sink at most once, except messages in flight at a crash.
        keys = {r["idempotency_key"]: r for r in rows}
        seen = collections.Counter(mid for mid, _ in sink.pairs)
        duplicated = {mid: n for mid, n in seen.items() if n > 1}
        assert len(duplicated) <= in_flight * crashes, (len(duplicated), in_flight, crashes)
        assert all(n <= 1 + crashes for n in duplicated.values()), duplicated
        for message_id, recipient in sink.pairs:
            row = keys[key_of(message_id)]
            assert row["address"] == recipient and row["status"] in ("SENT", "DELIVERED"), (dict(row), recipient)
        sent = {r["idempotency_key"] for r in rows if r["status"] in ("SENT", "DELIVERED")}
        assert sent == {key_of(mid) for mid in seen}, "a SENT row never reached the sink"
        # Counters equal the ledger (models/ledger/figures.py: sent keeps refused recipients, which were sent).
        by_status = collections.Counter(r["status"] for r in rows)
        excluded = by_status["EXCLUDED"]
        refused = sum(1 for r in rows if r["status"] == "FAILED" and r["reason"] == "HARD_BOUNCE")
        delivered = by_status["SENT"] + by_status["DELIVERED"]
        assert (run["targeted"], run["excluded"], run["sent"], run["delivered"], run["failed"]) == (
            len(rows) - excluded,
            excluded,
            delivered + by_status["BOUNCED"] + refused,
            delivered,
            by_status["FAILED"] + by_status["BOUNCED"],
        ), dict(run)
        return {"by_status": dict(by_status), "duplicated": len(duplicated), "rows": rows, "run": run}


class SqliteReader:
    """The few asyncpg calls the checks use (fetch, fetchrow, fetchval with $n), over a SQLite file."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, path: str) -> SqliteReader:
        import aiosqlite

        conn = await aiosqlite.connect(path)
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA busy_timeout = 10000")
        return cls(conn)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self.conn.execute(re.sub(r"\$\d+", "?", sql), args) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return next(iter(row.values())) if row else None

    async def close(self) -> None:
        await self.conn.close()


def contactable(count: int, start: int = 0, rejected_every: int = 0) -> set[str]:
    """The addresses of tests.crash.actions.add_profiles that can be mailed (consent not refused)."""
    out = set()
    for index in range(start, start + count):
        if index % 97 == 1:
            continue
        domain = "gone.example.com" if rejected_every and index % rejected_every == 0 else "example.com"
        out.add(f"p{index:05d}@{domain}")
    return out
