"""API-key authentication for HTTP (Authorization header) and WebSocket (connection_init payload)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from models.tenancy.actions import authenticate_api_key, on_api_key_revoked
from models.tenancy.sandbox import Role, hash_api_key
from resolvers.context import Caller

# Process-wide: key hash -> (expires at, caller). Only successful lookups are kept (unknown tokens would let a
# client fill it). A revocation in this process drops the entry at once; one in another process (the CLI,
# another uvicorn worker) takes effect when the entry expires, i.e. within AUTH_CACHE_SECONDS.
_CACHE: dict[str, tuple[float, Caller]] = {}
_CACHE_MAX = 10_000


def _forget(key_id: int) -> None:
    for digest, (_, caller) in list(_CACHE.items()):
        if caller.api_key_id == key_id:
            _CACHE.pop(digest, None)


on_api_key_revoked(_forget)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_from_connection_params(params: Mapping[str, Any] | None) -> str | None:
    """Accepts {"Authorization": "Bearer k"}, {"authorization": ...}, {"headers": {...}} or {"apiKey": "k"}."""
    if not params:
        return None
    headers = params.get("headers") if isinstance(params.get("headers"), Mapping) else {}
    for source in (params, headers):
        for name in ("Authorization", "authorization"):
            value = source.get(name)
            if isinstance(value, str):
                return bearer_token(value)
    api_key = params.get("apiKey")
    return api_key if isinstance(api_key, str) else None


async def authenticate(token: str | None, cache_seconds: float = 0.0) -> Caller | None:
    """The caller a key stands for; with `cache_seconds`, a lookup is reused that long (see `_CACHE`)."""
    if not token:
        return None
    digest = hash_api_key(token) if cache_seconds > 0 else ""
    if digest:
        hit = _CACHE.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
    key = await authenticate_api_key(token)
    if key is None:
        if digest:
            _CACHE.pop(digest, None)
        return None
    caller = Caller(api_key_id=key.id, sandbox_id=key.sandbox_id, sandbox_name=key.sandbox.name, role=key.role)
    if digest:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[digest] = (time.monotonic() + cache_seconds, caller)
    return caller


def json_error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """The error body of Herald's REST endpoints (imports, exports, webhooks)."""
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


async def authenticate_request(
    request: Request, role: Role, needs: str, cache_seconds: float = 0.0
) -> Caller | JSONResponse:
    """The caller of a REST endpoint that needs a `role` key, or the 401/403 answer to send. `needs` says what
    for, as in "Exporting deliveries needs a VIEWER key or above."."""
    caller = await authenticate(bearer_token(request.headers.get("authorization")), cache_seconds)
    if caller is None:
        response = json_error(401, "UNAUTHENTICATED", "Send `Authorization: Bearer <API key>` with a valid key.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="herald"'
        return response
    if not caller.role.allows(role):
        return json_error(403, "FORBIDDEN", needs)
    return caller
