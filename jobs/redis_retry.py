"""Retrying Redis calls through an outage (issue 14 point 4): a restart or a dropped connection must never end a
worker, and an operator should read one WARNING per outage, not one per attempt.

`RedisError` covers every way redis-py reports a lost server, including `WatchError`, which it raises when a
connection drops inside WATCH/MULTI (arq's job start), and OSError for a socket refused before redis-py wraps it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import RedisError

T = TypeVar("T")

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)
MAX_DELAY = 2.0


class Outage:
    """One per kind of Redis use in a process: logs WARNING when it starts and when it ends, DEBUG in between."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self.logger = logger
        self.failures = 0
        self.since = 0.0

    def failed(self, exc: BaseException) -> float:
        """Records a failure; returns the backoff before the next attempt (0.1 s doubling, at most 2 s)."""
        if self.failures == 0:
            self.since = time.monotonic()
            self.logger.warning("%s: Redis unavailable (%r); retrying with backoff", self.what, exc)
        else:
            self.logger.debug("%s: Redis still unavailable (%r)", self.what, exc)
        self.failures += 1
        return min(0.1 * 2 ** min(self.failures - 1, 5), MAX_DELAY)

    def succeeded(self) -> None:
        if self.failures:
            took = time.monotonic() - self.since
            self.logger.warning("%s: Redis is back after %.1fs (%d attempts)", self.what, took, self.failures)
            self.failures = 0


async def retry_redis(
    outage: Outage, action: Callable[..., Awaitable[T]], *args: Any, give_up_after: float | None = None, **kwargs: Any
) -> T:
    """`action(*args, **kwargs)` until it does not raise a Redis error; re-raises once `give_up_after` seconds
    have passed (None: never gives up). The action must be safe to repeat."""
    started = time.monotonic()
    while True:
        try:
            result = await action(*args, **kwargs)
        except REDIS_ERRORS as exc:
            delay = outage.failed(exc)
            if give_up_after is not None and time.monotonic() - started + delay > give_up_after:
                raise
            await asyncio.sleep(delay)
        else:
            outage.succeeded()
            return result
