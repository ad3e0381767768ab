"""A worker broken (kill -9, or its connections cut) at the steps issue 24 added to a run: the pause, before and
after its commit, and campaignRunResume. A relay refuses the sender (550 5.7.1) from a chunk on; the run pauses
with what was not sent QUEUED and the preset FAILED; the relay is fixed, the preset validated again by a worker
and the run resumed. Each ends with every contactable profile sent exactly once, nobody suppressed and the run's
counters equal to the ledger (the harness's checks).

The moment is exact without hooks in Herald (as in test_crash_moments): the test holds the preset's row lock,
which the pause's transaction needs for the preset's alert, or pauses the SMTP sink after the resume.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobs.sending import OUTCOMES_EVERY
from tests.conftest import TEST_DB
from tests.crash.harness import Herald, SlowSink, contactable
from tests.crash.locks import Locker
from tests.crash.test_crash_moments import FAULTS, break_worker
from tests.e2e.polling import wait_until

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="needs PostgreSQL (locks, pg_terminate_backend)")

PROFILES = 240
EVERYONE = contactable(PROFILES)
# Recipients accepted before the relay refuses: a multiple of the outcome chunk, so one chunk is refused whole.
REFUSE_AFTER = 4 * OUTCOMES_EVERY


async def run_status(herald: Herald, run_id: int) -> str:
    return await herald.db.fetchval("SELECT status FROM campaign_run WHERE id = $1", run_id)


async def wait_status(herald: Herald, run_id: int, status: str, timeout: float = 30) -> None:
    async def reached() -> bool:
        return await run_status(herald, run_id) == status

    try:
        await wait_until(reached, timeout=timeout, interval=0.05)
    except TimeoutError:
        run = await herald.db.fetchrow("SELECT * FROM campaign_run WHERE id = $1", run_id)
        logs = [w.log.read_text(errors="replace")[-3000:] for w in herald.workers]
        raise AssertionError(f"run not {status}: {dict(run)} {await herald.statuses(run_id)} {logs}") from None


async def assert_paused(herald: Herald, seeded: dict[str, Any]) -> None:
    """What was sent stays SENT, the rest is QUEUED without an attempt, nobody suppressed, the preset alerted."""
    counts = await herald.statuses(seeded["run_id"])
    assert {s: n for s, n in counts.items() if s != "EXCLUDED"} == {
        "SENT": REFUSE_AFTER,
        "QUEUED": len(EVERYONE) - REFUSE_AFTER,
    }, counts
    tried = await herald.db.fetchval(
        "SELECT COUNT(*) FROM delivery WHERE run_id = $1 AND status = 'QUEUED' AND attempts > 0", seeded["run_id"]
    )
    assert tried == 0
    run = await herald.db.fetchrow("SELECT pause_reason, lease_until FROM campaign_run WHERE id = $1", seeded["run_id"])
    assert (run["pause_reason"], run["lease_until"]) == ("SENDER_REFUSED", None)
    assert not await herald.db.fetchval(
        "SELECT COUNT(*) FROM suppression_entry WHERE sandbox_id = $1", seeded["sandbox_id"]
    )
    preset = await herald.db.fetchrow("SELECT status, checks FROM message_preset WHERE id = $1", seeded["preset_id"])
    assert preset["status"] == "FAILED" and '"SENDER_REFUSED"' in str(preset["checks"]), dict(preset)


async def fix_and_resume(herald: Herald, handler: SlowSink, seeded: dict[str, Any], enqueue: bool = True) -> None:
    """The relay fixed, messagePresetValidate's job passing (the preset ACTIVE again), then campaignRunResume."""
    handler.refuse_after = -1
    spec = {key: seeded[key] for key in ("sandbox_id", "preset_id", "run_id")}
    resumed = await herald.action("validate_and_resume", {**spec, "enqueue": enqueue})
    assert resumed == {"preset": "ACTIVE", "run": "RUNNING"}, resumed


