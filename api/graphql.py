"""The GraphQL endpoint: authentication, per-request context, and the WebSocket handshake."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.printer import print_schema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from api.auth import (
    PeopleAuth,
    authenticate,
    bearer_token,
    sandbox_from_connection_params,
    token_from_connection_params,
)
from api.graphiql import graphiql_page
from api.ratelimit import CostBudget
from api.settings import Settings
from jobs.events import EventBus
from jobs.queue import JobQueue
from models.campaigns.review_snapshot import LinkFacts
from resolvers.context import Context, GraphQLLimits
from resolvers.request_id import current_request_id

UNAUTHENTICATED_BODY = orjson.dumps(
    {
        "errors": [
            {
                "message": "Authentication required: send `Authorization: Bearer <API key>` with a valid, "
                "unrevoked key (or a person's OpenID Connect token, where the server accepts them).",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    }
)


GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
# CSRF: a browser can send text/plain, form and multipart bodies cross-origin without a preflight; JSON it cannot.
ACCEPTED_POST_MEDIA_TYPES = frozenset({"application/json", GRAPHQL_RESPONSE_JSON})


def _error_response(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws: the key comes in connection_init; a bad one closes with 4401. Each operation pays
    its cost from the key's budget (resolvers/cost.py); one refused gets an `error` message."""

    async def handle_connection_init(self, message: Any) -> None:
        if not self.connection_init_received and isinstance(message.get("payload", {}), dict):
            caller = await self.view.authenticate_connection(message.get("payload"))
            if caller is None:
                await self.websocket.close(code=4401, reason="Unauthorized")
                return
            self.context.caller = caller
        await super().handle_connection_init(message)


class LegacyWSHandler(BaseGraphQLWSHandler):
    """Legacy graphql-ws (subscriptions-transport-ws): connection_error, then close with 4401."""

    async def handle_connection_init(self, message: Any) -> None:
        payload = message.get("payload")
        caller = await self.view.authenticate_connection(payload if isinstance(payload, dict) else None)
        if caller is None:
            await self.send_message({"type": "connection_error", "payload": {"message": "Unauthorized"}})
            await self.websocket.close(code=4401, reason="Unauthorized")
            return
        self.context.caller = caller
        await super().handle_connection_init(message)


PERSISTED_QUERY_NOT_FOUND = ExecutionResult(
    data=None,
    errors=[GraphQLError("PersistedQueryNotFound", extensions={"code": "PERSISTED_QUERY_NOT_FOUND"})],
)


