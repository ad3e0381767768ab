"""API-key authentication for HTTP (Authorization header) and WebSocket (connection_init payload)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.tenancy import authenticate_api_key
from resolvers.context import Caller


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


async def authenticate(token: str | None) -> Caller | None:
    if not token:
        return None
    key = await authenticate_api_key(token)
    if key is None:
        return None
    return Caller(api_key_id=key.id, sandbox_id=key.sandbox_id, sandbox_name=key.sandbox.name, role=key.role)
