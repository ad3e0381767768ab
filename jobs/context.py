"""The worker's context: one typed object built at startup and stored in arq's ctx dict under CONTEXT_KEY.

arq hands each job a copy of its ctx dict (with `redis`, `job_id`, `job_try`); the Herald part of it is this
object. A job started without it fails loudly instead of reading settings from the environment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from api.settings import Settings

CONTEXT_KEY = "herald"


class MissingWorkerContextError(RuntimeError):
    """A job ran without the context `build_worker` (or `job_ctx` in scripts and tests) puts in ctx."""


@dataclass(frozen=True, slots=True)
class WorkerContext:
    settings: Settings
    # Runs this process sends for (jobs.runs): arq copies its ctx dict per job, this object is shared.
    serving_runs: Counter[int] = field(default_factory=Counter)
    # The run executor's "now" (due rows, leases, sent_at): the wall clock, or one a test drives.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def worker_context(ctx: dict[str, Any]) -> WorkerContext:
    found = ctx.get(CONTEXT_KEY)
    if not isinstance(found, WorkerContext):
        raise MissingWorkerContextError(f"ctx[{CONTEXT_KEY!r}] holds no WorkerContext: start jobs through build_worker")
    return found


def job_ctx(settings: Settings, redis: Any = None) -> dict[str, Any]:
    """An arq-like ctx for running a job function directly (benchmarks, tests)."""
    return {CONTEXT_KEY: WorkerContext(settings), "redis": redis}
