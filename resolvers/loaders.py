"""Per-request DataLoaders, sandbox-scoped: every relation is one batched query per request, not one per row."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from strawberry.dataloader import DataLoader
from tortoise.models import Model

from models.sql.reads import models_by_id


class SharedLoader(DataLoader):
    """A DataLoader whose loads one field may abandon without failing the others. graphql-core cancels the
    pending fields of an object once one of them fails, and cancelling a task cancels the future it awaits:
    here the loader's future for a key, shared by every field loading that key, which then all failed with
    CancelledError, past the error handling (a 500 instead of a partial result)."""

    def load(self, key: Any) -> Awaitable[Any]:
        return asyncio.shield(super().load(key))


class Loaders:
    """Created with each Context; `by_id(Model)` returns that model's loader for the caller's sandbox.

    Rows read by id are kept in one map per model, shared by the DataLoaders (row-by-row resolvers) and
    `rows_by_id` (a list page loading a relation for all its rows at once, without a future per key)."""

    def __init__(self, sandbox_id: int | None, *, cache: bool = True) -> None:
        self.sandbox_id = sandbox_id
        self.cache = cache
        self._loaders: dict[Any, DataLoader] = {}
        self._rows: dict[type[Model], dict[int, Any]] = {}

    def by_id(self, model: type[Model]) -> DataLoader[int, Any]:
        return self._get(("by_id", model), lambda: lambda ids: self.rows_by_id(model, ids))

    def custom(self, key: Any, batch: Callable[[Sequence[Any]], Any]) -> DataLoader:
        """A loader for any batch function `keys -> values in key order`, shared within the request."""
        return self._get(key, lambda: batch)

    async def rows_by_id(self, model: type[Model], ids: Iterable[int]) -> list[Any]:
        """Rows of the caller's sandbox in the order of `ids` (None where absent): one statement for the ids not
        read yet in this request."""
        ids = list(ids)
        known = self._rows.setdefault(model, {}) if self.cache else {}
        missing = {i for i in ids if i not in known}
        if missing:
            if self.sandbox_id is None:  # only reachable through a bug: loaders exist for authenticated callers
                raise RuntimeError("sandbox-scoped loader without a sandbox")
            found = await models_by_id(model, self.sandbox_id, missing)
            known.update((i, found.get(i)) for i in missing)
        return [known[i] for i in ids]

    def _get(self, key: Any, make_batch: Callable[[], Any]) -> DataLoader:
        loader = self._loaders.get(key)
        if loader is None:
            loader = SharedLoader(load_fn=make_batch(), cache=self.cache)
            self._loaders[key] = loader
        return loader
