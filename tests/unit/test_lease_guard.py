"""LeaseGuard: outcome writes of one batch overlap each other, never a lease renewal, and a waiting renewal is not
held off by writes that come after it."""

from __future__ import annotations

import asyncio

from jobs.lease_guard import LeaseGuard


async def test_shared_holders_overlap_and_the_exclusive_one_waits_for_them_all() -> None:
    guard = LeaseGuard()
    order: list[str] = []
    first, second = guard.shared(), guard.shared()
    await first.__aenter__()
    await second.__aenter__()  # a second write beside the first

    async def renewal() -> None:
        async with guard:
            order.append("renewed")

    renewing = asyncio.create_task(renewal())
    await asyncio.sleep(0)
    await first.__aexit__(None, None, None)
    await asyncio.sleep(0)
    assert order == []  # one write still in
    await second.__aexit__(None, None, None)
    await renewing
    assert order == ["renewed"]


async def test_a_waiting_renewal_goes_before_writes_that_come_after_it() -> None:
    guard = LeaseGuard()
    order: list[str] = []
    holding = guard.shared()
    await holding.__aenter__()

    async def renewal() -> None:
        async with guard:
            order.append("renewed")

    async def later_write() -> None:
        async with guard.shared():
            order.append("written")

    renewing = asyncio.create_task(renewal())
    await asyncio.sleep(0)  # the renewal is waiting
    writing = asyncio.create_task(later_write())
    await asyncio.sleep(0)
    assert order == []
    await holding.__aexit__(None, None, None)
    await asyncio.gather(renewing, writing)
    assert order == ["renewed", "written"]
