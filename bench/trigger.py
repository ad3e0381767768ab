"""API triggers at a steady rate (issue 17): acceptance latency, and acceptance to the message at the sink.

A real `herald serve` and two `herald worker` processes on the bench database and a redis-server of its own; an
API_TRIGGERED TRANSACTIONAL email campaign to an aiosmtpd sink that records when each message arrives. The load
is open-loop: call i is due at t0 + i / BENCH_TRIGGER_RATE (default 200/s) for BENCH_TRIGGER_SECONDS (default
60), each with its own idempotency key and one recipient, and its latency counts from when it was due (wrk2's
rule: a stall is not hidden by the calls it delayed). Targets (issue 17): acceptance p99 < 50 ms,
acceptance-to-sink p99 < 1 s. The figures are absolute on this machine: there is no reference engine.
BENCH_TRIGGER_WEB_PROCESSES (default 1) runs `herald serve --workers N`; the serve CPU figure sums its processes.
BENCH_TRIGGER_WARMUP_SECONDS (default 2) of calls at the same rate go first and are not counted (their p99 is
printed): the first second after a cold start, before the pools and caches fill, is not the steady state.

The client is plain asyncio streams over BENCH_TRIGGER_CONNECTIONS keep-alive connections, and the sink has a
process of its own: with httpx and the sink on the client's loop, the client's CPU (httpx's pool is quadratic
in waiting requests) delayed the sink's SMTP greetings past the workers' connect timeout, and on a thread of
the client's process the sink still took the GIL from the calls being timed; both measured the bench, not
Herald.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import Result, cpu_seconds, descendants, dsn_for, tree_cpu_seconds

RATE = float(os.environ.get("BENCH_TRIGGER_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_TRIGGER_SECONDS", "60"))
CONNECTIONS = int(os.environ.get("BENCH_TRIGGER_CONNECTIONS", "64"))
# `herald serve --workers N`: one web process per core is the usual deployment; 1 keeps the earlier figures'.
WEB_PROCESSES = int(os.environ.get("BENCH_TRIGGER_WEB_PROCESSES", "1"))
# Set: the run's calls (when due, latency), the server's loop stalls and GC pauses (api/loop_probe.py) and
# PostgreSQL's wait events sampled every 50 ms are written to trace.json in the run's temporary directory.
TRACE = bool(os.environ.get("BENCH_TRIGGER_TRACE"))
# Calls at the same rate before the measured ones, not counted: the server's pool opens its connections and its
# caches fill (the one-statement acceptance's shape, prepared statements), as the workers' start-up is waited out.
WARMUP_SECONDS = float(os.environ.get("BENCH_TRIGGER_WARMUP_SECONDS", "2"))
ACCEPT_P99_MS = 50.0
SINK_P99_MS = 1000.0


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]


def _sink_main(conn: Connection) -> None:
    asyncio.run(_sink_serve(conn))


async def _sink_serve(conn: Connection) -> None:
    """The sink process: serves SMTP, records when each recipient's DATA arrived, answers the bench's commands."""
    from tests.crash.harness import SlowSink
    from tests.jobs.smtp_sink import smtp_sink

    @dataclass
    class TimedSink(SlowSink):
        arrived: dict[str, float] = field(default_factory=dict)  # recipient -> monotonic time of its DATA

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            answer = await super().handle_DATA(server, session, envelope)
            now = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process of the machine
            for rcpt in envelope.rcpt_tos:
                self.arrived.setdefault(rcpt, now)
            return answer

    handler = TimedSink(delay=0.0)
    loop = asyncio.get_running_loop()
    async with smtp_sink(handler) as sink:
        conn.send(sink.port)
        while (command := await loop.run_in_executor(None, conn.recv)) != "stop":
            conn.send(len(handler.arrived) if command == "count" else handler.arrived)


class SinkProcess:
    """The SMTP sink in a process of its own: in the load generator's process (even on its own thread) it took
    the GIL from the calls being timed."""

    def __init__(self) -> None:
        spawn = multiprocessing.get_context("spawn")
        self._conn, child = spawn.Pipe()
        self._process = spawn.Process(target=_sink_main, args=(child,), name="bench-sink", daemon=True)
        self.port = 0

    def __enter__(self) -> SinkProcess:
        self._process.start()
        if not self._conn.poll(60):
            raise RuntimeError("the SMTP sink did not start")
        self.port = self._conn.recv()
        return self

    @property
    def pid(self) -> int:
        return int(self._process.pid or 0)

    def count(self) -> int:
        self._conn.send("count")
        return int(self._conn.recv())

    def arrived(self) -> dict[str, float]:
        self._conn.send("arrived")
        return dict(self._conn.recv())

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


@dataclass
class Calls:
    latencies: list[float] = field(default_factory=list)  # from when each call was due to its answer
    due: list[float] = field(default_factory=list)  # when each call of `latencies` was due, in unix time
    accepted_at: dict[str, float] = field(default_factory=dict)  # recipient -> monotonic time of the answer
    failures: int = 0
    first_failure: str = ""


def _request(port: int, path: str, api_key: str, index: int, recipient: str) -> bytes:
    body = orjson.dumps(
        {"context": {"order": f"o{index}"}, "recipients": [{"identity": {"namespace": "Email", "value": recipient}}]}
    )
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {api_key}\r\n"
        f"Idempotency-Key: bench-{index}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(head[9:12]), await reader.readexactly(length)


async def offer(
    port: int, path: str, api_key: str, calls: int, rate: float, address: Any, first: int = 0
) -> tuple[Calls, float]:
    """Open-loop calls at `rate` over CONNECTIONS keep-alive connections, numbered from `first` (their key and
    recipient); (the calls, seconds offered for)."""
    result = Calls()
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    t0 = time.monotonic() + 0.5

    async def produce() -> None:
        for index in range(calls):
            at = t0 + index / rate
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            due.put_nowait((first + index, at))
        for _ in range(CONNECTIONS):
            due.put_nowait(None)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (item := await due.get()) is not None:
                index, at = item
                try:
                    status, body = await _exchange(reader, writer, _request(port, path, api_key, index, address(index)))
                except (OSError, asyncio.IncompleteReadError) as exc:
                    result.failures += 1
                    result.first_failure = result.first_failure or repr(exc)
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                done = time.monotonic()
                if status not in (200, 201):
                    result.failures += 1
                    result.first_failure = result.first_failure or f"{status} {body[:300]!r}"
                    continue
                result.latencies.append(done - at)
                result.due.append(time.time() - (done - at))
                result.accepted_at[address(index)] = done
        finally:
            writer.close()

    await asyncio.gather(produce(), *(connection() for _ in range(CONNECTIONS)))
    return result, time.monotonic() - t0


async def _settled(workers: list[Any], timeout: float = 30.0) -> None:
    """Until the workers' start-up (imports, pools) is over: their CPU time grows by < 10% of a core."""
    deadline = time.monotonic() + timeout
    pids = [w.process.pid for w in workers if w.process is not None]
    last = [cpu_seconds(pid) for pid in pids]
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = [cpu_seconds(pid) for pid in pids]
        if all(b - a < 0.05 for a, b in zip(last, now, strict=True)):
            return
        last = now


