"""A local HTTP server emulating the Twilio messages API, FCM HTTP v1 and Google's OAuth2 token endpoint."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import free_port
from tests.serving import uvicorn_serving

ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "twilio-auth-token"
PROJECT = "herald-test"


@dataclass
class Scripted:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ProviderState:
    base_url: str = ""
    # Responses served before normal behaviour, in order, per endpoint.
    twilio_script: deque[Scripted] = field(default_factory=deque)
    fcm_script: deque[Scripted] = field(default_factory=deque)
    token_script: deque[Scripted] = field(default_factory=deque)
    twilio_errors: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # To → (status, code, message)
    unregistered_tokens: set[str] = field(default_factory=set)
    # The Firebase project has no APNs key: messages for Apple devices (an `apns` part) get THIRD_PARTY_AUTH_ERROR.
    no_apns_key: bool = False
    token_lifetime: int = 3600
    sms: list[dict[str, str]] = field(default_factory=list)
    sids: dict[str, str] = field(default_factory=dict)  # the SID given to each message, by its idempotency key
    push: list[dict[str, Any]] = field(default_factory=list)
    dry_runs: list[dict[str, Any]] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    issued_tokens: set[str] = field(default_factory=set)
    revoked_tokens: set[str] = field(default_factory=set)
    peak_in_flight: int = 0
    in_flight: int = 0
    delay: float = 0.0
    # Seconds to wait after a message is taken (recorded, SID given) before answering: a client timing out
    # then does not know the provider has it.
    answer_delay: float = 0.0
    _ids: itertools.count = field(default_factory=itertools.count)

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"


def service_account(token_url: str) -> tuple[dict[str, str], rsa.RSAPublicKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    account = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "key-1",
        "private_key": pem,
        "client_email": f"herald@{PROJECT}.iam.gserviceaccount.com",
        "token_uri": token_url,
    }
    return account, key.public_key()


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: Starlette's form parser needs python-multipart, which the app does not otherwise use.
    return dict(parse_qsl((await request.body()).decode()))


def _scripted(script: deque[Scripted]) -> Response | None:
    if not script:
        return None
    item = script.popleft()
    return JSONResponse(item.body, status_code=item.status, headers=item.headers)


class _Current:
    """The app reads the state through this, so each test gets a fresh state on a shared server."""

    state: ProviderState


def build_app(current: _Current, public_key: rsa.RSAPublicKey) -> Starlette:
    async def twilio(request: Request) -> Response:
        state = current.state
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            if state.delay:
                await asyncio.sleep(state.delay)
            expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            if request.path_params["sid"] != ACCOUNT_SID or request.headers.get("authorization") != expected:
                return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, status_code=401)
            if (scripted := _scripted(state.twilio_script)) is not None:
                return scripted
            form = await _form(request)
            if form.get("To") in state.twilio_errors:
                status, code, message = state.twilio_errors[form["To"]]
                return JSONResponse({"code": code, "message": message, "status": status}, status_code=status)
            form["idempotency_key"] = request.headers.get("idempotency-key", "")
            state.sms.append(form)
            sid = f"SM{next(state._ids):032x}"
            state.sids[form["idempotency_key"]] = sid
            if state.answer_delay:
                await asyncio.sleep(state.answer_delay)
            return JSONResponse({"sid": sid, "status": "queued", "to": form["To"]}, status_code=201)
        finally:
            state.in_flight -= 1

    async def token(request: Request) -> Response:
        state = current.state
        form = await _form(request)
        claims = jwt.decode(form["assertion"], public_key, algorithms=["RS256"], audience=state.token_url)
        state.token_requests.append(
            {"form": form, "claims": claims, "kid": jwt.get_unverified_header(form["assertion"])}
        )
        if (scripted := _scripted(state.token_script)) is not None:
            return scripted
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        access = f"ya29.test-{len(state.token_requests)}"
        state.issued_tokens.add(access)
        return JSONResponse({"access_token": access, "expires_in": state.token_lifetime, "token_type": "Bearer"})

    async def fcm_send(request: Request) -> Response:
        state = current.state
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in state.issued_tokens or bearer in state.revoked_tokens:
            return JSONResponse(
                {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                           "status": "UNAUTHENTICATED"}},
                status_code=401,
            )  # fmt: skip
        if request.path_params["project"] != PROJECT:
            return JSONResponse({"error": {"code": 404, "status": "NOT_FOUND", "message": "no project"}}, 404)
        if (scripted := _scripted(state.fcm_script)) is not None:
            return scripted
        body = await request.json()
        message = body["message"]
        if state.no_apns_key and "apns" in message:
            detail = {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": "THIRD_PARTY_AUTH_ERROR",
            }
            error = {"code": 401, "message": "Auth error from APNS or Web Push Service", "status": "UNAUTHENTICATED"}
            return JSONResponse({"error": {**error, "details": [detail]}}, status_code=401)
        if body.get("validate_only"):  # FCM's dry run: checked, never delivered
            state.dry_runs.append(message)
            return JSONResponse({"name": f"projects/{PROJECT}/messages/fake_message_id"})
        if message["token"] in state.unregistered_tokens:
            return JSONResponse(
                {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                           "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                        "errorCode": "UNREGISTERED"}]}},
                status_code=404,
            )  # fmt: skip
        if not all(isinstance(v, str) for v in message.get("data", {}).values()):
            return JSONResponse({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "data"}}, 400)
        state.push.append({"message": message, "bearer": bearer})
        return JSONResponse({"name": f"projects/{PROJECT}/messages/0:{next(state._ids)}"})

    async def root(request: Request) -> Response:
        return JSONResponse({})

    async def twilio_account(request: Request) -> Response:
        # What the SMS preset's validation reads: the account, with the preset's credentials.
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if request.path_params["sid"] != ACCOUNT_SID or request.headers.get("authorization") != expected:
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, status_code=401)
        return JSONResponse({"sid": ACCOUNT_SID, "status": "active"})

    return Starlette(
        routes=[
            Route("/", root, methods=["GET"]),
            Route("/2010-04-01/Accounts/{sid}.json", twilio_account, methods=["GET"]),
            Route("/2010-04-01/Accounts/{sid}/Messages.json", twilio, methods=["POST"]),
            Route("/token", token, methods=["POST"]),
            Route("/v1/projects/{project}/messages:send", fcm_send, methods=["POST"]),
        ]
    )


@dataclass
class Providers:
    base_url: str
    account: dict[str, str]
    current: _Current

    def fresh(self) -> ProviderState:
        self.current.state = ProviderState(base_url=self.base_url)
        return self.current.state


@contextlib.asynccontextmanager
async def provider_server() -> AsyncIterator[Providers]:
    """A running server and a service account whose token_uri points at it."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    account, public_key = service_account(f"{base_url}/token")
    current = _Current()
    current.state = ProviderState(base_url=base_url)
    config = uvicorn.Config(
        build_app(current, public_key), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
    )
    async with uvicorn_serving(config):
        yield Providers(base_url, account, current)
