"""One campaign by id, with the page's fields: Herald's `campaign(id:)` and `node(id:)` against PostGraphile 5's
`campaignByRowId` and `node` (issue 22: CPU per request at most 1.0 times PostGraphile's; Herald reads it in one
statement, which tests/graphql/test_read_path.py counts).

Both servers serve the same bench database, each one process pinned to the same core (BENCH_SERVER_CPU), under
the same closed-loop load of BENCH_CONNECTIONS connections from bench.loadgen on the other core. Rounds alternate
between the servers; medians count. The figure is the servers' CPU time per request (/proc/<pid>/stat), given as
requests per CPU-second so that the ratio reads like the other rows (higher is better); req/s is in the detail.
The answers of both servers are compared before anything is timed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import tempfile
from pathlib import Path

from bench import postgraphile
from bench.common import PAGE, SERVER_CPU, Result, free_port, herald_serve
from bench.graphql_read import CONNECTIONS, ROUNDS, apq_bodies, database_ms, database_vs, load, post

FIELDS = (
    "id name status channel tags updatedAt preset { name } segment { name } "
    "summary { profilesTargeted actionsDelivered actionsFailed excluded }"
)


def herald_queries(global_id: str) -> dict[str, str]:
    return {
        "campaign": f'query CampaignById {{ campaign(id: "{global_id}") {{ {FIELDS} }} }}',
        "node": f'query CampaignNode {{ node(id: "{global_id}") {{ ... on Campaign {{ {FIELDS} }} }} }}',
    }


def run(database: str, seeded: dict) -> Result:
    usable, why = postgraphile.available()
    if not usable:
        return Result("graphql_node", "req/cpu-s", 0.0, None, "skipped", True, why, skipped=True)
    asyncio.run(postgraphile.prepare(database))
    key = str(seeded["key"])
    gql_port, pg_port = free_port(), free_port()
    gql_headers = [f"Authorization: Bearer {key}", "Content-Type: application/json", "Accept: application/json"]
    pg_headers = ["Content-Type: application/json", "Accept: application/json"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        herald_serve(database, gql_port, cpu=SERVER_CPU) as gql_server,
        postgraphile.server(database, pg_port, cpu=SERVER_CPU) as pg_server,
    ):
        gql_url, pg_url = f"http://127.0.0.1:{gql_port}/graphql", f"http://127.0.0.1:{pg_port}/graphql"
        listing = apq_bodies("query { campaigns(first: 20) { edges { node { id } } } }")[0]
        page = post(gql_url, listing, key)["data"]["campaigns"]["edges"]
        assert len(page) == PAGE, page
        global_id = page[0]["node"]["id"]
        row_id = int(base64.b64decode(global_id).decode().partition(":")[2])
        pg_node_id = post(pg_url, json.dumps({"query": f'{{ campaignByRowId(rowId: "{row_id}") {{ id }} }}'}).encode())
        pg_node_id = pg_node_id["data"]["campaignByRowId"]["id"]
        pg_queries = {"campaign": postgraphile.by_row_id_query(row_id), "node": postgraphile.node_query(pg_node_id)}
        bodies: dict[tuple[str, str], str] = {}
        for name, query in herald_queries(global_id).items():
            full, persisted = apq_bodies(query)
            first = post(gql_url, full, key)
            assert post(gql_url, persisted, key) == first, "persisted query answered differently"
            theirs = post(pg_url, json.dumps({"query": pg_queries[name]}).encode())
            their_field = "campaignByRowId" if name == "campaign" else "node"
            postgraphile.compare_one(first["data"][name], theirs["data"][their_field])
            bodies["herald", name] = str(Path(tmp) / f"herald-{name}.json")
            Path(bodies["herald", name]).write_bytes(persisted)
            bodies["postgraphile", name] = str(Path(tmp) / f"pg-{name}.json")
            Path(bodies["postgraphile", name]).write_bytes(json.dumps({"query": pg_queries[name]}).encode())
        runs: dict[tuple[str, str], list[dict]] = {k: [] for k in bodies}
        db = {"database": database}
        for round_no in range(ROUNDS):
            order = ["herald", "postgraphile"] if round_no % 2 == 0 else ["postgraphile", "herald"]
            for name in ("campaign", "node"):
                for server in order:
                    if server == "herald":
                        figures = load(
                            gql_port, "/graphql", "POST", bodies[server, name], gql_headers, gql_server.pid, **db
                        )
                    else:
                        figures = load(
                            pg_port, "/graphql", "POST", bodies[server, name], pg_headers, pg_server.pid, **db
                        )
                    if figures["errors"]:
                        raise RuntimeError(f"{server} {name}: {figures['errors']} failed: {figures.get('first_error')}")
                    runs[server, name].append(figures)
    cpu = {k: statistics.median(r["cpu_ms"] for r in v) for k, v in runs.items()}
    rps = {k: statistics.median(r["rps"] for r in v) for k, v in runs.items()}
    db_cpu = {k: database_ms(v) for k, v in runs.items()}
    ratios = {name: cpu["postgraphile", name] / cpu["herald", name] for name in ("campaign", "node")}

    def versus_database(name: str) -> str:
        mine, theirs = ("herald", name), ("postgraphile", name)
        return database_vs(cpu[mine], db_cpu[mine], cpu[theirs], db_cpu[theirs])

    holds = all(r >= 1.0 for r in ratios.values())
    detail = "; ".join(
        f"{name}: Herald {cpu['herald', name]:.2f} ms CPU, {rps['herald', name]:.0f} req/s vs PostGraphile "
        f"{cpu['postgraphile', name]:.2f} ms, {rps['postgraphile', name]:.0f} req/s (CPU ratio "
        f"{cpu['herald', name] / cpu['postgraphile', name]:.2f}x, req/s ratio "
        f"{rps['herald', name] / rps['postgraphile', name]:.2f}; "
        f"{versus_database(name)})"
        for name in ("campaign", "node")
    )
    return Result(
        "graphql_node",
        "req/cpu-s",
        1000 / cpu["herald", "campaign"],
        1000 / cpu["postgraphile", "campaign"],
        "CPU per request <= 1.0x PostGraphile (campaign and node)",
        holds,
        f"{detail}; {CONNECTIONS} connections, servers on CPU {SERVER_CPU or 'any'}",
    )