class PersistedQueries:
    """Automatic persisted queries (Apollo APQ): `extensions.persistedQuery = {version: 1, sha256Hash}`.

    A request with the hash only runs the document stored under it, or answers PERSISTED_QUERY_NOT_FOUND so the
    client sends it once with the query; that request stores it (after checking the hash). Per process and
    bounded (least recently used goes first); a miss in another process costs the client one more round trip.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._documents: OrderedDict[str, str] = OrderedDict()

    def stored(self, digest: str) -> str | None:
        """The document stored under the (lower-case) hash, now the most recently used; None if none is."""
        document = self._documents.get(digest)
        if document is not None:
            self._documents.move_to_end(digest)
        return document

    def resolve(self, query: str | None, persisted: Any) -> str | None:
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise HTTPException(400, "Unsupported persisted query version (only version 1 is).")
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or len(digest) != 64:
            raise HTTPException(400, "persistedQuery.sha256Hash must be a SHA-256 hex digest.")
        digest = digest.lower()
        if query is None:
            return self.stored(digest)
        if not isinstance(query, str) or hashlib.sha256(query.encode()).hexdigest() != digest:
            raise HTTPException(400, "provided sha does not match query")
        if self.maxsize:
            self._documents[digest] = query
            self._documents.move_to_end(digest)
            if len(self._documents) > self.maxsize:
                self._documents.popitem(last=False)
        return query


class TextFrameWebSocketAdapter(ASGIWebSocketAdapter):
    """graphql-ws messages go out as JSON text frames. Strawberry sends bytes from `encode_json` (orjson) as binary
    frames, which browser clients (the graphql-ws library) cannot parse."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS).decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class HeraldGraphQL(GraphQL):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = TextFrameWebSocketAdapter  # type: ignore[assignment]

    def __init__(self, schema: Any, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide=None,  # Herald serves its own page (api/graphiql.py): no CDN, no query in the URL
            allow_queries_via_get=True,
            connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout_seconds),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
            allowed_origins=settings.allowed_origins,
        )
        self.settings = settings
        self.limits = GraphQLLimits(max_page_size=settings.graphql_max_page_size)
        self.egress = settings.egress_policy
        self.queue: JobQueue | None = None
        self.events: EventBus | None = None
        self.cost_budget: CostBudget | None = None
        self.persisted_queries = PersistedQueries(settings.persisted_query_cache_size)
        # api/compiled_front.py: persisted reads answered from one statement (set by create_app when enabled).
        self.compiled_reads: Any = None
        self._sdl: str | None = None
        self.links = LinkFacts(public_url=settings.public_url, production=settings.is_prod)
        self.people = PeopleAuth.from_settings(settings)

    async def authenticate_connection(self, params: Mapping[str, Any] | None) -> Any:
        """The caller of a WebSocket, from its connection_init payload: an API key or a person's token."""
        return await authenticate(
            token_from_connection_params(params),
            self.settings.auth_cache_seconds,
            people=self.people,
            sandbox=sandbox_from_connection_params(params),
        )

    async def authenticate_headers(self, authorization: str | None, sandbox: str | None) -> Any:
        return await authenticate(
            bearer_token(authorization), self.settings.auth_cache_seconds, people=self.people, sandbox=sandbox or None
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if self._is_ide_page(scope):
            await graphiql_page(self.settings.graphiql_assets_url)(scope, receive, send)
            return
        response = await self._refuse_early(scope)
        if response is None:
            if _media_type(_header(scope, b"content-type")) == GRAPHQL_RESPONSE_JSON:
                # The body is plain JSON; strawberry's parser only recognises application/json.
                scope["headers"] = [
                    (k, b"application/json" if k == b"content-type" else v) for k, v in scope["headers"]
                ]
            try:
                response = await self.run(Request(scope=scope, receive=receive))
            except HTTPException as error:
                headers = {"Allow": "POST"} if error.status_code == 405 else None
                response = _error_response(error.status_code, error.reason, "BAD_REQUEST", headers)
        await response(scope, receive, send)

    async def _refuse_early(self, scope) -> Response | None:
        """Refusals that need no GraphQL work: media types, authentication. None lets the request through."""
        if scope["method"] == "POST" and _media_type(_header(scope, b"content-type")) not in ACCEPTED_POST_MEDIA_TYPES:
            return _error_response(
                415,
                "POST bodies must be `application/json` (or `application/graphql-response+json`).",
                "UNSUPPORTED_MEDIA_TYPE",
            )
        if _response_media_type(_header(scope, b"accept")) is None:
            return _error_response(
                406, "Accept `application/graphql-response+json` or `application/json`.", "NOT_ACCEPTABLE"
            )
        caller = await self.authenticate_headers(_header(scope, b"authorization"), _header(scope, b"x-herald-sandbox"))
        if caller is None:
            return Response(
                UNAUTHENTICATED_BODY,
                status_code=401,
                media_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="herald"'},
            )
        scope.setdefault("state", {})["caller"] = caller
        return None

    async def schema_sdl(self, request: Request) -> Response:
        """The SDL, for code generators: to authenticated callers, when introspection is on."""
        if not self.settings.introspection_enabled:
            return _error_response(404, "The schema is not published (GRAPHQL_INTROSPECTION=false).", "NOT_FOUND")
        caller = await self.authenticate_headers(
            request.headers.get("authorization"), request.headers.get("x-herald-sandbox")
        )
        if caller is None:
            return Response(
                UNAUTHENTICATED_BODY,
                status_code=401,
                media_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="herald"'},
            )
        if self._sdl is None:
            self._sdl = print_schema(self.schema) + "\n"
        return PlainTextResponse(self._sdl, media_type="application/graphql")

    def encode_json(self, data: object) -> bytes:
        # orjson: about 3x faster than json.dumps on a page of 20 campaigns. Non-str keys can come from JSON scalars.
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)

    def decode_json(self, data: str | bytes) -> object:
        # orjson caps nesting (1,024) and raises a JSONDecodeError; the json module hits RecursionError (a 500).
        return orjson.loads(data)

    async def get_sub_response(self, request: Request) -> Response:
        # strawberry's, without its `del headers["content-length"]` (a header scan per request): the empty
        # Response's only header is that one.
        sub_response = Response()
        sub_response.status_code = None  # type: ignore[assignment]
        sub_response.raw_headers = []
        request.state.sub_response = sub_response
        sub_response.herald_media_type = _response_media_type(request.headers.get("accept"))  # type: ignore[attr-defined]
        return sub_response

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: Any,
        request_data: Any,
    ) -> Any:
        # Queries over GET; queries and mutations over POST; subscriptions only over WebSocket (strawberry would
        # run one over POST as a query, which fails inside the resolver).
        method = request_adapter.method
        allowed = {OperationType.QUERY} if method == "GET" else {OperationType.QUERY, OperationType.MUTATION}
        query = request_data.query
        persisted = (request_data.extensions or {}).get("persistedQuery")
        if persisted is not None:
            query = self.persisted_queries.resolve(query, persisted)
            if query is None:
                return PERSISTED_QUERY_NOT_FOUND
        try:
            result = await self.schema.execute(
                query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from error
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(400, "Subscriptions are served over WebSocket (graphql-transport-ws).") from error
            # GraphQL over HTTP: a mutation over GET is 405 Method Not Allowed.
            raise HTTPException(405, error.as_http_error_reason(method)) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request") from error
        if persisted is not None and self.compiled_reads is not None:
            if not result.errors and result.data is not None:
                cost = (result.extensions or {}).get("cost") or {}
                self.compiled_reads.learn(persisted["sha256Hash"].lower(), query, cost.get("requested"))
        return result

    async def process_result(self, request: Request, result: Any) -> Any:
        response_data = await super().process_result(request, result)
        sub_response = request.state.sub_response
        if (
            sub_response.herald_media_type == GRAPHQL_RESPONSE_JSON
            and _is_request_error(result)
            and sub_response.status_code != 429  # refused for its cost (resolvers/cost.py): keep 429
        ):
            # graphql-response+json: a request that never executed has no `data` and a 4xx status.
            response_data.pop("data", None)
            request.state.sub_response.status_code = 400
        return response_data

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        # strawberry's, with the negotiated media type given at once rather than replaced in the headers after.
        response = Response(
            self.encode_json(response_data),
            status_code=sub_response.status_code or 200,
            media_type=f"{sub_response.herald_media_type}; charset=utf-8",  # type: ignore[attr-defined]
        )
        response.raw_headers.extend(sub_response.raw_headers)
        if sub_response.background:
            response.background = sub_response.background
        return response

    def _is_ide_page(self, scope) -> bool:
        """A browser's GET without a `query` parameter, whatever else the URL holds (GraphiQL's own state)."""
        return (
            self.settings.ide_enabled
            and scope["method"] == "GET"
            and "text/html" in (_header(scope, b"accept") or "")
            and not any(name == "query" for name, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        )

    async def get_context(self, request: Request | WebSocket, response: Response | None = None) -> Context:
        return Context(
            caller=request.scope.get("state", {}).get("caller"),
            queue=self.queue,
            events=self.events,
            limits=self.limits,
            request_id=current_request_id(),
            secret_key=self.settings.secret_key.get_secret_value().encode(),
            egress=self.egress,
            request=request,
            response=response,
            long_lived=isinstance(request, WebSocket),
            links=self.links,
            cost_budget=self.cost_budget,
            trigger_idempotency_hours=self.settings.trigger_idempotency_hours,
            trigger_wake_seconds=self.settings.trigger_wake_seconds,
        )


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _response_media_type(accept: str | None) -> str | None:
    """graphql-response+json when the client lists it, else application/json; None if it accepts neither."""
    ranges = [_media_type(part) for part in (accept or "*/*").split(",")]
    if GRAPHQL_RESPONSE_JSON in ranges:
        return GRAPHQL_RESPONSE_JSON
    if {"application/json", "application/*", "*/*", ""} & set(ranges):
        return "application/json"
    return None


def _is_request_error(result: Any) -> bool:
    """Parse, validation and variable-coercion failures: no data and no error located in the response."""
    errors = getattr(result, "errors", None)
    return bool(errors) and result.data is None and all(not error.path for error in errors)