async def finish(herald: Herald, handler: SlowSink, run_id: int, moment: str, in_flight: int) -> dict[str, Any]:
    result = await herald.check(run_id, handler, contactable=EVERYONE, crashes=1, in_flight=in_flight)
    # Nothing lost: every contactable profile was sent, none failed (a refusal is no recipient's fault).
    assert set(result["by_status"]) <= {"SENT", "EXCLUDED"}, result["by_status"]
    print(f"{moment}:", result["by_status"], "same-Message-ID resends:", result["duplicated"])
    return result


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", FAULTS)
async def test_broken_before_the_pause_commits(herald: Herald, sink: tuple[SlowSink, int], fault: str) -> None:
    handler, port = sink
    handler.refuse_after = REFUSE_AFTER
    seeded = await herald.action("seed", {"profiles": PROFILES, "sink_port": port, "enqueue": False})
    run_id = seeded["run_id"]
    worker = herald.worker()
    async with Locker(herald.database_url) as locker:
        # The pause's transaction (run PAUSED, preset alerted) waits for the preset's row; sending does not.
        await locker.hold("SELECT id FROM message_preset WHERE id = $1 FOR NO KEY UPDATE", seeded["preset_id"])
        await herald.enqueue(run_id)
        print("waiting:", await locker.waiters("message_preset", "for update"))
        await break_worker(herald, worker, fault)
    # Rolled back: the run is RUNNING on an expired lease, taken up again, refused again, and paused this time.
    await wait_status(herald, run_id, "PAUSED")
    await assert_paused(herald, seeded)
    await fix_and_resume(herald, handler, seeded)
    await finish(herald, handler, run_id, f"{fault} before the pause commit", in_flight=0)


@pytest.mark.timeout(180)
async def test_killed_after_the_pause_committed(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    """After the commit nothing of the pause is left to do in the database: a kill stands for both faults."""
    handler, port = sink
    handler.refuse_after = REFUSE_AFTER
    worker = herald.worker()
    seeded = await herald.action("seed", {"profiles": PROFILES, "sink_port": port})
    await wait_status(herald, seeded["run_id"], "PAUSED")
    await break_worker(herald, worker, "kill")
    # The alert committed with the pause; nothing takes the run up (the resume below finds it PAUSED still).
    await assert_paused(herald, seeded)
    await fix_and_resume(herald, handler, seeded)
    await finish(herald, handler, seeded["run_id"], "kill after the pause commit", in_flight=0)


@pytest.mark.timeout(180)
async def test_killed_right_after_the_resume(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    """A cut while sending is test_crash_moments' case; a kill sends the chunk in flight again at most."""
    handler, port = sink
    handler.refuse_after = REFUSE_AFTER
    worker = herald.worker()
    seeded = await herald.action("seed", {"profiles": PROFILES, "sink_port": port})
    await wait_status(herald, seeded["run_id"], "PAUSED")
    # The resumed run's first chunk is in flight at the sink when the worker breaks.
    handler.pause_after = REFUSE_AFTER + OUTCOMES_EVERY // 2
    await fix_and_resume(herald, handler, seeded)
    await wait_until(handler.paused.is_set, timeout=30)
    await break_worker(herald, worker, "kill")
    handler.gate.set()
    await finish(herald, handler, seeded["run_id"], "kill after the resume", in_flight=OUTCOMES_EVERY)


@pytest.mark.timeout(180)
async def test_the_resume_job_lost_after_its_commit(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    """The API process dies between the resume's commit and its enqueue: the dispatcher takes the RUNNING run
    without a lease up."""
    handler, port = sink
    handler.refuse_after = REFUSE_AFTER
    herald.worker()
    seeded = await herald.action("seed", {"profiles": PROFILES, "sink_port": port})
    await wait_status(herald, seeded["run_id"], "PAUSED")
    await fix_and_resume(herald, handler, seeded, enqueue=False)
    result = await herald.check(seeded["run_id"], handler, contactable=EVERYONE)
    assert set(result["by_status"]) <= {"SENT", "EXCLUDED"} and result["duplicated"] == 0, result["by_status"]
