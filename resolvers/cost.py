"""Query cost in every response (`extensions.cost`, as Shopify reports it) and the per-key cost budget.

requested: the static cost of the operation (resolvers/limits.py: each field 1, a field taking `first`
multiplies its selection by it), paid before execution. actual: what the response holds, each field 1 and a
list's items each counted; the difference is settled with the key's budget afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

# Set on strawberry's ExecutionContext by RequestLimits once the document passed its checks.
REQUESTED_COST_ATTR = "herald_requested_cost"


@dataclass(frozen=True, slots=True)
class Charge:
    allowed: bool
    # None when the budget could not be read (Redis down: the request is let through).
    available: float | None
    retry_after: int | None = None


class Budget(Protocol):
    maximum: int
    restore_rate: float

    @property
    def enabled(self) -> bool: ...

    async def take(self, budget_key: str, cost: int) -> Charge: ...

    async def settle(self, budget_key: str, difference: int) -> float | None: ...


def actual_cost(data: Any) -> int:
    """Each field in the response costs 1 plus what it holds; a list costs the sum of its items."""
    total = 0
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            total += len(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return total


def throttled_error(requested: int, available: float, retry_after: int) -> GraphQLError:
    return GraphQLError(
        f"Query cost {requested} exceeds this API key's available budget ({int(available)}); retry in "
        f"{retry_after} s, or ask for less (smaller `first`, fewer fields).",
        extensions={"code": "RATE_LIMITED", "retryAfter": retry_after, "requested": requested},
    )


class QueryCost(SchemaExtension):
    """Pays the requested cost from the caller's budget before execution (refusing with RATE_LIMITED, HTTP 429 and
    Retry-After when short), settles the actual cost after, and reports both in `extensions.cost`. Async, so
    it runs only with async execution (HeraldSchema leaves it out of execute_sync)."""

    requested: int | None = None
    available: float | None = None
    budget: Budget | None = None
    refused = False

    async def on_validate(self) -> AsyncIterator[None]:
        # Entered after RequestLimits' on_validate, which has checked the document and measured its cost.
        context = self.execution_context
        self.requested = getattr(context, REQUESTED_COST_ATTR, None)
        caller = getattr(context.context, "caller", None)
        budget = getattr(context.context, "cost_budget", None)
        if self.requested is not None and caller is not None and budget is not None and budget.enabled:
            self.budget = budget
            charge = await budget.take(caller.budget_key, self.requested)
            self.available = charge.available
            if not charge.allowed:
                assert charge.retry_after is not None and charge.available is not None
                context.pre_execution_errors = [throttled_error(self.requested, charge.available, charge.retry_after)]
                response = getattr(context.context, "response", None)
                if response is not None and hasattr(response, "status_code"):
                    response.status_code = 429
                    response.headers["Retry-After"] = str(charge.retry_after)
                self.refused = True
        self._report(actual=0 if self.requested is not None else None)
        yield

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context
        result = context.result
        if self.requested is None or self.refused or result is None or not hasattr(result, "data"):
            return
        actual = actual_cost(result.data)
        caller = getattr(context.context, "caller", None)
        if self.budget is not None and caller is not None and self.available is not None and actual != self.requested:
            self.available = await self.budget.settle(caller.budget_key, actual - self.requested)
        self._report(actual=actual)

    def _report(self, actual: int | None) -> None:
        budget = getattr(self.execution_context.context, "cost_budget", None)
        self.execution_context.extensions_results["cost"] = {
            "requested": self.requested,
            "actual": actual,
            "budget": None
            if budget is None or not budget.enabled
            else {
                "maximum": budget.maximum,
                "available": None if self.available is None else int(self.available),
                "restoreRate": budget.restore_rate,
            },
        }


def without_async_cost(extensions: list[Any]) -> Iterator[Any]:
    return (extension for extension in extensions if not isinstance(extension, QueryCost))
