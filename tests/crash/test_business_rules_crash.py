"""Issue 18's "done when", with real processes on PostgreSQL: profiles over 24 time zones (+05:45, +13:00 and
-03:30 among them), a cap of 2 email per week, four campaigns of different priorities run by two `herald worker`
processes, one of them killed (-9) mid-run and a third started. At the SMTP sink no profile got more than two
messages; each run's ledger adds up (audience = sent + FREQUENCY_CAPPED + the other exclusions + failed); the two
highest priorities got the slots.

RULES_CRASH_PROFILES sets the size (default 1,000; the issue's figure is 50,000)."""

from __future__ import annotations

import collections
import os
import time

import pytest

from tests.conftest import TEST_DB
from tests.crash.harness import Herald, SlowSink, key_of
from tests.e2e.polling import wait_until

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="needs PostgreSQL (several workers, advisory locks)")

PROFILES = int(os.environ.get("RULES_CRASH_PROFILES", "1000"))
PRIORITIES = [10, 40, 70, 100]
CAP = 2


async def test_caps_hold_across_workers_and_a_kill(herald: Herald, sink: tuple[SlowSink, int]) -> None:
    handler, port = sink
    handler.delay = 0.0005
    started = time.monotonic()
    seeded = await herald.action(
        "seed_rules", {"profiles": PROFILES, "sink_port": port, "cap": CAP, "priorities": PRIORITIES}
    )
    seeded_at = time.monotonic()
    first, _second = herald.worker(), herald.worker()
    # Mid-run: a quarter of the messages the cap allows are in.
    await wait_until(lambda: len(handler.pairs) >= PROFILES * CAP // 4, timeout=max(120, PROFILES / 40))
    first.kill9()
    at_kill = len(handler.pairs)
    herald.worker()

    async def all_final() -> bool:
        rows = await herald.db.fetch("SELECT status FROM campaign_run WHERE id = ANY($1::bigint[])", seeded["runs"])
        return all(r["status"] in ("SUCCEEDED", "FAILED", "CANCELLED") for r in rows)

    await wait_until(all_final, timeout=max(300, PROFILES / 20), interval=0.5)
    finished = time.monotonic()
    runs = await herald.db.fetch("SELECT * FROM campaign_run WHERE id = ANY($1::bigint[])", seeded["runs"])
    assert {r["status"] for r in runs} == {"SUCCEEDED"}, [dict(r) for r in runs]

    # At the sink: distinct messages (Message-IDs) per recipient, at most CAP. A message in flight when its worker
    # died may arrive twice with the same Message-ID: that is one message sent twice, not a third one.
    messages = collections.defaultdict(set)
    for message_id, recipient in handler.pairs:
        messages[recipient].add(message_id)
    per_recipient = collections.Counter(len(ids) for ids in messages.values())
    assert max(per_recipient) <= CAP, per_recipient
    duplicated = sum(n - 1 for n in collections.Counter(mid for mid, _ in handler.pairs).values() if n > 1)

    # Each run's reasons add up, and the ledger agrees with the sink.
    campaign_of = {int(p): c for p, c in seeded["campaigns"].items()}
    figures = {}
    for priority, campaign_id in campaign_of.items():
        rows = await herald.db.fetch(
            "SELECT status, reason, COUNT(*) AS n FROM delivery WHERE campaign_id = $1 GROUP BY 1, 2", campaign_id
        )
        by = {(r["status"], r["reason"]): r["n"] for r in rows}
        audience = sum(by.values())
        sent = by.get(("SENT", None), 0)
        capped = by.get(("EXCLUDED", "FREQUENCY_CAPPED"), 0)
        other_excluded = sum(n for (s, r), n in by.items() if s == "EXCLUDED" and r != "FREQUENCY_CAPPED")
        failed = sum(n for (s, _), n in by.items() if s in ("FAILED", "BOUNCED"))
        assert audience == PROFILES
        assert audience == sent + capped + other_excluded + failed, by
        figures[priority] = {"sent": sent, "capped": capped, "other": other_excluded, "failed": failed}
    sent_keys = {
        r["idempotency_key"]
        for r in await herald.db.fetch(
            "SELECT idempotency_key FROM delivery WHERE run_id = ANY($1::bigint[]) AND status = 'SENT'", seeded["runs"]
        )
    }
    assert sent_keys == {key_of(mid) for mid, _ in handler.pairs}

    # The two highest priorities took the two weekly slots of every profile; the others were capped.
    assert figures[100]["sent"] == figures[70]["sent"] == PROFILES, figures
    assert figures[40]["capped"] == figures[10]["capped"] == PROFILES, figures
    print(
        f"\nrules crash: {PROFILES} profiles, seeded in {seeded_at - started:.1f} s, runs done "
        f"{finished - seeded_at:.1f} s later; at kill {at_kill} messages in; {len(handler.pairs)} received "
        f"({duplicated} sent again after the kill); per campaign {figures}"
    )
