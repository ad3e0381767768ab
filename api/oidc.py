"""OpenID Connect bearer tokens: verified against the identity provider's JWKS with PyJWT.

The provider is found through its discovery document (`<OIDC_ISSUER>/.well-known/openid-configuration`). Its key
set is cached for OIDC_JWKS_CACHE_SECONDS; a token signed with a key id the cache does not hold makes the verifier
fetch the set again (the provider rotated its keys), at most once per OIDC_JWKS_MIN_REFRESH_SECONDS so that
tokens with made-up key ids cannot turn Herald into a load generator against the provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt
from jwt import PyJWKSet

logger = logging.getLogger(__name__)

# Asymmetric algorithms only: HS256 would let anyone holding the client secret mint tokens, and "none" nothing.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class InvalidToken(Exception):
    """The token is not one this server accepts (signature, issuer, audience, expiry, unknown key)."""


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and len(token) < 16_000


class OidcVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        cache_seconds: float = 3600.0,
        min_refresh_seconds: float = 10.0,
        leeway_seconds: float = 30.0,
        timeout_seconds: float = 5.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.cache_seconds = cache_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self.leeway_seconds = leeway_seconds
        self.timeout_seconds = timeout_seconds
        self._jwks_uri: str | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # key-set fetches so far (operations and tests read it)

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or InvalidToken saying why not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken(f"malformed token: {error}") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS:
            raise InvalidToken(f"algorithm {algorithm!r} is not accepted")
        key = await self._key(kid if isinstance(kid, str) else None)
        try:
            return jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        now = time.monotonic()
        stale = self._fetched_at is None or now - self._fetched_at > self.cache_seconds
        if stale or self._find(kid) is None:
            async with self._lock:
                now = time.monotonic()
                stale = self._fetched_at is None or now - self._fetched_at > self.cache_seconds
                may_refresh = self._fetched_at is None or now - self._fetched_at >= self.min_refresh_seconds
                if stale or (self._find(kid) is None and may_refresh):
                    await self._fetch()
        key = self._find(kid)
        if key is None:
            raise InvalidToken(f"no signing key {kid!r} in the provider's key set")
        return key

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            # A token without a key id is accepted only while the provider publishes a single signing key.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_seconds) as http:
                if self._jwks_uri is None:
                    discovery = await http.get(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
                    discovery.raise_for_status()
                    document = discovery.json()
                    if document.get("issuer") != self.issuer:
                        raise InvalidToken(f"the provider names itself {document.get('issuer')!r}, not OIDC_ISSUER")
                    self._jwks_uri = document["jwks_uri"]
                response = await http.get(self._jwks_uri)
                response.raise_for_status()
                key_set = PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, KeyError, jwt.PyJWTError) as error:
            logger.warning("could not fetch the identity provider's keys: %s", error)
            raise InvalidToken("the identity provider's keys are unavailable") from None
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id and key.public_key_use in (None, "sig")}
        self._fetched_at = time.monotonic()
        self.fetches += 1
