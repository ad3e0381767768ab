"""Requests per API key in Redis, shared by every API process: a window opens with a key's first request and
lasts a minute; past the limit, requests are refused until it closes (HTTP 429 + Retry-After)."""

from __future__ import annotations

import logging
import math

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


class RateLimiter:
    def __init__(self, redis: Redis, per_minute: int) -> None:
        self.redis = redis
        self.per_minute = per_minute

    async def retry_after(self, api_key_id: int) -> int | None:
        """Counts one request of this key; returns the seconds to wait when it is over the limit, else None."""
        if self.per_minute <= 0:
            return None
        key = f"herald:ratelimit:{api_key_id}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
                pipe.incr(key)
                pipe.pttl(key)
                _, count, ttl_ms = await pipe.execute()
        except RedisError:
            # Availability over strictness: a Redis outage must not take the API down with it.
            logger.warning("rate limiter unavailable; request let through", exc_info=True)
            return None
        if count <= self.per_minute:
            return None
        return max(1, math.ceil((ttl_ms if ttl_ms > 0 else WINDOW_SECONDS * 1000) / 1000))

    async def aclose(self) -> None:
        await self.redis.aclose()
