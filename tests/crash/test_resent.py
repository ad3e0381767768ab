"""The run's `resent` counter (issue 22): a worker SIGKILLed after handing a chunk of emails to the provider, before
recording their outcomes. Another worker sends them again (same Message-ID); the run and its final progress event
count them, at least as many as the sink received twice and at most the one chunk in flight."""

from __future__ import annotations

import orjson
import pytest

from jobs.sending import OUTCOMES_EVERY
from models.outbox.payloads import CAMPAIGN_RUN_PROGRESS_TOPIC
from tests.conftest import TEST_DB
from tests.crash.harness import Herald, SlowSink, contactable
from tests.e2e.polling import wait_until

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="needs PostgreSQL (worker processes share the ledger)")

PROFILES = 300


async def test_a_killed_workers_chunk_is_counted_as_resent(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    # Mid second chunk: its messages reached the provider (the sink holds them at DATA), no outcome is written.
    handler.pause_after = OUTCOMES_EVERY + 5
    victim = herald.worker()
    seeded = await herald.action("seed", {"profiles": PROFILES, "sink_port": port})
    run_id = seeded["run_id"]
    await wait_until(handler.paused.is_set, timeout=60)
    victim.kill9()
    handler.gate.set()  # the held messages count as received: the provider accepted them, the worker never knew
    herald.worker()
    result = await herald.check(run_id, handler, contactable=contactable(PROFILES), crashes=1, in_flight=OUTCOMES_EVERY)
    run = result["run"]
    print("same-Message-ID resends at the sink:", result["duplicated"], "run.resent:", run["resent"])
    assert result["duplicated"] >= 1
    # Counted when handed over (a message still queued in the dead worker's pool counts too): an upper bound.
    assert result["duplicated"] <= run["resent"] <= OUTCOMES_EVERY

    async def final_event() -> dict | None:
        rows = await herald.db.fetch("SELECT payload FROM outbox_event WHERE topic = $1", CAMPAIGN_RUN_PROGRESS_TOPIC)
        payloads = [p if isinstance(p, dict) else orjson.loads(p) for p in (r["payload"] for r in rows)]
        return next((p for p in payloads if p["runId"] == run_id and p["final"]), None)

    event = await wait_until(final_event, timeout=10, interval=0.1)
    assert event["resent"] == run["resent"]
