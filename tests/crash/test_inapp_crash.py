"""An in-app run's batch is taken, rendered, written to the inbox and recorded SENT in one transaction
(jobs/inapp_direct.py): a worker killed (-9) or cut off from PostgreSQL after its inbox rows are written and before
the ledger's outcomes are leaves nothing of the batch, and the run ends with one inbox row per profile, each for a
SENT ledger row, and counters equal to the ledger.

The moment is exact without hooks in Herald (tests/crash/locks.py): the inbox INSERT is held first (the rows are
taken and rendered), then the ledger's UPDATE (SHARE on delivery lets the taking SELECT … FOR UPDATE through, not
the UPDATE), then the INSERT is let go and the worker broken while its UPDATE waits."""

from __future__ import annotations

import collections

import pytest

from tests.conftest import TEST_DB
from tests.crash.harness import Herald
from tests.crash.locks import Locker
from tests.crash.test_crash_moments import FAULTS, break_worker

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="needs PostgreSQL (locks, pg_terminate_backend)")

PROFILES = 600
EVERYONE = {f"p{index:05d}@example.com" for index in range(PROFILES)}  # in-app: email consent does not apply


async def inbox_keys(herald: Herald, campaign_id: int) -> list[str]:
    rows = await herald.db.fetch("SELECT idempotency_key FROM inbox_message WHERE campaign_id = $1", campaign_id)
    return [r["idempotency_key"] for r in rows]


@pytest.mark.parametrize("fault", FAULTS)
async def test_broken_between_the_inbox_write_and_the_outcomes(herald: Herald, fault: str) -> None:
    worker = herald.worker()
    async with Locker(herald.database_url) as inbox, Locker(herald.database_url) as ledger:
        await inbox.hold("LOCK TABLE inbox_message IN SHARE MODE")
        seeded = await herald.action("seed", {"profiles": PROFILES, "sink_port": 0, "channel": "IN_APP"})
        run_id, campaign_id = seeded["run_id"], seeded["campaign_id"]
        print("waiting:", await inbox.waiters("insert", "inbox_message"))
        await ledger.hold("LOCK TABLE delivery IN SHARE MODE")
        await inbox.release()
        print("waiting:", await ledger.waiters("update", "delivery"))
        # The batch's inbox rows are written in the worker's transaction, its ledger rows not yet.
        await break_worker(herald, worker, fault)
        statuses = await herald.statuses(run_id)
        assert statuses == {"QUEUED": PROFILES}, statuses
        assert await inbox_keys(herald, campaign_id) == []  # nothing of the batch visible, nothing to resend
    run = await herald.wait_finished(run_id)
    assert all(w.alive for w in herald.workers if not w.killed), [w.log.read_text()[-3000:] for w in herald.workers]
    assert run["status"] == "SUCCEEDED", (run["status"], run["failure_reason"])
    rows = await herald.db.fetch(
        "SELECT status, address, idempotency_key, attempts, provider_message_id, lease_until FROM delivery "
        "WHERE run_id = $1",
        run_id,
    )
    assert {r["address"] for r in rows} == EVERYONE and len(rows) == PROFILES
    assert collections.Counter(r["status"] for r in rows) == {"SENT": PROFILES}
    # One attempt each: the broken transaction's left nothing, not even its attempt count.
    assert {(r["attempts"], r["lease_until"]) for r in rows} == {(1, None)}
    assert all(r["provider_message_id"] == r["idempotency_key"] for r in rows)
    keys = await inbox_keys(herald, campaign_id)
    assert sorted(keys) == sorted(r["idempotency_key"] for r in rows)  # exactly one inbox row per SENT row
    counters = (run["targeted"], run["excluded"], run["sent"], run["failed"], run["resent"])
    assert counters == (PROFILES, 0, PROFILES, 0, 0)
