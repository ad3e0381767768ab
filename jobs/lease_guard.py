"""What a batch's lease renewal and the writes of its outcomes take turns on (jobs/sending.keep_leased).

A renewal UPDATEs every row of the batch and an outcome write some of them: run side by side, the two could lock
rows in opposite orders and deadlock, so each waits for the other (`async with guard`). Writes of disjoint rows of
the batch may overlap each other (`guard.shared()`): a sender streaming a batch keeps two in flight. A waiting
renewal goes first: writes that come after it wait, so a steady stream of writes cannot hold off the renewal
until the lease lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType


class LeaseGuard:
    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._shared = 0
        self._exclusive = False
        self._exclusive_waiting = 0

    async def __aenter__(self) -> None:
        async with self._changed:
            self._exclusive_waiting += 1
            try:
                await self._changed.wait_for(lambda: not self._exclusive and self._shared == 0)
            finally:
                self._exclusive_waiting -= 1
            self._exclusive = True

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        async with self._changed:
            self._exclusive = False
            self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        """Held beside other shared holders, never beside the exclusive one."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive and not self._exclusive_waiting)
            self._shared += 1
        try:
            yield
        finally:
            async with self._changed:
                self._shared -= 1
                self._changed.notify_all()
