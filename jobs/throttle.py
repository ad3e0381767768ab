"""The campaign throttle (messages per second) as a token bucket in Redis, shared by every worker of a run.

One Lua script, atomic on the server, with the server's clock (workers' clocks never meet): it refills the
bucket for the time elapsed, takes the tokens asked for even if that leaves the bucket in debt, and answers how
long the caller must wait before sending. Taking first and waiting after keeps it to one round trip per batch,
and the debt makes the next caller wait longer, so the rate over the run stays at the limit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from jobs.redis_retry import Outage, retry_redis

logger = logging.getLogger(__name__)
_outage = Outage("throttle", logger)

# KEYS[1] bucket; ARGV: rate per second, capacity, tokens wanted. Returns the wait in microseconds.
TAKE_SCRIPT = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  at = now_us
end
tokens = math.min(capacity, tokens + (now_us - at) * rate / 1000000) - wanted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now_us))
redis.call('PEXPIRE', KEYS[1], 3600000)
if tokens >= 0 then
  return 0
end
return math.ceil(-tokens * 1000000 / rate)
"""


def throttle_key(run_id: int) -> str:
    return f"herald:throttle:run:{run_id}"


def campaign_throttle_key(campaign_id: int) -> str:
    """The bucket of an API-triggered campaign: all its triggers' runs share the campaign's throttle."""
    return f"herald:throttle:campaign:{campaign_id}"


class Throttle:
    """`await take(n)` returns once n messages may go out under `rate` per second across all workers."""

    def __init__(self, redis: Any, run_id: int, rate: float, *, key: str | None = None) -> None:
        self.redis = redis
        self.key = key or throttle_key(run_id)
        self.rate = float(rate)
        # One second of burst: a batch never asks for more than the rate, so it never waits more than a second
        # beyond its share.
        self.capacity = max(self.rate, 1.0)
        self._script = redis.register_script(TAKE_SCRIPT)

    async def take(self, count: int) -> float:
        if count <= 0:
            return 0.0
        # Through an outage the sender waits for Redis rather than send beyond the rate (until the run's lease
        # lets another worker take over, which waits the same way).
        wait_us = int(await retry_redis(_outage, self._script, keys=[self.key], args=[self.rate, self.capacity, count]))
        wait = wait_us / 1_000_000
        if wait > 0:
            await asyncio.sleep(wait)
        return wait
