"""A worker killed (-9) or cut off from PostgreSQL (pg_terminate_backend) at each step of a run: the snapshot,
the claim, sending and finishing (issue 14, "Done when"). Each ends with every contactable profile sent exactly
once (a same-Message-ID resend of the batch in flight is counted and printed, not failed) and the run's counters
equal to the ledger. A worker killed while sending leaves resends the run counts (`resent`, issue 22).

The moment is exact without hooks in Herald: the test holds the lock the worker's next statement needs
(tests/crash/locks.py) or pauses the SMTP sink, waits until the worker waits on it, breaks it, then lets go.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from jobs.sending import OUTCOMES_EVERY
from models.ledger.claims import BATCH_SIZE
from models.outbox.payloads import CAMPAIGN_RUN_PROGRESS_TOPIC
from tests.conftest import TEST_DB
from tests.crash.harness import Herald, SlowSink, Worker, contactable
from tests.crash.locks import Locker
from tests.e2e.polling import wait_until

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="needs PostgreSQL (locks, pg_terminate_backend)")

PROFILES = 600
EVERYONE = contactable(PROFILES)
FAULTS = ["kill", "cut"]


async def break_worker(herald: Herald, worker: Worker, fault: str) -> None:
    """kill -9 then a new worker process (as a supervisor would), or every connection of the worker cut."""
    if fault == "kill":
        worker.kill9()
        herald.worker()
    else:
        assert await herald.cut_connections() >= 1


async def final_progress(herald: Herald, run_id: int) -> dict[str, Any] | None:
    """The run's final progress event, as the outbox holds it."""
    rows = await herald.db.fetch("SELECT payload FROM outbox_event WHERE topic = $1", CAMPAIGN_RUN_PROGRESS_TOPIC)
    payloads = [p if isinstance(p, dict) else orjson.loads(p) for p in (r["payload"] for r in rows)]
    return next((p for p in payloads if p["runId"] == run_id and p["final"]), None)


async def finish(herald: Herald, run_id: int, handler: SlowSink, moment: str, fault: str) -> dict[str, Any]:
    result = await herald.check(run_id, handler, contactable=EVERYONE, crashes=1, in_flight=BATCH_SIZE)
    print(f"{fault} during {moment}:", result["by_status"], "same-Message-ID resends:", result["duplicated"])
    return result


@pytest.mark.parametrize("fault", FAULTS)
async def test_broken_during_the_snapshot(herald: Herald, sink: tuple[SlowSink, int], fault: str) -> None:
    handler, port = sink
    worker = herald.worker()
    async with Locker(herald.database_url) as locker:
        # The snapshot's INSERT … SELECT into the ledger waits; reads (the review) go on.
        await locker.hold("LOCK TABLE delivery IN EXCLUSIVE MODE")
        seeded = await herald.action("seed", {"profiles": PROFILES, "sink_port": port})
        print("waiting:", await locker.waiters("insert", "delivery"))
        await break_worker(herald, worker, fault)
    await finish(herald, seeded["run_id"], handler, "the snapshot", fault)


@pytest.mark.parametrize("fault", FAULTS)
async def test_broken_during_the_claim(herald: Herald, sink: tuple[SlowSink, int], fault: str) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": PROFILES, "sink_port": port, "enqueue": False})
    run_id = seeded["run_id"]
    worker = herald.worker()
    async with Locker(herald.database_url) as locker:
        # The claim's compare-and-set on the run row waits (NO KEY: ledger rows referencing the run do not).
        await locker.hold("SELECT id FROM campaign_run WHERE id = $1 FOR NO KEY UPDATE", run_id)
        await herald.enqueue(run_id)
        print("waiting:", await locker.waiters("update", "campaign_run"))
        await break_worker(herald, worker, fault)
    await finish(herald, run_id, handler, "the claim", fault)


@pytest.mark.parametrize("fault", FAULTS)
async def test_broken_while_sending(herald: Herald, sink: tuple[SlowSink, int], fault: str) -> None:
    handler, port = sink
    handler.pause_after = 200  # mid-batch: messages of the first batch went out, its results are not written
    worker = herald.worker()
    seeded = await herald.action("seed", {"profiles": PROFILES, "sink_port": port})
    await wait_until(handler.paused.is_set, timeout=60)
    await break_worker(herald, worker, fault)
    handler.gate.set()  # the held messages reached the provider: the broken worker may never have known
    run_id = seeded["run_id"]
    result = await finish(herald, run_id, handler, "sending", fault)
    # The run counts its resends (issue 22): at least the sink's, at most a chunk per job that was sending (the
    # run's and its send part's); counted when handed over, so messages still queued in the pool count too.
    resent = result["run"]["resent"]
    print("run.resent:", resent)
    assert result["duplicated"] <= resent <= 2 * OUTCOMES_EVERY
    if fault == "kill":
        # A chunk was handed over (the sink holds it at DATA) and its outcomes never written: sent again.
        assert resent >= 1
    event = await wait_until(lambda: final_progress(herald, run_id), timeout=10, interval=0.1)
    assert event["resent"] == resent


@pytest.mark.parametrize("fault", FAULTS)
async def test_broken_while_finishing(herald: Herald, sink: tuple[SlowSink, int], fault: str) -> None:
    handler, port = sink
    handler.pause_after = len(EVERYONE) - 20  # inside the last batch
    worker = herald.worker()
    seeded = await herald.action("seed", {"profiles": PROFILES, "sink_port": port})
    run_id = seeded["run_id"]
    await wait_until(handler.paused.is_set, timeout=60)
    async with Locker(herald.database_url) as locker:
        # Writing the run's counters and final status waits; the ledger's outcomes do not.
        await locker.hold("SELECT id FROM campaign_run WHERE id = $1 FOR NO KEY UPDATE", run_id)
        handler.gate.set()
        await wait_until(lambda: herald._settled(run_id), timeout=30)  # every outcome written
        print("waiting:", await locker.waiters("update", "campaign_run"))
        await break_worker(herald, worker, fault)
    await finish(herald, run_id, handler, "finishing", fault)
