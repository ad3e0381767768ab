"""GraphQL read path vs a plain Starlette + Tortoise `.values()` route (DESIGN §10: ≥ 0.5 of its requests/s,
p99 < 50 ms at 32 connections).

Throughput is measured closed-loop (each connection sends as soon as it is answered). p99 is measured open-loop
at the throughput the target asks for, half the reference's requests/s, over the same 32 connections, counting
each request from when it was due: at saturation a closed loop only measures queueing (32 / throughput), which
no server on one core can keep under 50 ms below 640 requests/s.

Both servers are single uvicorn processes on the same database, pinned to one core (`taskset`, BENCH_SERVER_CPU);
the load comes from `bench.loadgen` in another process on the other core (BENCH_LOAD_CPU). Rounds alternate
reference/GraphQL so a noisy neighbour hits both alike; the medians count. Each round also records the server's
CPU time per request, the figure that other processes' load disturbs least.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench import postgraphile
from bench.common import (
    LOAD_CPU,
    PAGE,
    SERVER_CPU,
    Result,
    cpu_seconds,
    database_cpu_seconds,
    dsn_for,
    free_port,
    herald_serve,
    pinned,
    process,
    server_env,
)

QUERY = (
    "query CampaignPage { campaigns(first: 20) { edges { node { id name status channel tags updatedAt "
    "preset { name } segment { name } "
    "summary { profilesTargeted actionsDelivered actionsFailed excluded } } } "
    "pageInfo { hasNextPage endCursor } } }"
)
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
DURATION = float(os.environ.get("BENCH_DURATION", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
P99_LIMIT_MS = 50.0


def apq_bodies(query: str) -> tuple[bytes, bytes]:
    """Automatic persisted query: the body with the document (the warm-up request, which registers it under its
    hash) and the body with the hash alone (what the load sends)."""
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(query.encode()).hexdigest()}}
    full = json.dumps({"query": query, "extensions": extensions}).encode()
    return full, json.dumps({"extensions": extensions}).encode()


def persisted_body() -> bytes:
    return apq_bodies(QUERY)[1]


def full_body() -> bytes:
    return apq_bodies(QUERY)[0]


def post(url: str, body: bytes, key: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def load(
    port: int,
    path: str,
    method: str,
    body_file: str | None,
    headers: list[str],
    server_pid: int,
    rate: float = 0.0,
    database: str | None = None,
    timeline: bool = False,
    duration: float | None = None,
) -> dict:
    """One round of load (open-loop at `rate` requests/s if given); adds the server's CPU milliseconds per
    request (noise from other processes inflates wall-clock rates far more than it does CPU time per request)
    and, given the `database`, its PostgreSQL backends' (`db_cpu_ms`; other servers' idle backends add 0)."""
    args = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(port),
        "--path",
        path,
        "--method",
        method,
        "--connections",
        str(CONNECTIONS),
        "--duration",
        str(duration or DURATION),
        "--check-errors",
        "--rate",
        str(rate),
    ]
    if body_file:
        args += ["--body-file", body_file]
    if timeline:
        args.append("--timeline")
    for header in headers:
        args += ["--header", header]
    db_before = database_cpu_seconds(database) if database else None
    cpu_before = cpu_seconds(server_pid)
    out = subprocess.run(
        pinned(args, LOAD_CPU), check=True, capture_output=True, text=True, cwd=Path(__file__).parent.parent
    )
    figures = json.loads(out.stdout)
    figures["cpu_ms"] = (cpu_seconds(server_pid) - cpu_before) * 1000 / max(figures["sent"], 1)
    figures["db_cpu_ms"] = None
    db_after = database_cpu_seconds(database) if database else None
    if db_before is not None and db_after is not None:
        db_seconds = sum(after - db_before.get(pid, 0.0) for pid, after in db_after.items())
        figures["db_cpu_ms"] = db_seconds * 1000 / max(figures["sent"], 1)
    return figures


def database_ms(runs: list[dict]) -> float | None:
    """The median database CPU per request of these rounds; None if a round could not measure it."""
    figures = [r.get("db_cpu_ms") for r in runs]
    return None if not figures or None in figures else statistics.median(figures)


def database_vs(cpu: float, db: float | None, their_cpu: float, their_db: float | None) -> str:
    if db is None or their_db is None:
        return "the database's CPU per request not measured (PostgreSQL took no more connections)"
    return (
        f"the database's CPU per request {db:.2f} ms vs {their_db:.2f} ms; server and database "
        f"{cpu + db:.2f} ms vs {their_cpu + their_db:.2f} ms ({(cpu + db) / (their_cpu + their_db):.2f}x)"
    )


def run(database: str, seeded: dict) -> Result:
    key = str(seeded["key"])
    ref_port, gql_port, pg_port = free_port(), free_port(), free_port()
    ref_env = server_env(database, BENCH_SANDBOX_ID=str(seeded["sandbox_id"]), DATABASE_URL=dsn_for(database))
    ref_cmd = pinned(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.reference_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(ref_port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--no-server-header",
        ],
        SERVER_CPU,
    )
    # PostGraphile 5 (bench/postgraphile.py): the reference the targets name, where Node 22 can be had.
    with_pg, skipped_why = postgraphile.available()
    if with_pg:
        asyncio.run(postgraphile.prepare(database))
    with (
        tempfile.TemporaryDirectory() as tmp,
        process(ref_cmd, ref_env, ready_url=f"http://127.0.0.1:{ref_port}/healthz") as ref_server,
        herald_serve(database, gql_port, cpu=SERVER_CPU) as gql_server,
        postgraphile.server(database, pg_port, cpu=SERVER_CPU) if with_pg else contextlib.nullcontext() as pg_server,
    ):
        url = f"http://127.0.0.1:{gql_port}/graphql"
        # The warm-up request registers the document under its hash (Apollo APQ); the load sends the hash only.
        first = post(url, full_body(), key)
        edges = first["data"]["campaigns"]["edges"]
        assert len(edges) == PAGE and edges[0]["node"]["preset"]["name"], first
        again = post(url, persisted_body(), key)
        assert again == first, "persisted query answered differently"
        body_file = str(Path(tmp) / "body.json")
        Path(body_file).write_bytes(persisted_body())
        gql_headers = [f"Authorization: Bearer {key}", "Content-Type: application/json", "Accept: application/json"]
        pg_body_file = str(Path(tmp) / "pg-body.json")
        pg_headers = ["Content-Type: application/json", "Accept: application/json"]
        if with_pg:
            pg_body = json.dumps({"query": postgraphile.page_query(int(seeded["sandbox_id"]))}).encode()
            postgraphile.compare_page(first, post(f"http://127.0.0.1:{pg_port}/graphql", pg_body))
            Path(pg_body_file).write_bytes(pg_body)

        ref_runs, gql_runs, pg_runs = [], [], []
        for round_no in range(ROUNDS):
            order = ["ref", "gql", "pg"] if round_no % 2 == 0 else ["pg", "gql", "ref"]
            for which in order:
                if which == "ref":
                    ref_runs.append(load(ref_port, "/campaigns", "GET", None, [], ref_server.pid, database=database))
                elif which == "gql":
                    gql_runs.append(
                        load(gql_port, "/graphql", "POST", body_file, gql_headers, gql_server.pid, database=database)
                    )
                elif with_pg:
                    pg_runs.append(
                        load(pg_port, "/graphql", "POST", pg_body_file, pg_headers, pg_server.pid, database=database)
                    )
        # Latency at the throughput the target asks for (half the reference's), open-loop: at saturation a
        # closed loop of 32 connections only measures queueing (latency = 32 / throughput, Little's law).
        rate = 0.5 * statistics.median(r["rps"] for r in ref_runs)
        gql_paced = load(gql_port, "/graphql", "POST", body_file, gql_headers, gql_server.pid, rate)
        ref_paced = load(ref_port, "/campaigns", "GET", None, [], ref_server.pid, rate)
    for runs, name in ((ref_runs, "reference"), (gql_runs, "graphql"), (pg_runs, "postgraphile")):
        for r in [*runs, *([gql_paced] if name == "graphql" else [ref_paced] if name == "reference" else [])]:
            if r["errors"]:
                raise RuntimeError(f"{name}: {r['errors']} failed requests, first: {r.get('first_error')}")
    gql_rps = statistics.median(r["rps"] for r in gql_runs)
    ref_rps = statistics.median(r["rps"] for r in ref_runs)
    p99 = gql_paced["p99_ms"]
    saturated_p99 = statistics.median(r["p99_ms"] for r in gql_runs)
    ref_saturated_p99 = statistics.median(r["p99_ms"] for r in ref_runs)
    gql_cpu = statistics.median(r["cpu_ms"] for r in gql_runs)
    ref_cpu = statistics.median(r["cpu_ms"] for r in ref_runs)
    gql_db, ref_db = database_ms(gql_runs), database_ms(ref_runs)
    starlette = (
        f"Starlette reference {ref_rps:.0f} req/s, {ref_cpu:.2f} ms CPU per request + {ref_db or 0:.2f} ms of the "
        f"database's (Herald {gql_rps / ref_rps:.2f} "
        f"of its req/s, {gql_cpu / ref_cpu:.2f}x its CPU); at {rate:.0f} req/s open-loop p50 "
        f"{gql_paced['p50_ms']:.1f} ms, p99 {p99:.1f} ms (reference p99 {ref_paced['p99_ms']:.1f} ms); saturated p99 "
        f"{saturated_p99:.1f} ms (reference {ref_saturated_p99:.1f} ms)"
        f"{f', servers on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}' if SERVER_CPU else ''}; "
        f"rounds gql {[round(r['rps']) for r in gql_runs]} ref {[round(r['rps']) for r in ref_runs]}"
    )
    if not with_pg:
        return Result(
            "graphql_read",
            "req/s",
            gql_rps,
            ref_rps,
            f">= 0.5 of Starlette, p99 < {P99_LIMIT_MS:.0f} ms",
            gql_rps / ref_rps >= 0.5 and p99 < P99_LIMIT_MS,
            f"{skipped_why} (against the Starlette route instead); {starlette}",
        )
    pg_rps = statistics.median(r["rps"] for r in pg_runs)
    pg_cpu = statistics.median(r["cpu_ms"] for r in pg_runs)
    pg_db = database_ms(pg_runs)
    return Result(
        "graphql_read",
        "req/s",
        gql_rps,
        pg_rps,
        ">= 1.0 of PostGraphile, CPU <= 1.0x",
        gql_rps >= pg_rps and gql_cpu <= pg_cpu,
        f"server CPU per request {gql_cpu:.2f} ms vs PostGraphile {pg_cpu:.2f} ms ({gql_cpu / pg_cpu:.2f}x); "
        f"{database_vs(gql_cpu, gql_db, pg_cpu, pg_db)}; "
        f"PostGraphile rounds {[round(r['rps']) for r in pg_runs]}; {starlette}",
    )
