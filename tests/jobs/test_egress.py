"""The egress policy on every outbound path an ADMIN can aim, against real sockets and servers.

Production policy (no exceptions) unless a test says otherwise. "Nothing connected" is observed, not assumed:
a listener sits on the loopback port every target names, and Python's `socket.connect` audit event records
every connect the process makes while a target is tried, so a refusal that happened after a connect (to the
listener, or to a non-loopback address, which these tests must never reach) fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

import pytest

from api.settings import Settings
from jobs.adapters import build_adapter
from jobs.channels.base import EmailContent, FailureCode, OutgoingMessage, PushContent, SendResult, SmsContent
from jobs.channels.egress import EgressRefused, checked_addresses, egress_client
from jobs.channels.email import EmailAdapter, EmailSender, SmtpTransport
from jobs.channels.push import FcmConfig, PushAdapter
from jobs.channels.sms import SmsAdapter, TwilioConfig
from jobs.context import job_ctx
from jobs.preset_checks import provider_checks
from models.campaigns.campaign import Campaign
from models.egress_rules import REFUSED_MESSAGE, EgressPolicy, parse_allow
from models.presets.preset import MessagePreset
from models.presets.rules import Channel, CheckCode
from models.presets.secret_box import SecretBox
from models.tenancy.identity import IdentityNamespace
from tests.conftest import TEST_SECRET, RunningServer
from tests.jobs.provider_server import PROJECT, provider_server
from tests.provider_servers import SMS_SID, SMS_TOKEN, http_provider, smtp_server

PRODUCTION = EgressPolicy()
SECONDS = 2.0

_connects: list[Any] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _connects is not None:
        _connects.append(args[1])


sys.addaudithook(_audit)  # permanent for the process; records only while a Watch is open


@dataclass
class Watch:
    port: int
    accepted: list[Any] = field(default_factory=list)
    connects: list[Any] = field(default_factory=list)

    def violations(self) -> list[Any]:
        """Connections to the listener's port or to any address outside loopback."""
        found = list(self.accepted)
        for address in self.connects:
            if not isinstance(address, tuple):
                continue
            host, port = address[0], address[1]
            if port == self.port or not ip_address(str(host).split("%")[0]).is_loopback:
                found.append(address)
        return found


@contextlib.asynccontextmanager
async def watched() -> AsyncIterator[Watch]:
    global _connects

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        watch.accepted.append(writer.get_extra_info("peername"))
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    watch = Watch(server.sockets[0].getsockname()[1])
    _connects = watch.connects
    try:
        yield watch
    finally:
        _connects = None
        server.close()
        await server.wait_closed()


TARGETS = [
    "127.0.0.1",
    "::1",
    "localhost",
    "localhost.",  # resolved by the system resolver at connect time
    "169.254.169.254",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "::ffff:127.0.0.1",
    "0.0.0.0",
    "2130706433",
    "0x7f000001",
    "017700000001",
    "127.1",
]


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


EMAIL = EmailContent(subject="Hi", html=None, text="Hello")


async def _validation(channel: Channel, host: str, port: int, policy: EgressPolicy) -> list[tuple[Any, ...]]:
    if channel is Channel.EMAIL:
        settings: dict[str, Any] = {"smtp_host": host, "smtp_port": port, "tls_mode": "NONE"}
        secrets: dict[str, str] = {}
    else:
        settings = {"provider_base_url": url_of(host, port), "account_sid": SMS_SID}
        secrets = {"auth_token": SMS_TOKEN}
    results = await provider_checks(channel, settings, secrets, SECONDS, egress=policy)
    return [(r.check, r.code, r.message) for r in results]


async def _send(adapter: Any, message: OutgoingMessage) -> SendResult:
    try:
        [result] = await adapter.send_batch([message])
    finally:
        await adapter.close()
    return result


async def every_send_path(host: str, port: int, account: dict[str, str], token_url: str) -> list[SendResult]:
    """Email, SMS, the FCM token exchange, and an FCM send whose token comes from an allowed server."""
    url = url_of(host, port)
    email = EmailAdapter(
        SmtpTransport(host=host, port=port, egress=PRODUCTION, timeout=SECONDS), EmailSender("news@example.com")
    )
    sms = SmsAdapter(TwilioConfig(SMS_SID, SMS_TOKEN, from_number="+15550001111", base_url=url, egress=PRODUCTION))
    push = {"project_id": PROJECT, "service_account": account, "base_url": url, "timeout": SECONDS}
    token_exchange = PushAdapter(FcmConfig(**push, token_url=f"{url}/token", egress=PRODUCTION))
    results = [
        await _send(email, OutgoingMessage("egress-e", "a@example.com", EMAIL)),
        await _send(sms, OutgoingMessage("egress-s", "+15550002222", SmsContent("Hi"))),
        await _send(token_exchange, OutgoingMessage("egress-t", "device", PushContent("Hi", "Hello"))),
    ]
    if host.rstrip(".") != "localhost":  # the token server is allowed by the name "localhost"
        fcm_send = PushAdapter(FcmConfig(**push, token_url=token_url, egress=parse_allow("localhost")))
        results.append(await _send(fcm_send, OutgoingMessage("egress-p", "device", PushContent("Hi", "Hello"))))
    return results


