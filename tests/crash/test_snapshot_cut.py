"""A run whose audience snapshot is cut off before it commits takes it again when resumed (issue 14: it used to
skip the snapshot once the run was RUNNING, and end SUCCEEDED with nothing sent).

The test holds `LOCK TABLE delivery IN EXCLUSIVE MODE`, so the snapshot's INSERT waits deterministically after the
claim committed RUNNING; the test then terminates that backend, as a crash or a cut connection would.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from starlette.applications import Starlette

from jobs.context import job_ctx
from jobs.runs import execute_run
from models.campaigns.campaign import CampaignRun, RunStatus
from models.ledger.delivery import Delivery, InboxMessage
from tests.conftest import TEST_DB, GraphQLClient, SandboxKeys
from tests.e2e.polling import wait_until
from tests.jobs.test_run_steps import pk, run_audit, run_sandbox, scheduled


@pytest.mark.skipif(TEST_DB != "postgres", reason="pg_terminate_backend and LOCK TABLE need PostgreSQL")
async def test_a_snapshot_cut_off_before_commit_is_taken_again_on_resume(
    gql: GraphQLClient, sandbox: SandboxKeys, app: Starlette, database_url: str
) -> None:
    start = datetime(2097, 4, 5, 6, 7, tzinfo=UTC)
    campaign_id = pk(await scheduled(gql, sandbox, start.isoformat()))
    run = await CampaignRun.create(
        sandbox_id=(await run_sandbox(campaign_id)), campaign_id=campaign_id, scheduled_for=start
    )
    ctx = job_ctx(app.state.settings)

    # The test holds the ledger: the snapshot's INSERT waits on the lock, after the claim committed RUNNING.
    locker = await asyncpg.connect(database_url)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE delivery IN EXCLUSIVE MODE")
        job = asyncio.create_task(execute_run(ctx, run.id))
        blocked = await wait_until(lambda: snapshot_waiting(locker))
        await locker.fetchval("SELECT pg_terminate_backend($1)", blocked)
        with pytest.raises(Exception):  # noqa: B017 - whichever error the cut connection raises
            await job
        await transaction.rollback()
    finally:
        await locker.close()

    cut = await CampaignRun.get(id=run.id)
    assert cut.status is RunStatus.RUNNING and cut.snapshot_done_at is None
    assert await Delivery.filter(run_id=run.id).count() == 0

    # Its lease runs out.
    await CampaignRun.filter(id=run.id).update(lease_until=datetime.now(UTC) - timedelta(seconds=1))
    outcome = await execute_run(ctx, run.id)
    assert outcome["status"] == "SUCCEEDED" and outcome["sent"] == 3, outcome
    done = await CampaignRun.get(id=run.id)
    assert done.snapshot_done_at is not None and done.outcome_reason is None
    assert await InboxMessage.filter(campaign_id=campaign_id).count() == 3
    actions = await run_audit(gql, sandbox, run.id)
    assert actions == [
        ("system:worker", "RUN_CLAIM"),
        ("system:worker", "RUN_RESUME"),
        ("system:worker", "RUN_SUCCEED"),
    ]


async def snapshot_waiting(conn: asyncpg.Connection) -> int | None:
    """The backend waiting for the test's lock on delivery (statistics are read afresh, not per transaction)."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return await conn.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid() AND query LIKE '%INSERT INTO delivery%'"
    )
