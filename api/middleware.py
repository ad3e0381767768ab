"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs throughput): request ids, metrics, body limit, CORS."""

from __future__ import annotations

import re
import time
import uuid

from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobs.send_pacing import BusyMark
from resolvers.request_id import request_id_var

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")

HTTP_REQUESTS = Counter("herald_http_requests_total", "HTTP requests served.", ["method", "path", "status"])
HTTP_LATENCY = Histogram(
    "herald_http_request_duration_seconds",
    "Time to serve an HTTP request.",
    ["path"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
_KNOWN_PATHS = {"/graphql", "/healthz", "/readyz", "/metrics", "/imports/profiles"}


class RequestIdMiddleware:
    """Takes a well-formed X-Request-Id from the client or makes one; echoes it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"")
        request_id = given.decode() if _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class ApiBusyMiddleware:
    """Marks the API busy for the run senders (jobs/send_pacing.py) on each HTTP request; a clock read per request,
    one Redis SET per MARK_INTERVAL."""

    def __init__(self, app: ASGIApp, mark: BusyMark) -> None:
        self.app = app
        self.mark = mark

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.mark.seen(scope["path"])
        await self.app(scope, receive, send)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in _KNOWN_PATHS else "other"
        status = 500
        started = time.perf_counter()

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            HTTP_LATENCY.labels(path).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(scope["method"], path, str(status)).inc()


class BodySizeLimitMiddleware:
    """Answers 413 once a request body exceeds the limit of its path, without reading the rest.

    `limits`: path prefix → bytes. Paths under no prefix (the streamed profile import) are not limited here.
    """

    def __init__(self, app: ASGIApp, limits: dict[str, int]) -> None:
        self.app = app
        self.limits = limits

    def _limit(self, path: str) -> int | None:
        return next((limit for prefix, limit in self.limits.items() if path.startswith(prefix)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        max_bytes = self._limit(scope["path"]) if scope["type"] == "http" else None
        if max_bytes is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await _too_large(send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await _too_large(send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send) -> None:
    body = b'{"errors":[{"message":"Request body too large.","extensions":{"code":"PAYLOAD_TOO_LARGE"}}]}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeraldCORSMiddleware(CORSMiddleware):
    """Starlette's CORS for ALLOWED_ORIGINS, except that a preflight from an unlisted origin gets a bare 400:
    no Access-Control-* header at all, so nothing about the API's CORS policy is told to other sites."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin and "access-control-request-method" in headers and not self.is_allowed_origin(origin):
                response = PlainTextResponse("Disallowed CORS origin", status_code=400, headers={"Vary": "Origin"})
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def cors_middleware(allowed_origins: list[str]) -> dict:
    """The options of HeraldCORSMiddleware for the API's browser callers (keys go in Authorization)."""
    return {
        "allow_origins": allowed_origins,
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["Authorization", "Content-Type", "Accept", "X-Request-Id", "X-Herald-Sandbox"],
        "expose_headers": ["X-Request-Id", "Retry-After"],
        "allow_credentials": False,
        "max_age": 600,
    }