@pytest.fixture(scope="module")
async def fcm() -> AsyncIterator[tuple[dict[str, str], str]]:
    async with provider_server() as running:
        # Reached by the name "localhost" (what the allowing policy names): the token audience follows.
        running.current.state.base_url = running.base_url.replace("127.0.0.1", "localhost")
        yield running.account, running.current.state.token_url


@pytest.mark.parametrize("host", TARGETS)
async def test_every_channel_refuses_internal_targets_before_connecting(
    host: str, fcm: tuple[dict[str, str], str]
) -> None:
    account, token_url = fcm
    async with watched() as watch:
        checks = [
            await _validation(channel, host, watch.port, PRODUCTION) for channel in Channel if channel.value != "IN_APP"
        ]
        sends = await every_send_path(host, watch.port, account, token_url)
    assert checks == [
        [("smtp.connect", CheckCode.ADDRESS_NOT_ALLOWED, REFUSED_MESSAGE)],
        [("sms.reachable", CheckCode.ADDRESS_NOT_ALLOWED, REFUSED_MESSAGE)],
        [("push.reachable", CheckCode.ADDRESS_NOT_ALLOWED, REFUSED_MESSAGE)],
    ]
    # The same words for every target: nothing tells one refused target from another.
    assert {(r.status.value, r.reason, r.message) for r in sends} == {
        ("HARD_FAIL", FailureCode.ADDRESS_NOT_ALLOWED, REFUSED_MESSAGE)
    }
    assert watch.violations() == []


@pytest.mark.parametrize("channel", [Channel.EMAIL, Channel.SMS, Channel.PUSH])
async def test_runs_and_proofs_build_their_adapters_under_the_settings_policy(
    server: RunningServer, channel: Channel, fcm: tuple[dict[str, str], str]
) -> None:
    """jobs.adapters.build_adapter (campaign runs and proofs) passes the worker's policy to every adapter."""
    account, _ = fcm
    settings = Settings(env="prod", secret_key=TEST_SECRET, egress_allow="")
    async with watched() as watch:
        values = {
            Channel.EMAIL: {"smtp_host": "localhost", "smtp_port": watch.port, "sender_address": "n@example.com"},
            Channel.SMS: {"provider_base_url": url_of("127.0.0.1", watch.port), "account_sid": SMS_SID, "sender": "+1"},
            Channel.PUSH: {"provider_base_url": url_of("10.0.0.1", watch.port), "fcm_project_id": PROJECT},
        }[channel]
        sealed = {"auth_token": SMS_TOKEN, "service_account_json": json.dumps(account)}
        preset = MessagePreset(sandbox_id=1, settings=values, secrets=SecretBox(TEST_SECRET).seal(sealed, sandbox_id=1))
        campaign = Campaign(id=1, sandbox_id=1, channel=channel)
        adapter = build_adapter(job_ctx(settings), campaign, preset, IdentityNamespace(code="x"))
        content = {Channel.EMAIL: EMAIL, Channel.SMS: SmsContent("Hi"), Channel.PUSH: PushContent("Hi", "Hello")}
        result = await _send(adapter, OutgoingMessage("egress-b", "a@example.com", content[channel]))
    assert (result.reason, result.message) == (FailureCode.ADDRESS_NOT_ALLOWED, REFUSED_MESSAGE)
    assert watch.violations() == []


async def _redirects_to(location: str) -> tuple[asyncio.Server, list[bytes]]:
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        body = b'{"message": "secret internal detail"}'
        writer.write(
            b"HTTP/1.1 302 Found\r\nLocation: " + location.encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0), seen


