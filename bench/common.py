"""Shared pieces of the bench suite: a throw-away PostgreSQL database, seed data, server processes, results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgres://postgres@127.0.0.1:5432/postgres")
# Each run's results land here as JSON (write_result); the history of the figures is these files, not prose.
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR", ROOT / "bench" / "results"))
CAMPAIGNS = 200
PAGE = 20
# The read-path servers run on this core and the load generator on the other (`taskset`), so the server has one
# whole core, as the target says, and the client never competes with it. Empty: no pinning.
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0" if (os.cpu_count() or 1) >= 2 else "")
LOAD_CPU = os.environ.get("BENCH_LOAD_CPU", "1" if (os.cpu_count() or 1) >= 2 else "")


def redis_url() -> str:
    """The bench's Redis: BENCH_REDIS_URL, which `own_redis` sets for the run when it was not given."""
    url = os.environ.get("BENCH_REDIS_URL")
    if not url:
        raise RuntimeError("no bench Redis: run inside bench.common.own_redis() or set BENCH_REDIS_URL")
    return url


@contextlib.contextmanager
def own_redis() -> Iterator[str]:
    """BENCH_REDIS_URL if given; otherwise a redis-server of the run's own (api/embedded_redis.py), stopped at the
    end. Never a shared Redis by default: benchmarks flush theirs."""
    given = os.environ.get("BENCH_REDIS_URL")
    if given:
        yield given
        return
    from api.embedded_redis import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="herald-bench-redis-") as directory:
        server = EmbeddedRedis(Path(directory))
        os.environ["BENCH_REDIS_URL"] = server.start()
        try:
            yield os.environ["BENCH_REDIS_URL"]
        finally:
            del os.environ["BENCH_REDIS_URL"]
            server.stop()


def pinned(args: list[str], cpu: str) -> list[str]:
    """`args` run on CPU `cpu` through taskset, when both are available."""
    return ["taskset", "-c", cpu, *args] if cpu and shutil.which("taskset") else args


@dataclass
class Result:
    name: str
    unit: str
    measured: float
    reference: float | None
    target: str
    holds: bool
    detail: str = ""
    # The benchmark could not run here (e.g. its reference needs a tool this machine lacks): `detail` says why.
    skipped: bool = False

    def line(self) -> str:
        ref = f"{self.reference:10.1f}" if self.reference is not None else f"{'—':>10}"
        ratio = f"{self.measured / self.reference:5.2f}" if self.reference else f"{'—':>5}"
        verdict = "SKIP" if self.skipped else "OK  " if self.holds else "MISS"
        return (
            f"{verdict} {self.name:<14} measured {self.measured:10.1f} {self.unit:<6} reference {ref}  "
            f"ratio {ratio}  target {self.target:<28} {self.detail}"
        )


