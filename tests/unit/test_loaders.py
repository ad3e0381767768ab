"""Per-request loaders (resolvers/loaders.py) under graphql-core's cancellation of a failed object's fields."""

from __future__ import annotations

import asyncio

import pytest
import strawberry

from resolvers.loaders import Loaders
from resolvers.schema import HeraldSchema


async def _values(keys: list[int]) -> list[str]:
    await asyncio.sleep(0.01)
    return [f"v{key}" for key in keys]


@strawberry.type
class Thing:
    key: int

    @strawberry.field
    def value(self, info: strawberry.Info) -> str:
        return info.context["loaders"].custom("values", _values).load(self.key)

    @strawberry.field
    async def boom(self) -> str:
        await asyncio.sleep(0)
        raise ValueError("boom")


@strawberry.type
class Query:
    @strawberry.field
    async def thing(self) -> Thing | None:
        return Thing(key=1)


@pytest.mark.parametrize(
    "schema", [HeraldSchema(query=Query), strawberry.Schema(query=Query)], ids=["planned", "plain"]
)
async def test_a_failed_object_does_not_fail_others_loading_the_same_key(schema: strawberry.Schema) -> None:
    # `a` fails while its `value` waits on the loader's future for key 1, which `b` waits on too: graphql-core
    # cancels a's pending field, and that must not cancel the shared future under b.
    query = "{ a: thing { value boom } b: thing { value } }"
    result = await schema.execute(query, context_value={"loaders": Loaders(1)})
    assert result.data == {"a": None, "b": {"value": "v1"}}
    assert [error.message for error in result.errors or []] == ["boom"]