async def test_a_provider_redirecting_to_loopback_is_not_followed(fcm: tuple[dict[str, str], str]) -> None:
    """The provider is allowed by name; its redirect to a refused loopback port is never followed."""
    account, _ = fcm
    allowed = parse_allow("localhost")
    async with watched() as watch:
        server, seen = await _redirects_to(f"http://127.0.0.1:{watch.port}/")
        port = server.sockets[0].getsockname()[1]
        async with server:
            url = f"http://localhost:{port}"
            checks = await provider_checks(
                Channel.SMS, {"provider_base_url": url, "account_sid": SMS_SID}, {"auth_token": "t"}, 2, egress=allowed
            )
            sms = SmsAdapter(TwilioConfig(SMS_SID, SMS_TOKEN, from_number="+15550001111", base_url=url, egress=allowed))
            sent = await _send(sms, OutgoingMessage("egress-r", "+15550002222", SmsContent("Hi")))
            push_config = FcmConfig(PROJECT, account, base_url=url, token_url=f"{url}/token", egress=allowed)
            pushed = await _send(PushAdapter(push_config), OutgoingMessage("egress-q", "d", PushContent("Hi", "x")))
    assert [(c.check, c.code) for c in checks] == [
        ("sms.reachable", CheckCode.OK),
        ("sms.credentials", CheckCode.PROTOCOL_ERROR),
    ]
    assert sent.reason is FailureCode.PROVIDER_REJECTED and pushed.reason is FailureCode.AUTH_FAILED
    assert len(seen) == 4  # the allowed provider was asked each time, by its name
    assert all(b"host: localhost:" in request.lower() for request in seen)
    assert watch.violations() == []
    said = " ".join([*(c.message for c in checks), sent.message, pushed.message])
    assert str(watch.port) not in said and "Location" not in said


async def test_configured_exceptions_connect() -> None:
    """EGRESS_ALLOW by network (SMTP to a real server) and by host name (an HTTP provider) in production."""
    by_network = parse_allow("127.0.0.0/8")
    with smtp_server() as smtp:
        checks = await provider_checks(
            Channel.EMAIL,
            {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "tls_mode": "NONE"},
            {},
            2,
            egress=by_network,
        )
        email = EmailAdapter(SmtpTransport("127.0.0.1", smtp.port, egress=by_network), EmailSender("n@example.com"))
        sent = await _send(email, OutgoingMessage("egress-ok", "a@example.com", EMAIL))
    assert [(c.check, c.code) for c in checks] == [("smtp.connect", CheckCode.OK), ("smtp.ehlo", CheckCode.OK)]
    assert sent.status.value == "SENT"
    async with http_provider() as base:
        url = base.replace("127.0.0.1", "localhost")
        sms = await provider_checks(
            Channel.SMS,
            {"provider_base_url": url, "account_sid": SMS_SID},
            {"auth_token": SMS_TOKEN},
            2,
            egress=parse_allow("localhost"),
        )
    assert [(c.check, c.code) for c in sms] == [("sms.reachable", CheckCode.OK), ("sms.credentials", CheckCode.OK)]


def resolver_of(table: dict[str, list[str]], calls: list[str]):
    async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        calls.append(host)
        return [ip_address(a) for a in table[host]]

    return resolve


async def test_names_are_judged_by_every_address_they_resolve_to() -> None:
    calls: list[str] = []
    resolve = resolver_of(
        {
            "intranet.example": ["127.0.0.1"],
            "mixed.example": ["8.8.8.8", "10.0.0.1"],
            "public.example": ["8.8.8.8", "2001:4860:4860::8888"],
            "relay.corp": ["10.1.2.3"],
        },
        calls,
    )
    async with watched() as watch:
        for name in ("intranet.example", "mixed.example"):
            with pytest.raises(EgressRefused):
                await checked_addresses(name, 25, PRODUCTION, resolve)
        # Allowed (public, or a name the operator listed) is decided without connecting.
        assert await checked_addresses("public.example", 25, PRODUCTION, resolve) == [
            ip_address("8.8.8.8"),
            ip_address("2001:4860:4860::8888"),
        ]
        assert await checked_addresses("93.184.216.34", 443, PRODUCTION) == [ip_address("93.184.216.34")]
        assert await checked_addresses("relay.corp", 25, parse_allow("relay.corp"), resolve) == [ip_address("10.1.2.3")]
        assert await checked_addresses("relay.corp", 25, parse_allow("10.1.0.0/16"), resolve) == [
            ip_address("10.1.2.3")
        ]
    assert (
        watch.connects == [] and calls == ["intranet.example", "mixed.example", "public.example"] + ["relay.corp"] * 2
    )


async def test_http_connects_to_the_address_it_checked_and_keeps_the_name() -> None:
    """Resolved once per connection; the request still carries the name (Host), not the address."""
    calls: list[str] = []
    resolve = resolver_of({"provider.test": ["127.0.0.1"]}, calls)
    async with http_provider() as base:
        port = base.rsplit(":", 1)[1]
        async with egress_client(parse_allow("provider.test"), timeout=2, resolver=resolve) as http:
            first = await http.get(f"http://provider.test:{port}/")
            second = await http.get(f"http://provider.test:{port}/")
        async with egress_client(PRODUCTION, timeout=2, resolver=resolve) as http:
            with pytest.raises(EgressRefused):
                await http.get(f"http://provider.test:{port}/")
    assert first.status_code == second.status_code == 200
    assert first.request.headers["host"] == f"provider.test:{port}"
    assert calls == ["provider.test", "provider.test"]  # one pooled connection, then the refused client's check
