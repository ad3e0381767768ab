"""The compiled read path in front of the app (issue 22): a POST /graphql naming a persisted document that
resolvers/compiled_reads.py compiled is answered from one statement's JSON text, without Starlette's routing,
the middleware stack or strawberry. Everything else, and every request this path is unsure of, goes on to the
app unchanged (the body it read is handed on).

What the app would do for such a request, done here as well: the request id (X-Request-Id, as
RequestIdMiddleware), the HTTP metrics (MetricsMiddleware), the body limit (only small bodies are read here),
the media types, authentication (the same key cache), the VIEWER role the three root fields declare, the
persisted-query store (the document must still be stored: an evicted one gets PERSISTED_QUERY_NOT_FOUND from the
app), the query cost (paid from the key's budget; refused requests go on to the app, which refuses them) and
`extensions.cost`. An error of the statement goes on to the app too, which masks its own.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tortoise import connections

from api.graphql import ACCEPTED_POST_MEDIA_TYPES, HeraldGraphQL, _media_type, _response_media_type
from api.middleware import _VALID_REQUEST_ID, HTTP_LATENCY, HTTP_REQUESTS, REQUEST_ID_HEADER
from models.tenancy.sandbox import Role
from resolvers.compiled_reads import CompiledRead, compile_read
from resolvers.compiled_sql import Unsupported

logger = logging.getLogger(__name__)

# A hash-only APQ body is ~120 bytes; anything much larger is not this path's (and the app limits bodies).
MAX_BODY = 4096
_ALLOWED_KEYS = frozenset({"extensions", "operationName", "variables"})


class CompiledReads:
    """The compiled documents of this process, by persisted-query hash (None: not compilable, not tried again)."""

    def __init__(self, graphql_app: HeraldGraphQL, maxsize: int) -> None:
        self.graphql_app = graphql_app
        self.maxsize = maxsize
        self.plans: OrderedDict[str, CompiledRead | None] = OrderedDict()
        self.answered = 0  # requests answered from a compiled statement (tests and metrics read it)

    def learn(self, digest: str, document: str, requested_cost: int | None) -> None:
        """After stock execution answered the persisted `document` without an error: compile it once."""
        if digest in self.plans or not self.maxsize:
            return
        if requested_cost is None:
            plan = None  # no cost to report: not a document of this path
        elif connections.get("default").capabilities.dialect != "postgres":
            plan = None  # SQLite has no base64 for the global ids and cursors: stock execution answers there
        else:
            try:
                plan = compile_read(
                    self.graphql_app.schema._schema, document, requested_cost, self.graphql_app.limits.max_page_size
                )
            except Unsupported as why:
                logger.debug("persisted document %s not compiled: %s", digest, why)
                plan = None
            except Exception:  # a compiler bug must not fail the request stock execution answered: logged, not compiled
                logger.exception("persisted document %s could not be compiled", digest)
                plan = None
        self.plans[digest] = plan
        if len(self.plans) > self.maxsize:
            self.plans.popitem(last=False)


class CompiledReadFront:
    def __init__(self, app: ASGIApp, graphql_app: HeraldGraphQL) -> None:
        self.app = app
        self.graphql_app = graphql_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reads = self.graphql_app.compiled_reads
        if (
            reads is None
            or not reads.plans
            or scope["type"] != "http"
            or scope["path"] != "/graphql"
            or scope["method"] != "POST"
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        content_type = accept = authorization = sandbox = request_id = length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
            elif name == b"authorization":
                authorization = value
            elif name == b"x-herald-sandbox":
                sandbox = value
            elif name == b"x-request-id":
                request_id = value
            elif name == b"content-length":
                length = value
        media_type = _response_media_type(accept.decode("latin-1") if accept is not None else None)
        if (
            length is None
            or not length.isdigit()
            or int(length) > MAX_BODY
            or media_type is None
            or _media_type(content_type.decode("latin-1") if content_type else None) not in ACCEPTED_POST_MEDIA_TYPES
        ):
            await self.app(scope, receive, send)
            return
        body, receive = await _read_body(receive)
        answer = None
        if body is not None:
            try:
                answer = await self._answer(body, authorization, sandbox)
            except Exception:  # the app answers instead, with its own error handling and masking
                logger.debug("compiled read failed; stock execution answers", exc_info=True)
                answer = None
        if answer is None:
            await self.app(scope, receive, send)
            return
        request_id = request_id.decode() if request_id and _VALID_REQUEST_ID.match(request_id) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(answer)).encode()),
                    (b"content-type", f"{media_type}; charset=utf-8".encode()),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})
        HTTP_LATENCY.labels("/graphql").observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels("POST", "/graphql", "200").inc()

    async def _answer(self, body: bytes, authorization: bytes | None, sandbox: bytes | None) -> bytes | None:
        """The response body, or None when the app should answer."""
        request = orjson.loads(body)
        if not isinstance(request, dict) or not request.keys() <= _ALLOWED_KEYS:
            return None
        variables = request.get("variables") or {}
        if not isinstance(variables, dict):
            return None
        extensions = request.get("extensions")
        if not isinstance(extensions, dict) or extensions.keys() != {"persistedQuery"}:
            return None
        persisted = extensions["persistedQuery"]
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            return None
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str):
            return None
        digest = digest.lower()
        app = self.graphql_app
        assert app.compiled_reads is not None
        plan = app.compiled_reads.plans.get(digest)
        if plan is None or app.persisted_queries.stored(digest) != plan.document:
            return None
        operation_name = request.get("operationName")
        if operation_name is not None and operation_name != plan.operation_name:
            return None
        caller = await app.authenticate_headers(
            authorization.decode("latin-1") if authorization is not None else None,
            sandbox.decode("latin-1") if sandbox is not None else None,
        )
        if caller is None or not caller.role.allows(Role.VIEWER):
            return None
        params = plan.params(caller.sandbox_id, variables)
        if params is None:
            return None
        async with connections.get("default").acquire_connection() as connection:
            data, actual, ok = await connection.fetchrow(plan.sql, *params)
        if not ok:
            return None
        budget = app.cost_budget
        budget_report = None
        if plan.requested_cost is not None and budget is not None and budget.enabled:
            charge = await budget.take(caller.budget_key, plan.requested_cost)
            if not charge.allowed:
                return None  # the app refuses it (429, Retry-After) as it refuses any operation over budget
            available = charge.available
            if available is not None and actual != plan.requested_cost:
                available = await budget.settle(caller.budget_key, actual - plan.requested_cost)
            budget_report = {
                "maximum": budget.maximum,
                "available": None if available is None else int(available),
                "restoreRate": budget.restore_rate,
            }
        app.compiled_reads.answered += 1
        cost = {
            "requested": plan.requested_cost,
            "actual": actual if plan.requested_cost is not None else None,
            "budget": budget_report,
        }
        return b'{"data":' + data.encode() + b',"extensions":{"cost":' + orjson.dumps(cost) + b"}}"


async def _read_body(receive: Receive) -> tuple[bytes | None, Receive]:
    """The whole body (the caller checked its declared length; None past MAX_BODY), and a receive handing the
    messages read on to the app before any further ones."""
    messages: list[Message] = []
    total = 0
    complete = False
    while not complete:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break  # a disconnect: the app sees it too
        total += len(message.get("body", b""))
        complete = not message.get("more_body", False) and total <= MAX_BODY
        if total > MAX_BODY:
            break
    pending = iter(messages)

    async def replayed() -> Message:
        return next(pending, None) or await receive()

    body = b"".join(m.get("body", b"") for m in messages) if complete else None
    return body, replayed