async def sample_waits(database: str, into: list[list[Any]], stop: asyncio.Event) -> None:
    """PostgreSQL's non-idle backends of the bench database every 50 ms: [unix time, state, wait type, wait event,
    the statement's start]."""
    import asyncpg

    conn = await asyncpg.connect(dsn_for("postgres"))
    try:
        while not stop.is_set():
            rows = await conn.fetch(
                "SELECT state, wait_event_type, wait_event, left(query, 60) AS query FROM pg_stat_activity "
                "WHERE datname = $1 AND state <> 'idle' AND pid <> pg_backend_pid()",
                database,
            )
            at = time.time()
            into.extend([at, r["state"], r["wait_event_type"], r["wait_event"], r["query"]] for r in rows)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
    finally:
        await conn.close()


async def backend_ports(database: str) -> dict[int, int | None]:
    """PostgreSQL's backends serving the bench database now (the pools of serve and workers, the relay): pid ->
    the client's TCP port (None over a socket)."""
    import asyncpg

    conn = await asyncpg.connect(dsn_for("postgres"))
    try:
        rows = await conn.fetch("SELECT pid, client_port FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()
    return {int(r["pid"]): r["client_port"] for r in rows}


def port_owners() -> dict[int, int]:
    """Local TCP port -> pid of the process whose socket it is, for connections to PostgreSQL (`ss`)."""
    owners: dict[int, int] = {}
    listed = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=False).stdout
    for line in listed.splitlines():
        parts, owner = line.split(), re.search(r"pid=(\d+)", line)
        if owner is not None and len(parts) > 4 and parts[4].endswith(":5432"):
            owners[int(parts[3].rpartition(":")[2])] = int(owner.group(1))
    return owners


