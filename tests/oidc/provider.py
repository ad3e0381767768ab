"""The test identity provider: panva/oidc-provider (provider.mjs) under Node, installed with `npm ci` from the
committed lock the first time, one per test process (session fixture `oidc_provider`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving import free_port

HERE = Path(__file__).resolve().parent
NODE, NPM = shutil.which("node"), shutil.which("npm")
AUDIENCE = "herald"
RESOURCE = "https://herald.test/"
OTHER_RESOURCE = "https://other.test/"
# The SPA page of the browser test is served from this origin (tests/e2e/test_browser_people.py).
SPA_PORT = free_port()
SPA_ORIGIN = f"http://127.0.0.1:{SPA_PORT}"
# A sandbox named in the `groups` claim of `gina` (granted PUBLISHER there by the token alone).
CLAIMED_SANDBOX = "claimed"

# Test people: each is a client of the provider (client-credentials grant); `sub` is the client id.
PEOPLE: dict[str, dict[str, Any]] = {
    "alice": {"email": "alice@example.com", "name": "Alice Author"},
    "bob": {"email": "bob@example.com", "name": "Bob Approver"},
    "carol": {"email": "carol@example.com", "name": "Carol Approver"},
    "dave": {"email": "dave@example.com", "name": "Dave"},
    "stranger": {"email": "stranger@example.com", "name": "Nobody Here"},
    "brief": {"email": "brief@example.com", "name": "Short Lived", "ttl": 3},
    "gina": {"email": "gina@example.com", "name": "Gina Grouped", "groups": [f"{CLAIMED_SANDBOX}:PUBLISHER", "x"]},
}

requires_node = pytest.mark.skipif(
    NODE is None or NPM is None, reason="node and npm run the test identity provider (npm oidc-provider)"
)


def secret_of(person: str) -> str:
    return f"{person}-secret"


@dataclass
class IdentityProvider:
    issuer: str
    http: httpx.AsyncClient

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    async def token_response(self, person: str, resource: str = RESOURCE) -> dict[str, Any]:
        response = await self.http.post(
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": person,
                "client_secret": secret_of(person),
                "resource": resource,
            },
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def token(self, person: str, resource: str = RESOURCE) -> str:
        """A signed access token for `person` (its `aud` is the resource's audience)."""
        return (await self.token_response(person, resource))["access_token"]

    async def rotate(self) -> str:
        """A new signing key, first in the published set; returns its key id."""
        response = await self.http.post(f"{self.issuer}/__rotate")
        assert response.status_code == 200, response.text
        return response.json()["kid"]


async def _install() -> None:
    if (HERE / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    proc = await asyncio.create_subprocess_exec(
        NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=HERE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(300):
        _, err = await proc.communicate()
    assert proc.returncode == 0, f"npm ci failed: {err.decode()}"


@contextlib.asynccontextmanager
async def identity_provider() -> AsyncIterator[IdentityProvider]:
    assert NODE is not None
    await _install()
    port = free_port()
    config = {
        "port": port,
        "origin": SPA_ORIGIN,
        "clients": [
            {"client_id": person, "client_secret": secret_of(person), **claims} for person, claims in PEOPLE.items()
        ],
        "resources": {RESOURCE: AUDIENCE, OTHER_RESOURCE: "other"},
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="herald-oidc-") as file:
        json.dump(config, file)
        file.flush()
        proc = await asyncio.create_subprocess_exec(
            NODE, str(HERE / "provider.mjs"), file.name, cwd=HERE, stdout=asyncio.subprocess.PIPE, stderr=None
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(60):
                line = (await proc.stdout.readline()).decode()
            assert line.startswith("listening "), f"the identity provider did not start: {line!r}"
            async with httpx.AsyncClient(timeout=10) as http:
                yield IdentityProvider(issuer=line.split()[1], http=http)
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()


@pytest.fixture(scope="session")
async def oidc_provider() -> AsyncIterator[IdentityProvider]:
    if NODE is None or NPM is None:
        pytest.skip("node and npm run the test identity provider (npm oidc-provider)")
    async with identity_provider() as provider:
        yield provider


@pytest.fixture
async def people(app: Any, oidc_provider: IdentityProvider) -> AsyncIterator[Any]:
    """The session app accepts the test provider's tokens (no JWKS refresh interval, no leeway) for one test;
    yields its OidcVerifier."""
    from api.auth import PeopleAuth
    from api.oidc import OidcVerifier

    view = app.state.graphql_app
    verifier = OidcVerifier(oidc_provider.issuer, AUDIENCE, min_refresh_seconds=0, leeway_seconds=0)
    view.people = PeopleAuth(verifier=verifier, roles_claim="groups")
    try:
        yield verifier
    finally:
        view.people = None
