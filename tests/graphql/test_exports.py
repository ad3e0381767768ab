"""`GET /exports/runs/{id}/deliveries.csv`: a run's ledger as CSV, streamed in keyset chunks."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import httpx
from strawberry import relay

from api.exports import COLUMNS, delivery_csv, safe_cell
from models.audience.entities import Profile
from models.campaigns.campaign import CampaignRun, RunStatus
from models.ledger.delivery import Delivery
from models.tenancy.sandbox import Role, Sandbox
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import create
from tests.sql_counter import count_sql

ROWS = 3000
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def big_run(gql: GraphQLClient, sandbox: SandboxKeys) -> CampaignRun:
    """A run of ROWS deliveries, written with two bulk INSERTs; every 100th row a formula-looking error."""
    campaign = await create(gql, sandbox, {"name": "Export"})
    campaign_pk = int(relay.GlobalID.from_id(campaign["id"]).node_id)
    owner = await Sandbox.get(name=sandbox.name)
    run = await CampaignRun.create(
        sandbox_id=owner.id, campaign_id=campaign_pk, scheduled_for=NOW, status=RunStatus.SUCCEEDED
    )
    await Profile.bulk_create([Profile(sandbox_id=owner.id) for _ in range(ROWS)], batch_size=1000)
    profile_ids = await Profile.filter(sandbox_id=owner.id).order_by("id").values_list("id", flat=True)

    def row(i: int, profile_id: int) -> Delivery:
        failed = i % 100 == 0
        return Delivery(
            sandbox_id=owner.id,
            run_id=run.id,
            campaign_id=campaign_pk,
            profile_id=profile_id,
            status="FAILED" if failed else "SENT",
            reason="RETRY_EXPIRED" if failed else None,
            address=f'=HYPERLINK("http://evil")@x{i}.com' if i == 1 else f"p{i}@example.com",
            idempotency_key=f"{run.id}-{profile_id}",
            attempts=3 if failed else 1,
            last_error="-451 try later, +again" if failed else None,
            sent_at=None if failed else NOW,
            created_at=NOW,
            updated_at=NOW,
        )

    await Delivery.bulk_create([row(i, pid) for i, pid in enumerate(profile_ids[:ROWS])], batch_size=1000)
    return run


def test_cells_that_look_like_formulas_are_defused() -> None:
    assert [safe_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "plain", None, 3)] == [
        "'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "plain", "", "3",
    ]  # fmt: skip


async def test_export_streams_the_whole_ledger_in_chunks(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    run = await big_run(gql, sandbox)
    url = f"{server.base_url}/exports/runs/{relay.GlobalID('CampaignRun', str(run.id))}/deliveries.csv"
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(url, headers={"Authorization": f"Bearer {sandbox.keys[Role.VIEWER]}"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        table = list(csv.reader(io.StringIO(response.text)))
        assert tuple(table[0]) == COLUMNS
        rows = [dict(zip(COLUMNS, r, strict=True)) for r in table[1:]]
        assert len(rows) == ROWS
        assert len({r["delivery_id"] for r in rows}) == ROWS
        assert [int(r["delivery_id"]) for r in rows] == sorted(int(r["delivery_id"]) for r in rows)
        failed = [r for r in rows if r["status"] == "FAILED"]
        assert len(failed) == ROWS // 100
        assert {(r["reason"], r["attempts"], r["last_error"], r["sent_at"]) for r in failed} == {
            ("RETRY_EXPIRED", "3", "'-451 try later, +again", "")
        }
        assert rows[1]["address"] == '\'=HYPERLINK("http://evil")@x1.com'
        assert rows[2]["sent_at"] == NOW.isoformat()
        assert relay.GlobalID.from_id(rows[0]["profile_id"]).type_name == "Profile"

        # Another sandbox's key, no key, a malformed id: nothing is revealed.
        foreign = await http.get(url, headers={"Authorization": f"Bearer {other_sandbox.admin}"})
        assert foreign.status_code == 404
        assert (await http.get(url)).status_code == 401
        malformed = f"{server.base_url}/exports/runs/nonsense/deliveries.csv"
        assert (await http.get(malformed, headers={"Authorization": f"Bearer {sandbox.admin}"})).status_code == 404


async def test_each_chunk_is_read_only_when_the_previous_one_was_sent(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    run = await big_run(gql, sandbox)
    with count_sql() as statements:
        # The session server's in-process worker (dispatcher) runs statements of its own meanwhile.
        def on_ledger() -> list[str]:
            return [s for s in statements if 'FROM "delivery"' in s]

        blocks = delivery_csv(run.id, chunk_rows=500)
        header = await anext(blocks)
        assert header.startswith(b"delivery_id,") and on_ledger() == []
        sizes = []
        async for block in blocks:
            # One keyset SELECT per block, issued as the block is asked for.
            assert len(on_ledger()) == len(sizes) + 1
            sizes.append(block.count(b"\r\n"))
        reads = on_ledger()
    assert sizes == [500] * (ROWS // 500)
    # The last SELECT found nothing more.
    assert len(reads) == ROWS // 500 + 1 and all("LIMIT" in s and "ORDER BY" in s for s in reads)