class CpuBudget:
    """CPU time of every process a trigger costs, between two readings: serve (and its web processes), the
    workers, the bench database's PostgreSQL backends by whose connection they serve (a backend that started in
    between counts whole), the SMTP sink, the bench's own redis-server and this client. Whether 200/s fits on the
    machine is their sum."""

    def __init__(self, database: str, pids: dict[str, list[int]]) -> None:
        self.database, self.pids = database, pids
        self.before: dict[str, float] = {}
        self.backends: dict[int, float] = {}

    def _read(self) -> dict[str, float]:
        return {
            name: sum(tree_cpu_seconds(pid) if name == "serve" else cpu_seconds(pid) for pid in pids)
            for name, pids in self.pids.items()
        } | {"client": time.process_time()}

    async def start(self) -> None:
        self.backends = {pid: cpu_seconds(pid) for pid in await backend_ports(self.database)}
        self.before = self._read()

    async def spent(self) -> dict[str, float]:
        after = self._read()
        spent = {name: after[name] - self.before[name] for name in after}
        owners = port_owners()
        whose = {pid: name for name, pids in self.pids.items() for top in pids for pid in descendants(top)}
        # A backend gone meanwhile is not counted: what it spent is lost with its /proc entry (an undercount).
        for pid, port in (await backend_ports(self.database)).items():
            name = "pg for " + whose.get(owners.get(port or -1, -1), "others")
            spent[name] = spent.get(name, 0.0) + cpu_seconds(pid) - self.backends.get(pid, 0.0)
        return spent


