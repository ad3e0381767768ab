"""The one way to enqueue work, and where every job's name and id are declared.

Job ids are deterministic, so enqueuing twice is harmless while queued. The names are the arq function names
jobs/worker.py registers (tests/unit/test_job_names.py checks both lists agree). Ids live here rather than in
the job modules so that resolvers can enqueue without importing the jobs (and the jobs enqueue without a cycle).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import Job, serialize_job
from arq.utils import timestamp_ms, to_unix_ms

from jobs.redis_retry import Outage, retry_redis

logger = logging.getLogger(__name__)

WORKER_PING = "worker_ping"
VALIDATE_PRESET = "validate_preset"
EXECUTE_RUN = "execute_run"
SEND_RUN_PART = "send_run_part"
SEND_TRIGGERS = "send_triggers"
SEND_PROOF = "send_proof"
IMPORT_PROFILES = "import_profiles"
JOB_NAMES = (WORKER_PING, VALIDATE_PRESET, EXECUTE_RUN, SEND_RUN_PART, SEND_TRIGGERS, SEND_PROOF, IMPORT_PROFILES)

# How long an enqueue waits for Redis before raising: a worker outlives the outage either way (its poll is
# retried, the dispatcher re-enqueues runs), and a request should not hang for longer than this.
ENQUEUE_RETRY_SECONDS = 10.0
_outage = Outage("enqueue", logger)  # per process: one WARNING per outage whoever enqueues

# arq's enqueue_job as one round trip: its WATCH, EXISTS, then MULTI/PSETEX/ZADD/EXEC were three, each a socket
# write and a wake-up of Redis (issue 17: a tenth of the server's CPU at 200 triggers/s was these writes). The
# same keys, values and rule: no job while one with the id is queued or its result is kept.
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


class JobQueue:
    def __init__(self, redis: ArqRedis, retry_seconds: float = ENQUEUE_RETRY_SECONDS) -> None:
        self.redis = redis
        self.retry_seconds = retry_seconds
        # run id -> the last wake-up window this queue enqueued for it (wake_triggers).
        self._woken: dict[int, int] = {}

    async def enqueue(
        self, function: str, *args: Any, job_id: str | None = None, _defer_until: datetime | None = None
    ) -> Job | None:
        """Enqueue after the database commit; returns None when a job with `job_id` is already queued (or its
        result kept). Redis errors are retried with backoff for `retry_seconds` (the script is atomic: safe to
        repeat)."""
        job_id = job_id or uuid4().hex
        enqueued = await retry_redis(
            _outage, self._enqueue_once, function, args, job_id, _defer_until, give_up_after=self.retry_seconds
        )
        if not enqueued:
            return None
        return Job(
            job_id,
            redis=self.redis,
            _queue_name=self.redis.default_queue_name,
            _deserializer=self.redis.job_deserializer,
        )

    async def _enqueue_once(
        self, function: str, args: tuple[Any, ...], job_id: str, defer_until: datetime | None
    ) -> int:
        now_ms = timestamp_ms()
        score = to_unix_ms(defer_until) if defer_until is not None else now_ms
        job = serialize_job(function, args, {}, None, now_ms, serializer=self.redis.job_serializer)
        keys = (job_key_prefix + job_id, result_key_prefix + job_id, self.redis.default_queue_name)
        expires_ms = score - now_ms + self.redis.expires_extra_ms
        return int(await self.redis.eval(_ENQUEUE, 3, *keys, expires_ms, job, score, job_id))

    async def worker_ping(self, sandbox_id: int, message: str, ping_id: str) -> Job | None:
        return await self.enqueue(WORKER_PING, sandbox_id, message, ping_id, job_id=f"{WORKER_PING}:{ping_id}")

    async def validate_preset(self, preset_id: int, version: int) -> Job | None:
        """One job per (preset, version submitted): re-submitting the same version is a no-op while queued."""
        job_id = f"{VALIDATE_PRESET}:{preset_id}:{version}"
        return await self.enqueue(VALIDATE_PRESET, preset_id, version, job_id=job_id)

    async def execute_run(self, run_id: int) -> Job | None:
        """The run's job id is fixed, so enqueuing it again while queued is a no-op."""
        return await self.enqueue(EXECUTE_RUN, run_id, job_id=f"{EXECUTE_RUN}:{run_id}")

    async def requeue_run(self, run_id: int, window: int) -> Job | None:
        """A PENDING run whose fixed-id job was lost or is stuck behind a dead worker: once per window."""
        return await self.enqueue(EXECUTE_RUN, run_id, job_id=f"{EXECUTE_RUN}:{run_id}:pending:{window}")

    async def resume_run(self, run_id: int, lease_epoch: int) -> Job | None:
        """A RUNNING run whose worker stopped renewing its lease (the dispatcher): one job per lost lease."""
        return await self.enqueue(EXECUTE_RUN, run_id, job_id=f"{EXECUTE_RUN}:{run_id}:resume:{lease_epoch}")

    async def retry_run_at(self, run_id: int, retry_at: datetime) -> Job | None:
        """The run again when its first delivery waiting for a retry (or its local time) is due. Deferred to that
        instant, not by a delay: a test driving the run executor's clock makes it due with `drain_jobs(until=)`."""
        job_id = f"{EXECUTE_RUN}:{run_id}:at:{int(retry_at.timestamp())}"
        return await self.enqueue(EXECUTE_RUN, run_id, job_id=job_id, _defer_until=retry_at)

    async def resend_run(self, run_id: int, token: str) -> Job | None:
        """Resumes a run after `campaignRunResendFailed`: its own job id, since the run's first job may still
        have its result kept (which would make `execute_run` a no-op)."""
        return await self.enqueue(EXECUTE_RUN, run_id, job_id=f"{EXECUTE_RUN}:{run_id}:resend:{token}")

    async def resume_paused_run(self, run_id: int, token: str) -> Job | None:
        """Takes up a run after `campaignRunResume`: its own job id, like a resend."""
        return await self.enqueue(EXECUTE_RUN, run_id, job_id=f"{EXECUTE_RUN}:{run_id}:unpause:{token}")

    async def send_run_part(self, run_id: int, part: int, claim_tag: int) -> Job | None:
        """Deterministic per claim of the run: enqueuing twice is a no-op, a resumed run gets parts of its own."""
        return await self.enqueue(SEND_RUN_PART, run_id, part, job_id=f"{SEND_RUN_PART}:{run_id}:{part}:{claim_tag}")

    async def wake_triggers(self, run_id: int, window_seconds: float, tag: str = "") -> Job | None:
        """Wakes the sender of an API campaign's trigger run after an acceptance committed. Coalesced: one job per
        run per window of `window_seconds`, deferred to the window's end, so it sees every acceptance committed
        in the window and 200 calls a second make a few jobs, not 200. `window_seconds` 0: a job per `tag`, now
        (the dispatcher's safety net, and tests that run due jobs only)."""
        if window_seconds <= 0:
            return await self.enqueue(SEND_TRIGGERS, run_id, job_id=f"{SEND_TRIGGERS}:{run_id}:{tag}")
        window = int(time.time() // window_seconds)
        if self._woken.get(run_id) == window:
            # Enqueued by this queue already: arq would find the job id taken. Skipping it saves the request a
            # WATCH/MULTI round trip to Redis on all but the first call of a window (issue 17: 9% of serve's CPU).
            return None
        if len(self._woken) >= 10_000:
            self._woken.clear()
        # Marked before the await: the window's calls arriving meanwhile skip it too.
        self._woken[run_id] = window
        ends = datetime.fromtimestamp((window + 1) * window_seconds, UTC)
        job_id = f"{SEND_TRIGGERS}:{run_id}:w{window}"
        try:
            return await self.enqueue(SEND_TRIGGERS, run_id, job_id=job_id, _defer_until=ends)
        except BaseException:
            if self._woken.get(run_id) == window:
                del self._woken[run_id]  # not enqueued: the next call tries again
            raise

    async def send_proof(
        self,
        sandbox_id: int,
        campaign_id: int,
        recipients: list[dict[str, Any]],
        actor: str,
        proof_id: str,
        treatment: str | None = None,
        version: int | None = None,
    ) -> Job | None:
        """Proofs are sent now by a worker; the caller waits for the job's result (jobs/proofs.py)."""
        return await self.enqueue(
            SEND_PROOF,
            sandbox_id,
            campaign_id,
            recipients,
            actor,
            treatment,
            version,
            job_id=f"{SEND_PROOF}:{proof_id}",
        )

    async def import_profiles(self, import_id: int) -> Job | None:
        return await self.enqueue(IMPORT_PROFILES, import_id, job_id=f"{IMPORT_PROFILES}:{import_id}")
