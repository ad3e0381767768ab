"""Waves with a crash between them (issue 18), real processes: a run of 10/20/30/40 % waves, the worker killed
with kill -9 once wave 1 is all at the sink and the first batch of wave 2 is in flight; another worker resumes.
No profile is reassigned to another wave, no message is sent twice but those in flight at the kill, and the sink
receives every message of a wave after the last of the previous one (a wave waits for the previous to finish).
"""

from __future__ import annotations

import collections

from models.ledger.claims import BATCH_SIZE
from tests.crash.harness import Herald, SlowSink, contactable, key_of
from tests.e2e.polling import wait_until

PROFILES = 1000
WAVES = {"count": 4, "sizing": "PERCENT", "sizes": [10, 20, 30, 40]}


async def test_waves_with_a_worker_killed_between_waves(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    to_send = len(contactable(PROFILES))
    wave_one = to_send * 10 // 100
    # The first message of wave 2 waits at the sink: wave 1 is all in, a batch of wave 2 is in flight.
    handler.pause_after = wave_one
    seeded = await herald.action(
        "seed",
        # Every wave's time comes within 3 seconds: each starts only because the previous one finished.
        {"profiles": PROFILES, "sink_port": port, "waves": WAVES, "wave_start_offsets": [0, 1, 2, 3]},
    )
    run_id = seeded["run_id"]
    worker = herald.worker()
    await wait_until(lambda: handler.paused.is_set(), timeout=60)

    assigned = {
        r["profile_id"]: r["wave"]
        for r in await herald.db.fetch("SELECT profile_id, wave FROM delivery WHERE run_id = $1", run_id)
    }
    by_wave = collections.Counter(w for w in assigned.values() if w is not None)
    assert by_wave == {1: wave_one, 2: to_send * 30 // 100 - wave_one, 3: to_send * 60 // 100 - to_send * 30 // 100,
                       4: to_send - to_send * 60 // 100}  # fmt: skip
    statuses = await herald.statuses(run_id)
    assert statuses.get("SENT") == wave_one and statuses.get("SENDING", 0) > 0, statuses

    worker.kill9()
    handler.gate.set()
    herald.worker()
    result = await herald.check(run_id, handler, contactable=contactable(PROFILES), crashes=1, in_flight=BATCH_SIZE)

    rows = await herald.db.fetch(
        "SELECT profile_id, wave, idempotency_key, status FROM delivery WHERE run_id = $1", run_id
    )
    # Nobody changed wave on resume; every wave was sent whole.
    assert {r["profile_id"]: r["wave"] for r in rows} == assigned
    sent = collections.Counter(r["wave"] for r in rows if r["status"] == "SENT")
    assert sent == by_wave
    # At the sink, wave by wave: the first message of a wave came after the last of the one before.
    wave_of_key = {r["idempotency_key"]: r["wave"] for r in rows}
    arrivals = [wave_of_key[key_of(message_id)] for message_id, _ in handler.pairs]
    for wave in (2, 3, 4):
        first = arrivals.index(wave)
        last_before = max(i for i, w in enumerate(arrivals) if w == wave - 1)
        assert last_before < first, (wave, last_before, first)
    # Duplicates only among the batch in flight at the kill (wave 2).
    duplicated = [k for k, n in collections.Counter(key_of(m) for m, _ in handler.pairs).items() if n > 1]
    assert {wave_of_key[k] for k in duplicated} <= {2}
    run = result["run"]
    assert run["wave"] == 4 and run["sent"] == to_send
    print("waves crash:", result["by_status"], "duplicates", result["duplicated"])
