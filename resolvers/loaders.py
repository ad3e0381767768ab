"""Per-request DataLoaders, sandbox-scoped: every relation is one batched query per request, not one per row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from strawberry.dataloader import DataLoader
from tortoise.models import Model


class Loaders:
    """Created with each Context; `by_id(Model)` returns that model's loader for the caller's sandbox."""

    def __init__(self, sandbox_id: int | None, *, cache: bool = True) -> None:
        self.sandbox_id = sandbox_id
        self.cache = cache
        self._loaders: dict[Any, DataLoader] = {}

    def by_id(self, model: type[Model]) -> DataLoader[int, Any]:
        return self._get(("by_id", model), lambda: self._rows_by_id(model))

    def custom(self, key: Any, batch: Callable[[Sequence[Any]], Any]) -> DataLoader:
        """A loader for any batch function `keys -> values in key order`, shared within the request."""
        return self._get(key, lambda: batch)

    def _get(self, key: Any, make_batch: Callable[[], Any]) -> DataLoader:
        loader = self._loaders.get(key)
        if loader is None:
            loader = DataLoader(load_fn=make_batch(), cache=self.cache)
            self._loaders[key] = loader
        return loader

    def _rows_by_id(self, model: type[Model]):
        async def load(ids: Sequence[int]) -> list[Any]:
            rows = await model.filter(sandbox_id=self.sandbox_id, id__in=list(set(ids)))
            by_id = {row.id: row for row in rows}
            return [by_id.get(i) for i in ids]

        return load
