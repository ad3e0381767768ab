"""The one way to enqueue work. Job ids are deterministic, so enqueuing twice is harmless while queued."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from arq.jobs import Job


class JobQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis

    async def enqueue(self, function: str, *args: Any, job_id: str | None = None, **kwargs: Any) -> Job | None:
        """Enqueue after the database commit; returns None when a job with `job_id` is already queued."""
        return await self.redis.enqueue_job(function, *args, _job_id=job_id, **kwargs)

    async def worker_ping(self, sandbox_id: int, message: str, ping_id: str) -> Job | None:
        return await self.enqueue("worker_ping", sandbox_id, message, ping_id, job_id=f"worker_ping:{ping_id}")

    async def import_profiles(self, import_id: int) -> Job | None:
        return await self.enqueue("import_profiles", import_id, job_id=f"import_profiles:{import_id}")