def git_commit() -> str:
    """The commit measured, with `+dirty` when the tree has changes; "" outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_result(result: Result, machine: str, started_at: datetime, directory: Path | None = None) -> Path:
    """One benchmark's final report as `<UTC timestamp>-<bench>.json`: the figures, the knobs (BENCH_* settings)
    and the machine and commit they were measured on."""
    finished_at = datetime.now(UTC)
    record = {
        **asdict(result),
        "ratio": result.measured / result.reference if result.reference else None,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": finished_at.isoformat(timespec="seconds"),
        "machine": machine,
        "load_average": list(os.getloadavg()),
        "commit": git_commit(),
        # Sizes and durations only: URLs and DSNs may carry passwords.
        "settings": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith("BENCH_") and not k.endswith(("_DSN", "_URL", "_DIR"))
        },
    }
    target_dir = directory or RESULTS_DIR
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / f"{finished_at:%Y%m%dT%H%M%SZ}-{result.name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU time a process has used so far (Linux /proc), 0.0 where that is not available;
    `reaped_children`: with its children's that have exited and been waited for (cutime + cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(field) for field in fields[11 : 15 if reaped_children else 13]) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> set[int]:
    """A process and its descendants alive now."""
    found, pending = set(), [pid]
    while pending:
        current = pending.pop()
        found.add(current)
        with contextlib.suppress(OSError), open(f"/proc/{current}/task/{current}/children") as f:
            pending += [int(child) for child in f.read().split()]
    return found


def postgres_cpu_seconds() -> float:
    """CPU time so far of the local PostgreSQL server: its processes alive now (backends, WAL writer,
    checkpointer) and, through the postmaster's children's time, the backends that have exited (a closed
    connection's). A run's cost to the database, other databases' work on the server included."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as f:
            if f.read().strip() == "postgres":  # the postmaster's reaped children are the exited backends
                total += cpu_seconds(int(entry), reaped_children=True)
    return total


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of a process and its descendants alive now (uvicorn's web processes under `--workers N`)."""
    return sum(cpu_seconds(process) for process in descendants(pid))


def database_cpu_seconds(database: str) -> dict[int, float] | None:
    """CPU time so far of each PostgreSQL backend connected to `database` (a local server's, from /proc): what
    a server's statements cost the database, which its own CPU figure leaves out. None when PostgreSQL takes no
    more connections (a shared server): the figure is then missing, the run goes on."""

    async def pids() -> list[int]:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
            )
        finally:
            await conn.close()
        return [row["pid"] for row in rows]

    try:
        backends = asyncio.run(pids())
    except (asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError, OSError):
        return None
    return {pid: cpu_seconds(pid) for pid in backends}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dsn_for(name: str) -> str:
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


async def create_database() -> str:
    name = f"herald_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')  # name is ours: hex only
    finally:
        await conn.close()
    return name


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def server_env(database: str, **extra: str) -> dict[str, str]:
    """Production settings: ENV=prod with a real secret, no access log (the CLI's prod default), caches on."""
    env = dict(os.environ)
    env.update(
        ENV="prod",
        SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=dsn_for(database),
        REDIS_URL=redis_url(),
        # Production requires one; messages' links point there (nothing follows them in a benchmark).
        PUBLIC_URL="https://herald.bench.example",
        LOG_LEVEL="WARNING",
        # One key drives thousands of requests a second here; the per-key limit would answer 429 by design.
        COST_BUDGET_MAXIMUM="0",
        WORKER_IN_PROCESS="false",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


async def seed(database: str) -> dict[str, object]:
    """Migrate, then one sandbox with 200 campaigns (each with a preset, a segment and two runs)."""
    from tortoise import Tortoise

    from api.migrate import migrate_database
    from api.settings import Settings, tortoise_config
    from models.audience.entities import Segment, SegmentKind
    from models.campaigns.campaign import Campaign, CampaignRun, CampaignStatus, RunStatus
    from models.presets.preset import MessagePreset
    from models.tenancy.actions import create_api_key, create_sandbox
    from models.tenancy.sandbox import Role

    settings = Settings(database_url=dsn_for(database), redis_url=redis_url())
    await migrate_database(settings)
    await Tortoise.init(config=tortoise_config(settings.resolved_database_url, 5))
    try:
        sandbox = await create_sandbox("bench", actor="bench")
        _, admin_key = await create_api_key("bench", Role.ADMIN, name="bench", actor="bench")
        presets = [
            await MessagePreset.create(sandbox=sandbox, name=f"Preset {i}", channel="EMAIL", category="MARKETING")
            for i in range(10)
        ]
        segments = [
            await Segment.create(sandbox=sandbox, name=f"Segment {i}", kind=SegmentKind.STATIC) for i in range(10)
        ]
        now = datetime.now(UTC)
        campaigns = [
            Campaign(
                sandbox=sandbox,
                name=f"Campaign {i}",
                description="Weekly picks",
                tags=["weekly", "bench"],
                channel="EMAIL",
                preset=presets[i % 10],
                segment=segments[i % 10],
                content={"email": {"subject": "Hello {{ profile.name }}", "html": "<p>Hi</p>"}},
                status=CampaignStatus.STOPPED if i % 2 else CampaignStatus.DRAFT,
            )
            for i in range(CAMPAIGNS)
        ]
        await Campaign.bulk_create(campaigns)
        ids = await Campaign.filter(sandbox_id=sandbox.id).order_by("id").values_list("id", flat=True)
        await CampaignRun.bulk_create(
            [
                CampaignRun(
                    sandbox_id=sandbox.id,
                    campaign_id=cid,
                    scheduled_for=now - timedelta(days=day),
                    status=RunStatus.SUCCEEDED,
                    targeted=1000 + cid,
                    excluded=10,
                    sent=900,
                    delivered=880,
                    failed=5,
                )
                for cid in ids
                for day in (1, 2)
            ]
        )
        stopped = await Campaign.filter(sandbox_id=sandbox.id, status=CampaignStatus.STOPPED).values_list(
            "id", flat=True
        )
        # Settle the fresh tables now: autovacuum's first pass over them would otherwise land inside a round.
        await Tortoise.get_connection("default").execute_script("VACUUM ANALYZE")
        return {"key": admin_key, "sandbox_id": sandbox.id, "stopped_ids": list(stopped)}
    finally:
        await Tortoise.close_connections()


@contextlib.contextmanager
def process(
    args: list[str],
    env: dict[str, str],
    ready_url: str | None = None,
    *,
    ready_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[subprocess.Popen]:
    """A child process (its own process group), waited for until `ready_url` answers, stopped on exit (SIGTERM,
    then SIGKILL after `stop_timeout`)."""
    # stderr to a file, not a pipe: nobody reads a pipe while the load runs, and a server logging errors then
    # blocks on the full pipe (read_under_send hung so).
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    proc.log = log  # type: ignore[attr-defined]
    try:
        if ready_url:
            wait_http(ready_url, proc, ready_timeout)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def process_log(proc: subprocess.Popen) -> str:
    """What a child started by `process` wrote to stderr so far."""
    log = getattr(proc, "log", None)
    if log is None:
        return ""
    log.seek(0)
    return log.read().decode(errors="replace")


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = process_log(proc)
            raise RuntimeError(f"{' '.join(proc.args)} exited with {proc.returncode}:\n{err[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def herald_serve(
    database: str, port: int, *extra_env: tuple[str, str], cpu: str = ""
) -> contextlib.AbstractContextManager:
    return process(
        pinned([sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)], cpu),
        server_env(database, **dict(extra_env)),
        ready_url=f"http://127.0.0.1:{port}/healthz",
    )


def run_async(coro):
    return asyncio.run(coro)
