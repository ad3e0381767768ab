"""The worker's start-up heap is taken out of the cyclic collector's view (jobs/worker.freeze_startup_heap)."""

from __future__ import annotations

import gc

from jobs.worker import freeze_startup_heap


def test_the_startup_heap_is_frozen_out_of_the_collectors_view():
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        freeze_startup_heap()
        # Everything alive now (this process's modules at least) is out of every later full collection.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_count()[2] == 0
    finally:
        gc.unfreeze()
