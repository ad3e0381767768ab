"""Provider checks for message presets: talk to the SMTP server or HTTP provider the settings name.

Every check runs under its own deadline, so a provider that hangs is reported as TIMEOUT instead of
holding the job. Messages never contain secrets (servers' replies are quoted, credentials are not). Every
connection goes through the egress policy (jobs.channels.egress): a refused target is reported as
ADDRESS_NOT_ALLOWED before anything connects, and HTTP answers are described by status, never by body.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiosmtplib
import httpx

from jobs.channels.base import PushContent
from jobs.channels.egress import EgressRefused, egress_client, open_socket
from jobs.channels.http import json_or_empty
from jobs.channels.push import AccessTokenError, ServiceAccountTokens, fcm_error, fcm_request_body
from models.egress_rules import DEV_POLICY, EgressPolicy
from models.presets.rules import Channel, CheckCode, TlsMode

MESSAGE_MAX = 300


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    ok: bool
    code: CheckCode
    message: str
    duration_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "ok": self.ok,
            "code": self.code.value,
            "message": self.message,
            "durationMs": self.duration_ms,
        }


class CheckFailedError(Exception):
    def __init__(self, code: CheckCode, message: str) -> None:
        super().__init__(message)
        self.code = code


async def run_check(name: str, step: Callable[[], Awaitable[str]], seconds: float) -> CheckResult:
    """Runs one step under `seconds`; its return value is the success message."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            message = await step()
        code, ok = CheckCode.OK, True
    except CheckFailedError as error:
        code, ok, message = error.code, False, str(error)
    except EgressRefused as error:
        code, ok, message = CheckCode.ADDRESS_NOT_ALLOWED, False, str(error)
    except (TimeoutError, aiosmtplib.SMTPTimeoutError, httpx.TimeoutException):
        code, ok, message = CheckCode.TIMEOUT, False, f"No answer within {seconds:g} s."
    return CheckResult(name, ok, code, message[:MESSAGE_MAX], int((time.monotonic() - started) * 1000))


def _os_error_code(error: BaseException | None) -> tuple[CheckCode, str] | None:
    """Classify the network error underneath a library's exception."""
    while error is not None:
        if isinstance(error, ConnectionRefusedError):
            return CheckCode.CONNECTION_REFUSED, "Connection refused."
        if isinstance(error, socket.gaierror):
            return CheckCode.DNS_FAILED, f"The host name does not resolve ({error.strerror})."
        if isinstance(error, ssl.SSLError):
            return CheckCode.TLS_FAILED, f"TLS handshake failed: {getattr(error, 'reason', None) or error}."
        if isinstance(error, TimeoutError):
            return CheckCode.TIMEOUT, "Timed out."
        error = error.__cause__ or error.__context__
    return None


