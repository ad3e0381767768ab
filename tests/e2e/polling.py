"""Waiting on real processes (tests/e2e, tests/crash): their work is not ours to run, so we poll with a deadline."""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Polls `predicate` (sync or async) until it returns a truthy value; fails after `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(interval)
