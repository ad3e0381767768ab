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

    async def validate_preset(self, preset_id: int, version: int) -> Job | None:
        """One job per (preset, version submitted): re-submitting the same version is a no-op while queued."""
        job_id = f"validate_preset:{preset_id}:{version}"
        return await self.enqueue("validate_preset", preset_id, version, job_id=job_id)

    async def execute_run(self, run_id: int) -> Job | None:
        """The run's job id is fixed, so enqueuing it again while queued is a no-op."""
        return await self.enqueue("execute_run", run_id, job_id=f"execute_run:{run_id}")

    async def resend_run(self, run_id: int, token: str) -> Job | None:
        """Resumes a run after `campaignRunResendFailed`: its own job id, since the run's first job may still
        have its result kept (which would make `execute_run` a no-op)."""
        return await self.enqueue("execute_run", run_id, job_id=f"execute_run:{run_id}:resend:{token}")

    async def send_proof(
        self, sandbox_id: int, campaign_id: int, recipients: list[dict[str, Any]], actor: str, proof_id: str
    ) -> Job | None:
        """Proofs are sent now by a worker; the caller waits for the job's result (jobs/proofs.py)."""
        return await self.enqueue(
            "send_proof", sandbox_id, campaign_id, recipients, actor, job_id=f"send_proof:{proof_id}"
        )

    async def import_profiles(self, import_id: int) -> Job | None:
        return await self.enqueue("import_profiles", import_id, job_id=f"import_profiles:{import_id}")
