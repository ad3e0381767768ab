from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.types import Info as StrawberryInfo

from jobs.events import EventBus
from jobs.queue import JobQueue
from models.campaigns.review_snapshot import LinkFacts
from models.egress_rules import EgressPolicy
from models.tenancy.sandbox import Role
from resolvers.cost import Budget
from resolvers.loaders import Loaders


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request acts as: an API key (machines) or a person signed in with OpenID Connect, in one sandbox."""

    sandbox_id: int
    sandbox_name: str
    role: Role
    api_key_id: int | None = None
    user_id: int | None = None
    user_sub: str | None = None

    @property
    def actor(self) -> str:
        """What audit rows and events name: `user:<sub>` for a person, `apikey:<id>` for a key."""
        if self.user_sub is not None:
            return f"user:{self.user_sub}"[:100]
        return f"apikey:{self.api_key_id}"

    @property
    def budget_key(self) -> str:
        """Whose query-cost budget an operation spends (resolvers/cost.py): the key's, or the person's."""
        return f"user:{self.user_id}" if self.user_id is not None else str(self.api_key_id)


@dataclass(frozen=True, slots=True)
class GraphQLLimits:
    max_page_size: int = 100


@dataclass
class Context:
    """Built per HTTP request and once per WebSocket connection (so loaders are per operation)."""

    caller: Caller | None
    queue: JobQueue | None
    events: EventBus | None
    limits: GraphQLLimits
    request_id: str = ""
    # SECRET_KEY, for sealing provider secrets (models/presets/secret_box.py). Never logged or returned.
    secret_key: bytes = field(default=b"", repr=False)
    connection_params: dict[str, Any] | None = None
    # Where ADMIN-chosen hosts may point (EGRESS_ALLOW); None skips the input check (connects still check).
    egress: EgressPolicy | None = None
    # Set by the view so strawberry's HTTP/WebSocket machinery finds them.
    request: Any = None
    response: Any = None
    websocket: Any = None
    # True for WebSocket connections: the context then lives as long as the connection, so loaders must not cache.
    long_lived: bool = False
    # PUBLIC_URL and production: the review judges where messages' links point (LINKS_TO_LOOPBACK).
    links: LinkFacts | None = None
    # The API keys' query-cost budget (api/ratelimit.py); None: no budget (tests, tools).
    cost_budget: Budget | None = None
    # TRIGGER_IDEMPOTENCY_HOURS: how long a campaignTrigger idempotency key replays its answer.
    trigger_idempotency_hours: float = 24.0
    trigger_wake_seconds: float = 0.1
    _loaders: Loaders | None = None

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.require_caller().sandbox_id, cache=not self.long_lived)
        return self._loaders

    def require_caller(self) -> Caller:
        if self.caller is None:  # only reachable through a bug in the view; authentication precedes execution
            raise RuntimeError("unauthenticated request reached a resolver")
        return self.caller


Info = StrawberryInfo[Context, None]