async def smtp_checks(
    settings: dict[str, Any], secrets: dict[str, str], seconds: float, egress: EgressPolicy = DEV_POLICY
) -> list[CheckResult]:
    """Connect (+ implicit TLS), EHLO, STARTTLS when configured, AUTH when a username is set. Steps stop at
    the first failure: a later step means nothing without the earlier ones."""
    tls_mode = TlsMode(settings["tls_mode"])
    host = settings["smtp_host"]
    client = aiosmtplib.SMTP(
        hostname=host,
        timeout=seconds,
        use_tls=tls_mode is TlsMode.TLS,
        start_tls=False,
        local_hostname=socket.gethostname() or "herald",
        tls_context=ssl.create_default_context() if tls_mode is TlsMode.TLS else None,
    )

    async def connect() -> str:
        try:
            # Resolved and checked once; aiosmtplib talks over this socket and verifies TLS against `host`.
            sock = await open_socket(host, settings["smtp_port"], egress, seconds)
        except OSError as error:
            code, message = _os_error_code(error) or (CheckCode.CONNECTION_FAILED, f"Cannot connect: {error}")
            raise CheckFailedError(code, message) from error
        try:
            response = await client.connect(sock=sock)
        except aiosmtplib.SMTPConnectResponseError as error:
            raise CheckFailedError(
                CheckCode.PROTOCOL_ERROR, f"Server not ready: {error.code} {error.message}"
            ) from error
        except aiosmtplib.SMTPConnectTimeoutError:
            raise
        except (aiosmtplib.SMTPException, OSError) as error:
            code, message = _os_error_code(error) or (CheckCode.CONNECTION_FAILED, f"Cannot connect: {error}")
            raise CheckFailedError(code, message) from error
        finally:
            if not client.is_connected:
                sock.close()
        return f"Greeting: {response.code} {response.message}"

    async def ehlo() -> str:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPResponseException as error:
            raise CheckFailedError(CheckCode.PROTOCOL_ERROR, f"EHLO refused: {error.code} {error.message}") from error
        return f"EHLO accepted; extensions: {', '.join(sorted(client.esmtp_extensions)) or 'none'}."

    async def starttls() -> str:
        if not client.supports_extension("starttls"):
            raise CheckFailedError(
                CheckCode.STARTTLS_UNAVAILABLE, "TLS mode is STARTTLS but the server does not offer STARTTLS."
            )
        try:
            await client.starttls(tls_context=ssl.create_default_context())
        except aiosmtplib.SMTPResponseException as error:
            raise CheckFailedError(CheckCode.TLS_FAILED, f"STARTTLS refused: {error.code} {error.message}") from error
        except (aiosmtplib.SMTPException, OSError) as error:
            code, message = _os_error_code(error) or (CheckCode.TLS_FAILED, f"STARTTLS failed: {error}")
            raise CheckFailedError(code, message) from error
        return "Connection upgraded to TLS."

    async def auth() -> str:
        if not client.supports_extension("auth"):
            raise CheckFailedError(CheckCode.AUTH_UNAVAILABLE, "The server offers no AUTH on this connection.")
        try:
            await client.login(settings["smtp_username"], secrets.get("smtp_password", ""))
        except aiosmtplib.SMTPAuthenticationError as error:
            raise CheckFailedError(CheckCode.AUTH_FAILED, f"Login refused: {error.code} {error.message}") from error
        except aiosmtplib.SMTPException as error:
            raise CheckFailedError(CheckCode.AUTH_UNAVAILABLE, f"Login impossible: {error}") from error
        return "Logged in."

    steps: list[tuple[str, Callable[[], Awaitable[str]]]] = [("smtp.connect", connect), ("smtp.ehlo", ehlo)]
    if tls_mode is TlsMode.STARTTLS:
        steps.append(("smtp.starttls", starttls))
    if settings.get("smtp_username"):
        steps.append(("smtp.auth", auth))
    results: list[CheckResult] = []
    try:
        for name, step in steps:
            results.append(await run_check(name, step, seconds))
            if not results[-1].ok:
                break
    finally:
        if client.is_connected:
            try:
                async with asyncio.timeout(min(seconds, 2.0)):
                    await client.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                client.close()
    return results


