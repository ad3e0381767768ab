"""Crash safety with real processes (DESIGN §6, §10 reliability).

Each scenario runs real `herald worker` processes against a fresh PostgreSQL database and a redis-server this
module starts itself, sending email to a slow aiosmtpd sink in the test process that records (Message-ID,
recipient) for every DATA; it breaks something mid-run and then checks the ledger (Herald.check).

On SQLite (the embedded mode, DESIGN §9) the scenarios with one worker run too; those that need several
worker processes sharing a run (`FOR UPDATE SKIP LOCKED`, send parts) or `pg_terminate_backend` are
PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from jobs.sending import OUTCOMES_EVERY
from models.ledger.claims import BATCH_SIZE
from tests.conftest import TEST_DB
from tests.crash.harness import CHECKER_APP, Herald, SlowSink, contactable
from tests.e2e.polling import wait_until

needs_postgres = pytest.mark.skipif(TEST_DB != "postgres", reason="needs PostgreSQL (several senders of one run)")

# Messages one worker can have in flight when it dies: the batch it claimed (written back as a whole) where its
# connections or Redis break under it ...
IN_FLIGHT = BATCH_SIZE
# ... but only the chunk whose outcomes are not written yet when it is killed (issue 22: at most 20 per kill).
SENT_AGAIN_PER_KILL = OUTCOMES_EVERY


async def test_worker_killed_mid_batch_then_restarted(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 1500, "sink_port": port})
    worker = herald.worker()
    # Mid-batch: the sink has messages of a batch whose results are not written yet.
    await wait_until(lambda: len(handler.pairs) >= 700, timeout=60)
    worker.kill9()
    before = len(handler.pairs)
    print("at kill:", before, await herald.statuses(seeded["run_id"]))
    herald.worker()
    result = await herald.check(
        seeded["run_id"], handler, contactable=contactable(1500), crashes=1, in_flight=SENT_AGAIN_PER_KILL
    )
    assert before < len(handler.pairs)
    print("kill -9:", result["by_status"], "duplicates", result["duplicated"])


async def mid_run(handler: SlowSink, count: int = 700) -> None:
    """Until the sink has `count` messages: with batches of 500, a batch is in flight."""
    await wait_until(lambda: len(handler.pairs) >= count, timeout=60)


async def test_the_same_run_enqueued_twice_with_two_workers(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 1500, "sink_port": port, "enqueue": False})
    herald.worker(), herald.worker()
    run_id = seeded["run_id"]
    # The fixed job id, twice, and a job under another id (as a resume would use): one run, each message once.
    await asyncio.gather(
        herald.enqueue(run_id), herald.enqueue(run_id), herald.enqueue(run_id, f"execute_run:{run_id}:other")
    )
    result = await herald.check(run_id, handler, contactable=contactable(1500))
    assert result["duplicated"] == 0


async def test_redis_flushall_mid_run(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 1500, "sink_port": port})
    herald.worker()
    await mid_run(handler)
    herald.redis.cli("FLUSHALL")
    result = await herald.check(
        seeded["run_id"], handler, contactable=contactable(1500), crashes=1, in_flight=IN_FLIGHT
    )
    print("flushall:", result["by_status"], "duplicates", result["duplicated"])


async def test_redis_restarted_mid_run(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 1500, "sink_port": port})
    herald.worker()
    await mid_run(handler)
    herald.redis.stop()  # an empty Redis comes back: the queue is lost too
    herald.redis.start()
    result = await herald.check(
        seeded["run_id"], handler, contactable=contactable(1500), crashes=1, in_flight=IN_FLIGHT
    )
    print("redis restart:", result["by_status"], "duplicates", result["duplicated"])


@needs_postgres
async def test_postgres_connections_dropped_mid_batch(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 1500, "sink_port": port})
    herald.worker(LOG_LEVEL="INFO")
    await mid_run(handler, 300)
    # Several times while it sends, so statements in progress are cut as well as idle connections.
    dropped = 0
    for _ in range(8):
        dropped += await herald.db.fetchval(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name <> $1",
            CHECKER_APP,
        )
        sent = len(handler.pairs)
        await wait_until(lambda: len(handler.pairs) >= min(sent + 60, 1484), timeout=30)  # noqa: B023
    assert dropped >= 1
    result = await herald.check(
        seeded["run_id"], handler, contactable=contactable(1500), crashes=1, in_flight=IN_FLIGHT
    )
    # A batch's results are written again on a new connection rather than its messages sent again.
    assert result["duplicated"] == 0


async def test_smtp_421_for_a_while_then_accepting(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 1500, "sink_port": port})
    herald.worker()
    await mid_run(handler, 300)
    handler.refuse_until = time.monotonic() + 1.5
    result = await herald.check(seeded["run_id"], handler, contactable=contactable(1500))
    assert handler.refused_data > 0
    assert result["by_status"] == {"SENT": len(contactable(1500)), "EXCLUDED": 1500 - len(contactable(1500))}
    assert result["duplicated"] == 0


async def test_smtp_550_recipients_fail_and_are_suppressed(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 600, "sink_port": port, "rejected_every": 10})
    herald.worker()
    everyone = contactable(600, rejected_every=10)
    result = await herald.check(seeded["run_id"], handler, contactable=everyone)
    gone = {a for a in everyone if a.endswith("@gone.example.com")}
    failed = {r["address"]: r["reason"] for r in result["rows"] if r["status"] == "FAILED"}
    assert failed == dict.fromkeys(gone, "HARD_BOUNCE")
    suppressed = await herald.db.fetch(
        "SELECT address, reason FROM suppression_entry WHERE sandbox_id = $1", seeded["sandbox_id"]
    )
    assert {(r["address"], r["reason"]) for r in suppressed} == {(a, "HARD_BOUNCE") for a in gone}
    assert result["duplicated"] == 0


async def test_the_dispatcher_firing_the_same_schedule_twice(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 600, "sink_port": port, "start_in_seconds": 1.5})
    start = datetime.fromisoformat(seeded["start_at"])
    assert seeded["status"] == "SCHEDULED" and seeded["run_id"] is None
    herald.worker(), herald.worker()  # their crons race too
    await wait_until(lambda: datetime.now(UTC) > start, timeout=10)
    fired = await herald.action("dispatch_twice", {"now": (start + timedelta(seconds=1)).isoformat()})
    runs = await wait_until(lambda: herald.runs_of(seeded["campaign_id"]), timeout=10)
    await asyncio.sleep(0)  # the crons may add nothing: one run per (campaign, scheduled time)
    result = await herald.check(runs[0]["id"], handler, contactable=contactable(600))
    assert len(await herald.runs_of(seeded["campaign_id"])) == 1, fired
    assert result["duplicated"] == 0


async def test_profiles_joining_the_segment_while_the_run_sends_are_not_part_of_it(
    herald: Herald, sink: tuple[SlowSink, int]
) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 1500, "sink_port": port})
    herald.worker()
    await mid_run(handler, 200)
    await herald.action("add_profiles", {"sandbox_id": seeded["sandbox_id"], "start": 1500, "count": 300})
    result = await herald.check(seeded["run_id"], handler, contactable=contactable(1500))
    assert len(result["rows"]) == 1500 and result["duplicated"] == 0


@needs_postgres
async def test_two_worker_processes_share_one_run(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 3000, "sink_port": port})
    workers = [herald.worker(LOG_LEVEL="INFO"), herald.worker(LOG_LEVEL="INFO")]
    result = await herald.check(seeded["run_id"], handler, contactable=contactable(3000))
    assert result["duplicated"] == 0
    # Both processes sent part of it (the main job in one, a send part in the other).
    assert all(w.sent_for_a_run() for w in workers), [w.log.read_text()[-2000:] for w in workers]


@needs_postgres
async def test_one_of_two_workers_killed_mid_run(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 3000, "sink_port": port})
    first, _ = herald.worker(), herald.worker()
    await mid_run(handler, 1200)
    first.kill9()
    result = await herald.check(
        seeded["run_id"], handler, contactable=contactable(3000), crashes=1, in_flight=SENT_AGAIN_PER_KILL
    )
    print("one of two killed:", result["by_status"], "duplicates", result["duplicated"])


async def test_stop_with_abort_while_the_run_sends(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    seeded = await herald.action("seed", {"profiles": 3000, "sink_port": port})
    herald.worker()
    await mid_run(handler)
    stopped = await herald.action(
        "stop", {"sandbox_id": seeded["sandbox_id"], "campaign_id": seeded["campaign_id"], "abort": True}
    )
    assert stopped["status"] == "STOPPED"
    result = await herald.check(seeded["run_id"], handler, contactable=contactable(3000), expect_status="CANCELLED")
    # Stopped mid-run: what was sent is SENT (and reached the sink once), the rest CANCELLED. How many of each
    # depends on how far the worker got before the stop committed (a loaded machine sends more first).
    by_status = result["by_status"]
    assert set(by_status) == {"SENT", "CANCELLED", "EXCLUDED"}, by_status
    assert by_status["CANCELLED"] > 0 and by_status["SENT"] > 0
    assert result["duplicated"] == 0


@needs_postgres
async def test_throttle_shared_by_two_workers(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    rate = 50
    seeded = await herald.action("seed", {"profiles": 400, "sink_port": port, "throttle": rate})
    workers = [herald.worker(LOG_LEVEL="INFO"), herald.worker(LOG_LEVEL="INFO")]
    result = await herald.check(seeded["run_id"], handler, contactable=contactable(400))
    # A sender may still wait for tokens when another finishes the run; it then finds nothing left and ends.
    await wait_until(lambda: all(w.sent_for_a_run() for w in workers), timeout=20, interval=0.2)
    run, sent = result["run"], result["by_status"]["SENT"]
    # One bucket for both: the run cannot beat the rate (a full bucket of one second's tokens to start with).
    took = (run["finished_at"] - run["started_at"]).total_seconds()
    print("throttle:", sent, "sent in", took, "s")
    assert took >= (sent - rate) / rate, (took, sent)
    assert result["duplicated"] == 0
