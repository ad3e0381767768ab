"""drain_jobs (tests/drain.py): what is due runs to completion, what is deferred stays so until `until` says."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from arq.constants import default_queue_name, in_progress_key_prefix
from arq.jobs import Job, JobStatus
from starlette.applications import Starlette

from tests.drain import _held_elsewhere


async def test_due_jobs_run_and_deferred_ones_wait_for_until(app: Starlette, drain_jobs) -> None:
    redis = app.state.redis
    now_id, later_id = f"worker_ping:drain-{uuid.uuid4().hex}", f"worker_ping:drain-{uuid.uuid4().hex}"
    await redis.enqueue_job("worker_ping", 1, "now", "a", _job_id=now_id)
    await redis.enqueue_job("worker_ping", 1, "later", "b", _job_id=later_id, _defer_by=timedelta(minutes=5))

    drained = await drain_jobs()
    assert await Job(now_id, redis).status() is JobStatus.complete
    assert (await Job(now_id, redis).result())["message"] == "now"
    assert await Job(later_id, redis).status() is JobStatus.deferred
    assert later_id in drained.deferred

    drained = await drain_jobs(until=datetime.now(UTC) + timedelta(minutes=6))
    assert await Job(later_id, redis).status() is JobStatus.complete
    assert later_id not in drained.deferred


async def test_a_job_stuck_in_another_worker_is_an_error(app: Starlette) -> None:
    redis = app.state.redis
    job_id = f"worker_ping:held-{uuid.uuid4().hex}"
    await redis.enqueue_job("worker_ping", 1, "held", "c", _job_id=job_id)
    due = [job_id.encode()]
    key = in_progress_key_prefix + job_id
    await redis.set(key, b"1")
    try:
        # Another worker holds it and never lets go: an error, not a drain that never ends.
        with pytest.raises(AssertionError, match="gone or stuck"):
            await _held_elsewhere(redis, due, deadline=0.05)
        # Let go: nothing is held (a running worker that finishes a job is waited for; the proofs tests do).
        await redis.delete(key)
        assert await _held_elsewhere(redis, due) is False
    finally:
        await redis.delete(key)
        await redis.zrem(default_queue_name, job_id)


async def test_a_drain_ends_while_the_test_worker_runs_and_a_job_waits_deferred(
    app: Starlette, worker, drain_jobs
) -> None:
    """The test's own worker (the `worker` fixture) used to take due jobs a drain round counted on; with a job
    deferred in the queue, arq's burst mode then polled for them forever. A drain now pauses that worker."""
    redis = app.state.redis
    later_id = f"worker_ping:later-{uuid.uuid4().hex}"
    await redis.enqueue_job("worker_ping", 1, "later", "l", _job_id=later_id, _defer_by=timedelta(minutes=5))
    try:
        for attempt in range(20):
            due_ids = [f"worker_ping:due-{attempt}-{i}-{uuid.uuid4().hex}" for i in range(10)]
            for job_id in due_ids:
                await redis.enqueue_job("worker_ping", 1, "due", job_id, _job_id=job_id)
            drained = await asyncio.wait_for(drain_jobs(), timeout=60)
            assert later_id in drained.deferred  # earlier tests may have left deferred jobs of their own
            assert [await Job(j, redis).status() for j in due_ids] == [JobStatus.complete] * len(due_ids)
    finally:
        await redis.zrem(default_queue_name, later_id)