async def _http_get(http: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return await http.get(url, **kwargs)
    except httpx.TimeoutException:
        raise
    except httpx.HTTPError as error:
        code, message = _os_error_code(error) or (CheckCode.CONNECTION_FAILED, f"Request failed: {error}")
        raise CheckFailedError(code, message) from error


def _answered(response: httpx.Response) -> str:
    if response.status_code >= 500:
        raise CheckFailedError(CheckCode.HTTP_SERVER_ERROR, f"The provider answered HTTP {response.status_code}.")
    return f"The provider answered HTTP {response.status_code}."


async def sms_checks(
    settings: dict[str, Any], secrets: dict[str, str], seconds: float, egress: EgressPolicy = DEV_POLICY
) -> list[CheckResult]:
    """The base URL answers; then the Twilio-style account resource accepts the credentials."""
    base = settings["provider_base_url"].rstrip("/")
    async with _http_client(seconds, egress) as http:

        async def reachable() -> str:
            return _answered(await _http_get(http, base + "/"))

        async def credentials() -> str:
            sid = settings["account_sid"]
            response = await _http_get(
                http, f"{base}/2010-04-01/Accounts/{sid}.json", auth=(sid, secrets.get("auth_token", ""))
            )
            if response.status_code in (401, 403):
                raise CheckFailedError(
                    CheckCode.AUTH_FAILED,
                    f"The provider refused the credentials (HTTP {response.status_code}).",
                )
            if response.status_code == 404:
                raise CheckFailedError(CheckCode.AUTH_FAILED, "The provider does not know this account (HTTP 404).")
            if response.status_code >= 300:
                _answered(response)
                raise CheckFailedError(
                    CheckCode.PROTOCOL_ERROR,
                    f"Unexpected answer from the provider (HTTP {response.status_code}).",
                )
            return "The provider accepted the credentials."

        results = [await run_check("sms.reachable", reachable, seconds)]
        if results[0].ok:
            results.append(await run_check("sms.credentials", credentials, seconds))
    return results


async def push_checks(
    settings: dict[str, Any], secrets: dict[str, str], seconds: float, egress: EgressPolicy = DEV_POLICY
) -> list[CheckResult]:
    """The base URL answers; then the service account gets an access token and FCM accepts a dry run
    (`validate_only`) for the project and each platform the preset lists (`push.dry_run.android`, `.ios`: the
    campaign review warns of a listed platform without one), so a preset never becomes ACTIVE on credentials
    nobody tried."""
    base = settings["provider_base_url"].rstrip("/")
    async with _http_client(seconds, egress) as http:

        async def reachable() -> str:
            return _answered(await _http_get(http, base + "/"))

        results = [await run_check("push.reachable", reachable, seconds)]
        raw = secrets.get("service_account_json")
        if not raw or not results[0].ok:
            return results
        tokens = ServiceAccountTokens(http, json.loads(raw))
        access: list[str] = []

        async def credentials() -> str:
            try:
                access.append(await tokens.get())
            except AccessTokenError as exc:
                code = CheckCode.AUTH_FAILED if exc.permanent else CheckCode.CONNECTION_FAILED
                raise CheckFailedError(code, f"No access token for the service account: {exc}"[:MESSAGE_MAX]) from exc
            return "The service account obtained an access token."

        results.append(await run_check("push.credentials", credentials, seconds))
        if not results[-1].ok:
            return results
        project = settings.get("fcm_project_id", "")
        # One dry run per platform, with that platform's part of the message as sends carry it (the app id pinned).
        for platform in settings.get("platforms") or ("ANDROID",):
            results.append(
                await run_check(
                    f"push.dry_run.{platform.lower()}",
                    _fcm_dry_run(http, base, project, access[0], platform, settings.get("app_id")),
                    seconds,
                )
            )
        return results


def _fcm_dry_run(
    http: httpx.AsyncClient, base: str, project: str, access: str, platform: str, app_id: str | None
) -> Callable[[], Awaitable[str]]:
    async def dry_run() -> str:
        body = fcm_request_body("", PushContent(title="Check", body="Check"), app_id=app_id, platforms=(platform,))
        message = {k: v for k, v in body["message"].items() if k != "token"} | {"topic": "herald-preset-check"}
        response = await http.post(
            f"{base}/v1/projects/{project}/messages:send",
            json={"validate_only": True, "message": message},
            headers={"Authorization": f"Bearer {access}"},
        )
        if response.status_code in (401, 403, 404):
            code, detail = fcm_error(json_or_empty(response))
            # THIRD_PARTY_AUTH_ERROR: the project's APNs key or certificate, not the service account.
            whose = "the project's APNs credentials" if code == "THIRD_PARTY_AUTH_ERROR" else "this service account"
            raise CheckFailedError(
                CheckCode.AUTH_FAILED,
                f"FCM refused a {platform} dry run for project {project} with {whose} "
                f"(HTTP {response.status_code}{f', {code}' if code else ''}): {detail}"[:MESSAGE_MAX],
            )
        if response.status_code >= 300:
            _answered(response)
            raise CheckFailedError(
                CheckCode.PROTOCOL_ERROR,
                f"Unexpected answer from FCM to a {platform} dry run (HTTP {response.status_code}).",
            )
        return f"FCM accepted a {platform} dry-run message (validate_only)."

    return dry_run


def _http_client(seconds: float, egress: EgressPolicy) -> httpx.AsyncClient:
    # No proxies from the environment and no redirects: the check is about this URL.
    return egress_client(egress, timeout=seconds, max_connections=2)


async def provider_checks(
    channel: Channel,
    settings: dict[str, Any],
    secrets: dict[str, str],
    seconds: float,
    *,
    egress: EgressPolicy = DEV_POLICY,
) -> list[CheckResult]:
    """`egress`: where the preset's host or URL may point (the worker passes the settings' policy)."""
    if channel is Channel.EMAIL:
        return await smtp_checks(settings, secrets, seconds, egress)
    if channel is Channel.SMS:
        return await sms_checks(settings, secrets, seconds, egress)
    if channel is Channel.PUSH:
        return await push_checks(settings, secrets, seconds, egress)
    return []  # in-app messages go to Herald's own inbox: no provider to reach
