"""drain_jobs (tests/drain.py): what is due runs to completion, what is deferred stays so until `until` says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from arq.jobs import Job, JobStatus
from starlette.applications import Starlette


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
