"""A query-cost budget per API key in Redis, shared by every API process (a leaky bucket, as Shopify's): a key
holds up to `maximum` points and regains `restore_rate` per second; an operation needs its requested cost
available, pays it, and gets the difference back once its actual cost is known (see resolvers/cost.py)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from resolvers.cost import Charge

logger = logging.getLogger(__name__)

# KEYS[1] the bucket; ARGV: maximum, restore rate per second, now (seconds), cost, force (1: pay even if short,
# used to settle an actual cost). The time comes from the caller so tests can drive it; a clock going backwards
# (another process's) restores nothing rather than failing.
_TAKE = """
local maximum = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'available', 'at')
local available = tonumber(state[1]) or maximum
local at = tonumber(state[2]) or now
if now > at then
  available = math.min(maximum, available + (now - at) * rate)
  at = now
end
local allowed = 1
if cost > available and ARGV[5] ~= '1' then
  allowed = 0
else
  available = math.max(0, math.min(maximum, available - cost))
end
redis.call('HSET', KEYS[1], 'available', tostring(available), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(maximum / rate * 1000) + 1000)
return {allowed, tostring(available)}
"""


class CostBudget:
    def __init__(self, redis: Redis, maximum: int, restore_rate: float, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.maximum = maximum
        self.restore_rate = restore_rate
        self.clock = clock
        self._script = redis.register_script(_TAKE)

    @property
    def enabled(self) -> bool:
        return self.maximum > 0

    async def take(self, budget_key: int | str, cost: int) -> Charge:
        """Pays `cost` if the key has it available; otherwise refuses and says when it will have."""
        available = await self._run(budget_key, cost, force=False)
        if available is None:
            return Charge(allowed=True, available=None)
        allowed, left = available
        if allowed:
            return Charge(allowed=True, available=left)
        return Charge(allowed=False, available=left, retry_after=max(1, math.ceil((cost - left) / self.restore_rate)))

    async def settle(self, budget_key: int | str, difference: int) -> float | None:
        """Actual minus requested: a refund when negative, an extra charge (down to 0 at most) when positive."""
        result = await self._run(budget_key, difference, force=True)
        return None if result is None else result[1]

    async def _run(self, budget_key: int | str, cost: int, *, force: bool) -> tuple[bool, float] | None:
        try:
            allowed, available = await self._script(
                keys=[f"herald:cost:{budget_key}"],
                args=[self.maximum, self.restore_rate, repr(self.clock()), cost, 1 if force else 0],
            )
        except RedisError:
            # Availability over strictness: a Redis outage must not take the API down with it.
            logger.warning("cost budget unavailable; request let through", exc_info=True)
            return None
        return bool(allowed), float(available)

    async def aclose(self) -> None:
        await self.redis.aclose()