async def _run(database: str) -> Result:
    # The crash suite's harness (worker processes, own redis-server, sink), imported only when this runs.
    from tests.crash.actions import address
    from tests.crash.harness import Herald, RedisServer
    from tests.crash.test_trigger_crash import start_serve, stop_serve
    from tests.serving import free_port

    calls = int(RATE * SECONDS)
    warmup = int(RATE * WARMUP_SECONDS)
    directory = Path(tempfile.mkdtemp(prefix="herald-bench-trigger-"))
    redis = RedisServer(directory)
    redis.start()
    herald = Herald(dsn_for(database), redis, directory, lease=5.0)
    await herald.connect()
    serve = None
    workers = []
    warmed = Calls()
    try:
        with SinkProcess() as sink:
            seeded = await herald.action("seed_api", {"profiles": warmup + calls, "sink_port": sink.port})
            port = free_port()
            if TRACE:
                os.environ["LOOP_PROBE_FILE"] = str(directory / "serve-probe.txt")
            serve = start_serve(herald, port, directory / "serve.log", WEB_PROCESSES)
            # Started now, so that their start-up CPU is spent before the figures are taken.
            workers = [herald.worker(), herald.worker()]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as probe:
                for _ in range(300):
                    try:
                        if (await probe.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2)
            await _settled(workers)
            path = f"/campaigns/{seeded['campaign']}/triggers"
            pids = [serve.pid] + [w.process.pid for w in workers if w.process is not None]
            if warmup:
                warmed, _ = await offer(port, path, str(seeded["key"]), warmup, RATE, address, first=calls)
                for _ in range(300):  # the warm-up's messages at the sink, so that they do not count
                    if sink.count() >= len(warmed.accepted_at):
                        break
                    await asyncio.sleep(0.1)
            budget = CpuBudget(
                database, {"serve": pids[:1], "workers": pids[1:], "sink": [sink.pid], "redis": [redis.process.pid]}
            )
            await budget.start()
            waits: list[list[Any]] = []
            stop_sampling = asyncio.Event()
            sampler = asyncio.create_task(sample_waits(database, waits, stop_sampling)) if TRACE else None
            offered, offered_for = await offer(port, path, str(seeded["key"]), calls, RATE, address)
            stop_sampling.set()
            if sampler is not None:
                await sampler
            for _ in range(600):  # up to 120 s for the last messages to reach the sink
                if sink.count() >= len(warmed.accepted_at) + len(offered.accepted_at):
                    break
                await asyncio.sleep(0.2)
            arrived = sink.arrived()
            # CPU per trigger does not depend on the machine's load as the latencies do.
            spent = await budget.spent()
    finally:
        if serve is not None:
            stop_serve(serve)
        for worker in workers:
            worker.stop()
        await herald.close()
        redis.stop()
    latencies, accepted_at = offered.latencies, offered.accepted_at
    if TRACE:
        probe = directory / "serve-probe.txt"
        trace = {
            "calls": [[due, latency] for due, latency in zip(offered.due, latencies, strict=True)],
            "probe": probe.read_text().splitlines() if probe.exists() else [],
            "waits": waits,
        }
        (directory / "trace.json").write_bytes(orjson.dumps(trace))
        print(f"trace: {directory / 'trace.json'}", flush=True)
    to_sink = [arrived[r] - at for r, at in accepted_at.items() if r in arrived]
    missing = len(accepted_at) - len(to_sink)
    accept_p99 = p99(latencies) * 1000 if latencies else float("inf")
    sink_p99 = p99(to_sink) * 1000 if to_sink else float("inf")
    failures = offered.failures
    serve_ms = spent["serve"] * 1000 / max(1, len(latencies))
    workers_ms = spent["workers"] * 1000 / max(1, len(to_sink))
    warm_p99 = p99(warmed.latencies) * 1000 if warmed.latencies else 0.0
    per_trigger = {name: seconds * 1000 / max(1, len(latencies)) for name, seconds in spent.items()}
    total_ms = sum(per_trigger.values())
    budget_text = ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(per_trigger.items(), key=lambda i: -i[1]))
    holds = accept_p99 < ACCEPT_P99_MS and sink_p99 < SINK_P99_MS and not failures and not missing
    return Result(
        name="trigger",
        unit="ms p99",
        measured=accept_p99,
        reference=None,
        target=f"accept p99 < {ACCEPT_P99_MS:.0f} ms, to sink < {SINK_P99_MS:.0f} ms",
        holds=holds,
        detail=(
            f"{len(latencies)} of {calls} triggers accepted at {RATE:.0f}/s offered over {offered_for:.1f} s, "
            f"after {warmup} warm-up calls at that rate (not counted: their p99 {warm_p99:.1f} ms); "
            f"acceptance p50 {statistics.median(latencies) * 1000 if latencies else 0:.1f} ms p99 {accept_p99:.1f} ms; "
            f"acceptance to sink p50 {statistics.median(to_sink) * 1000 if to_sink else 0:.0f} ms "
            f"p99 {sink_p99:.0f} ms; {failures} failed calls {offered.first_failure[:200]}, "
            f"{missing} accepted but not at the sink after 120 s; CPU per trigger: serve {serve_ms:.1f} ms, "
            f"workers {workers_ms:.1f} ms; all processes {total_ms:.1f} ms ({budget_text}): "
            f"{total_ms * RATE / 1000:.2f} of {os.cpu_count()} cores at {RATE:.0f}/s; "
            f"{WEB_PROCESSES} web process(es); load average {os.getloadavg()[0]:.1f}"
        ),
    )


def run(database: str, seeded: dict[str, object]) -> Result:
    return asyncio.run(_run(database))
