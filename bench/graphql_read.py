"""GraphQL read path vs a plain Starlette + Tortoise `.values()` route (DESIGN §10: ≥ 0.5 of its requests/s,
p99 < 50 ms at 32 connections).

Both servers are single uvicorn processes on the same database; the load comes from `bench.loadgen` in
another process. Rounds alternate reference/GraphQL so a noisy neighbour hits both alike; the medians count.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench.common import PAGE, Result, dsn_for, free_port, herald_serve, process, server_env

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


def persisted_body() -> bytes:
    """Automatic persisted query: the hash alone (the server learnt the document on the warm-up request)."""
    digest = hashlib.sha256(QUERY.encode()).hexdigest()
    return json.dumps({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}).encode()


def full_body() -> bytes:
    digest = hashlib.sha256(QUERY.encode()).hexdigest()
    return json.dumps(
        {"query": QUERY, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    ).encode()


def post(url: str, body: bytes, key: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def load(port: int, path: str, method: str, body_file: str | None, headers: list[str]) -> dict:
    args = [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--path", path, "--method", method,
            "--connections", str(CONNECTIONS), "--duration", str(DURATION), "--check-errors"]
    if body_file:
        args += ["--body-file", body_file]
    for header in headers:
        args += ["--header", header]
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    return json.loads(out.stdout)


def run(database: str, seeded: dict) -> Result:
    key = str(seeded["key"])
    ref_port, gql_port = free_port(), free_port()
    ref_env = server_env(database, BENCH_SANDBOX_ID=str(seeded["sandbox_id"]), DATABASE_URL=dsn_for(database))
    ref_cmd = [sys.executable, "-m", "uvicorn", "bench.reference_app:app", "--host", "127.0.0.1", "--port",
               str(ref_port), "--no-access-log", "--log-level", "warning", "--no-server-header"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        process(ref_cmd, ref_env, ready_url=f"http://127.0.0.1:{ref_port}/healthz"),
        herald_serve(database, gql_port),
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

        ref_runs, gql_runs = [], []
        for round_no in range(ROUNDS):
            order = ["ref", "gql"] if round_no % 2 == 0 else ["gql", "ref"]
            for which in order:
                if which == "ref":
                    ref_runs.append(load(ref_port, "/campaigns", "GET", None, []))
                else:
                    gql_runs.append(load(gql_port, "/graphql", "POST", body_file, gql_headers))
    for runs, name in ((ref_runs, "reference"), (gql_runs, "graphql")):
        for r in runs:
            if r["errors"]:
                raise RuntimeError(f"{name}: {r['errors']} failed requests, first: {r.get('first_error')}")
    gql_rps = statistics.median(r["rps"] for r in gql_runs)
    ref_rps = statistics.median(r["rps"] for r in ref_runs)
    p99 = statistics.median(r["p99_ms"] for r in gql_runs)
    ref_p99 = statistics.median(r["p99_ms"] for r in ref_runs)
    holds = gql_rps / ref_rps >= 0.5 and p99 < P99_LIMIT_MS
    return Result(
        "graphql_read", "req/s", gql_rps, ref_rps, f">= 0.5, p99 < {P99_LIMIT_MS:.0f} ms", holds,
        f"p99 {p99:.1f} ms (reference {ref_p99:.1f} ms) at {CONNECTIONS} connections; "
        f"rounds gql {[round(r['rps']) for r in gql_runs]} ref {[round(r['rps']) for r in ref_runs]}",
    )
