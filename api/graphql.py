"""The GraphQL endpoint: authentication, per-request context, and the WebSocket handshake."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from api.auth import authenticate, bearer_token, token_from_connection_params
from api.settings import Settings
from jobs.events import EventBus
from jobs.queue import JobQueue
from resolvers.context import Context, GraphQLLimits
from resolvers.request_id import current_request_id

UNAUTHENTICATED_BODY = orjson.dumps(
    {
        "errors": [
            {
                "message": "Authentication required: send `Authorization: Bearer <API key>` with a valid, "
                "unrevoked key.",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    }
)


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws: the key comes in connection_init; a bad one closes with 4401."""

    async def handle_connection_init(self, message: Any) -> None:
        if not self.connection_init_received and isinstance(message.get("payload", {}), dict):
            caller = await authenticate(token_from_connection_params(message.get("payload")))
            if caller is None:
                await self.websocket.close(code=4401, reason="Unauthorized")
                return
            self.context.caller = caller
        await super().handle_connection_init(message)


class LegacyWSHandler(BaseGraphQLWSHandler):
    """Legacy graphql-ws (subscriptions-transport-ws): connection_error, then close with 4401."""

    async def handle_connection_init(self, message: Any) -> None:
        payload = message.get("payload")
        caller = await authenticate(token_from_connection_params(payload if isinstance(payload, dict) else None))
        if caller is None:
            await self.send_message({"type": "connection_error", "payload": {"message": "Unauthorized"}})
            await self.websocket.close(code=4401, reason="Unauthorized")
            return
        self.context.caller = caller
        await super().handle_connection_init(message)


class HeraldGraphQL(GraphQL):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, schema: Any, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.ide_enabled else None,
            allow_queries_via_get=True,
            connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout_seconds),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
            allowed_origins=settings.allowed_origins,
        )
        self.settings = settings
        self.limits = GraphQLLimits(max_page_size=settings.graphql_max_page_size)
        self.queue: JobQueue | None = None
        self.events: EventBus | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not self._is_ide_page(scope):
            caller = await authenticate(bearer_token(_header(scope, b"authorization")))
            if caller is None:
                response = Response(
                    UNAUTHENTICATED_BODY,
                    status_code=401,
                    media_type="application/json",
                    headers={"WWW-Authenticate": 'Bearer realm="herald"'},
                )
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["caller"] = caller
        await super().__call__(scope, receive, send)

    def _is_ide_page(self, scope) -> bool:
        return (
            self.graphql_ide is not None
            and scope["method"] == "GET"
            and b"text/html" in (_header(scope, b"accept") or "").encode()
            and not scope.get("query_string")
        )

    async def get_context(self, request: Request | WebSocket, response: Response | None = None) -> Context:
        return Context(
            caller=request.scope.get("state", {}).get("caller"),
            queue=self.queue,
            events=self.events,
            limits=self.limits,
            request_id=current_request_id(),
            secret_key=self.settings.secret_key.get_secret_value().encode(),
            request=request,
            response=response,
            long_lived=isinstance(request, WebSocket),
        )


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
