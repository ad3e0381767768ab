"""Authentication for HTTP (Authorization header) and WebSocket (connection_init payload): API keys (machines) and
OpenID Connect bearer tokens (people, api/oidc.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from api.oidc import InvalidToken, OidcVerifier, looks_like_jwt
from models.people.actions import NoAccessError, on_membership_changed, sign_in
from models.people.role_claims import claim_values, roles_by_sandbox
from models.tenancy.actions import authenticate_api_key, on_api_key_revoked
from models.tenancy.sandbox import API_KEY_PREFIX, Role, hash_api_key
from resolvers.context import Caller

logger = logging.getLogger(__name__)
SANDBOX_HEADER = "x-herald-sandbox"

# Process-wide: key hash -> (expires at, caller). Only successful lookups are kept (unknown tokens would let a
# client fill it). A revocation in this process drops the entry at once; one in another process (the CLI,
# another uvicorn worker) takes effect when the entry expires, i.e. within AUTH_CACHE_SECONDS.
_CACHE: dict[str, tuple[float, Caller]] = {}
_CACHE_MAX = 10_000
# Key hash -> the lookup under way: requests arriving with the same key before it ends wait for it instead of
# each sending their own (32 connections of one key sent 32 lookups whenever the entry expired).
_LOOKUPS: dict[str, asyncio.Task[Caller | None]] = {}


def _forget(key_id: int) -> None:
    _LOOKUPS.clear()  # a request after the revocation must not join a lookup that began before it
    for digest, (_, caller) in list(_CACHE.items()):
        if caller.api_key_id is not None and caller.api_key_id == key_id:
            _CACHE.pop(digest, None)


def _forget_user(user_id: int) -> None:
    for digest, (_, caller) in list(_CACHE.items()):
        if caller.user_id == user_id:
            _CACHE.pop(digest, None)


on_api_key_revoked(_forget)
on_membership_changed(_forget_user)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class PeopleAuth:
    """How people's tokens are checked (settings OIDC_*); None on a server that accepts API keys only."""

    verifier: OidcVerifier
    roles_claim: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> PeopleAuth | None:
        if not settings.oidc_issuer or not settings.oidc_audience:
            return None
        verifier = OidcVerifier(
            settings.oidc_issuer,
            settings.oidc_audience,
            cache_seconds=settings.oidc_jwks_cache_seconds,
            min_refresh_seconds=settings.oidc_jwks_min_refresh_seconds,
            leeway_seconds=settings.oidc_leeway_seconds,
        )
        return cls(verifier=verifier, roles_claim=settings.oidc_roles_claim)


def sandbox_from_connection_params(params: Mapping[str, Any] | None) -> str | None:
    """The sandbox a person's WebSocket acts in: {"sandbox": "prod"} or the X-Herald-Sandbox header in "headers"."""
    if not params:
        return None
    headers = params.get("headers") if isinstance(params.get("headers"), Mapping) else {}
    for value in (params.get("sandbox"), headers.get("X-Herald-Sandbox"), headers.get(SANDBOX_HEADER)):
        if isinstance(value, str) and value:
            return value
    return None


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


async def authenticate(
    token: str | None, cache_seconds: float = 0.0, *, people: PeopleAuth | None = None, sandbox: str | None = None
) -> Caller | None:
    """The caller a key (or, with `people`, a person's token) stands for; with `cache_seconds`, a lookup is
    reused that long (see `_CACHE`). `sandbox` picks the sandbox a person acts in (keys are bound to theirs)."""
    if not token:
        return None
    if people is not None and not token.startswith(API_KEY_PREFIX) and looks_like_jwt(token):
        return await _authenticate_person(token, cache_seconds, people, sandbox)
    digest = hash_api_key(token) if cache_seconds > 0 else ""
    if not digest:
        return await _look_up_key(token, "", cache_seconds)
    hit = _CACHE.get(digest)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    lookup = _LOOKUPS.get(digest)
    if lookup is None or lookup.get_loop() is not asyncio.get_running_loop():
        lookup = asyncio.ensure_future(_look_up_key(token, digest, cache_seconds))
        _LOOKUPS[digest] = lookup
        lookup.add_done_callback(lambda done: _LOOKUPS.pop(digest) if _LOOKUPS.get(digest) is done else None)
    # Shielded: a caller that goes away (client disconnect) does not cancel the lookup the others wait for.
    return await asyncio.shield(lookup)


async def _look_up_key(token: str, digest: str, cache_seconds: float) -> Caller | None:
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


async def _authenticate_person(
    token: str, cache_seconds: float, people: PeopleAuth, sandbox: str | None
) -> Caller | None:
    digest = hash_api_key(f"{sandbox or ''}\n{token}") if cache_seconds > 0 else ""
    if digest:
        hit = _CACHE.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
    try:
        claims = await people.verifier.verify(token)
        granted = roles_by_sandbox(claim_values(claims, people.roles_claim)) if people.roles_claim else {}
        email, name = claims.get("email"), claims.get("name")
        signed_in = await sign_in(
            sub=str(claims["sub"]),
            email=email if isinstance(email, str) else None,
            name=name if isinstance(name, str) else None,
            claimed_roles=granted,
            sandbox_name=sandbox,
        )
    except (InvalidToken, NoAccessError) as refusal:
        logger.info("bearer token refused: %s", refusal)
        return None
    caller = Caller(
        sandbox_id=signed_in.sandbox_id,
        sandbox_name=signed_in.sandbox_name,
        role=signed_in.role,
        user_id=signed_in.user_id,
        user_sub=signed_in.sub,
    )
    if digest:
        # Never past the token's own expiry.
        lifetime = min(cache_seconds, float(claims["exp"]) - time.time())
        if lifetime > 0:
            if len(_CACHE) >= _CACHE_MAX:
                _CACHE.clear()
            _CACHE[digest] = (time.monotonic() + lifetime, caller)
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
