"""Provider checks against real local servers: aiosmtpd, a Twilio-style HTTP API, silent sockets."""

from __future__ import annotations

import time

import pytest

from jobs.preset_checks import provider_checks
from models.presets.rules import Channel, CheckCode
from tests.provider_servers import (
    SMS_SID,
    SMS_TOKEN,
    SMTP_PASSWORD,
    SMTP_USER,
    closed_port,
    http_provider,
    self_signed_tls_context,
    silent_server,
    smtp_server,
)

TIMEOUT = 2.0


def email_settings(port: int, *, tls_mode: str = "NONE", username: str | None = None) -> dict:
    settings = {"smtp_host": "127.0.0.1", "smtp_port": port, "tls_mode": tls_mode}
    if username:
        settings["smtp_username"] = username
    return settings


def summary(results) -> list[tuple[str, bool, CheckCode]]:
    return [(r.check, r.ok, r.code) for r in results]


async def test_smtp_without_auth_passes_connect_and_ehlo() -> None:
    with smtp_server() as smtp:
        results = await provider_checks(Channel.EMAIL, email_settings(smtp.port), {}, TIMEOUT)
    assert summary(results) == [("smtp.connect", True, CheckCode.OK), ("smtp.ehlo", True, CheckCode.OK)]
    assert results[0].message.startswith("Greeting: 220")


async def test_smtp_with_auth_logs_in() -> None:
    with smtp_server(auth=True) as smtp:
        results = await provider_checks(
            Channel.EMAIL,
            email_settings(smtp.port, username=SMTP_USER),
            {"smtp_password": SMTP_PASSWORD},
            TIMEOUT,
        )
    assert summary(results)[-1] == ("smtp.auth", True, CheckCode.OK)
    assert all(r.ok for r in results)


async def test_smtp_bad_credentials_fail_auth_without_echoing_the_password() -> None:
    with smtp_server(auth=True) as smtp:
        results = await provider_checks(
            Channel.EMAIL,
            email_settings(smtp.port, username=SMTP_USER),
            {"smtp_password": "wrong-password-xyz"},
            TIMEOUT,
        )
    assert summary(results)[-1] == ("smtp.auth", False, CheckCode.AUTH_FAILED)
    assert "535" in results[-1].message
    assert "wrong-password-xyz" not in results[-1].message


async def test_smtp_credentials_on_a_server_without_auth_are_reported() -> None:
    with smtp_server() as smtp:
        results = await provider_checks(
            Channel.EMAIL, email_settings(smtp.port, username=SMTP_USER), {"smtp_password": "x"}, TIMEOUT
        )
    assert summary(results)[-1] == ("smtp.auth", False, CheckCode.AUTH_UNAVAILABLE)


async def test_smtp_connection_refused() -> None:
    results = await provider_checks(Channel.EMAIL, email_settings(closed_port()), {}, TIMEOUT)
    assert summary(results) == [("smtp.connect", False, CheckCode.CONNECTION_REFUSED)]


async def test_starttls_required_but_not_offered() -> None:
    with smtp_server() as smtp:
        results = await provider_checks(Channel.EMAIL, email_settings(smtp.port, tls_mode="STARTTLS"), {}, TIMEOUT)
    assert summary(results)[-1] == ("smtp.starttls", False, CheckCode.STARTTLS_UNAVAILABLE)


async def test_starttls_with_an_untrusted_certificate_fails_tls() -> None:
    with smtp_server(tls_context=self_signed_tls_context()) as smtp:
        results = await provider_checks(Channel.EMAIL, email_settings(smtp.port, tls_mode="STARTTLS"), {}, TIMEOUT)
    assert summary(results)[-1] == ("smtp.starttls", False, CheckCode.TLS_FAILED)
    assert "certificate" in results[-1].message.lower()


async def test_implicit_tls_against_a_plain_server_fails_tls() -> None:
    with smtp_server() as smtp:
        results = await provider_checks(Channel.EMAIL, email_settings(smtp.port, tls_mode="TLS"), {}, TIMEOUT)
    assert summary(results)[0][:2] == ("smtp.connect", False)
    assert results[0].code in {CheckCode.TLS_FAILED, CheckCode.TIMEOUT}


async def test_unknown_host_fails_dns() -> None:
    settings = {"smtp_host": "no-such-host.invalid", "smtp_port": 25, "tls_mode": "NONE"}
    results = await provider_checks(Channel.EMAIL, settings, {}, TIMEOUT)
    assert summary(results) == [("smtp.connect", False, CheckCode.DNS_FAILED)]


@pytest.mark.parametrize("channel", [Channel.EMAIL, Channel.SMS, Channel.PUSH])
async def test_a_provider_that_hangs_is_reported_as_timeout_within_the_deadline(channel: Channel) -> None:
    async with silent_server() as port:
        settings = {
            Channel.EMAIL: email_settings(port),
            Channel.SMS: {"provider_base_url": f"http://127.0.0.1:{port}", "account_sid": SMS_SID},
            Channel.PUSH: {"provider_base_url": f"http://127.0.0.1:{port}"},
        }[channel]
        started = time.monotonic()
        results = await provider_checks(channel, settings, {"auth_token": SMS_TOKEN}, 0.3)
        elapsed = time.monotonic() - started
    assert [(r.ok, r.code) for r in results] == [(False, CheckCode.TIMEOUT)]
    assert elapsed < 2.0


async def test_sms_provider_answers_and_accepts_credentials() -> None:
    async with http_provider() as base_url:
        settings = {"provider_base_url": base_url, "account_sid": SMS_SID}
        results = await provider_checks(Channel.SMS, settings, {"auth_token": SMS_TOKEN}, TIMEOUT)
    assert summary(results) == [
        ("sms.reachable", True, CheckCode.OK),
        ("sms.credentials", True, CheckCode.OK),
    ]


@pytest.mark.parametrize(
    ("sid", "token"), [(SMS_SID, "bad-token"), ("ACunknown", SMS_TOKEN)], ids=["bad-token", "unknown-account"]
)
async def test_sms_bad_credentials(sid: str, token: str) -> None:
    async with http_provider() as base_url:
        settings = {"provider_base_url": base_url, "account_sid": sid}
        results = await provider_checks(Channel.SMS, settings, {"auth_token": token}, TIMEOUT)
    assert summary(results)[-1] == ("sms.credentials", False, CheckCode.AUTH_FAILED)
    assert token not in results[-1].message


async def test_http_provider_refused_and_server_error() -> None:
    refused = await provider_checks(
        Channel.PUSH, {"provider_base_url": f"http://127.0.0.1:{closed_port()}"}, {}, TIMEOUT
    )
    assert summary(refused) == [("push.reachable", False, CheckCode.CONNECTION_REFUSED)]
    async with http_provider() as base_url:
        broken = await provider_checks(Channel.PUSH, {"provider_base_url": f"{base_url}/broken"}, {}, TIMEOUT)
        fine = await provider_checks(Channel.PUSH, {"provider_base_url": base_url}, {}, TIMEOUT)
    assert summary(broken) == [("push.reachable", False, CheckCode.HTTP_SERVER_ERROR)]
    assert summary(fine) == [("push.reachable", True, CheckCode.OK)]


async def test_in_app_has_no_provider_to_check() -> None:
    assert await provider_checks(Channel.IN_APP, {"app_id": "com.example.app"}, {}, TIMEOUT) == []


async def test_push_checks_fetch_a_token_and_send_a_dry_run_per_platform():
    import json

    from tests.jobs.provider_server import PROJECT, Scripted, provider_server

    async with provider_server() as providers:
        state = providers.fresh()
        secrets = {"service_account_json": json.dumps(providers.account)}
        settings = {
            "provider_base_url": providers.base_url,
            "fcm_project_id": PROJECT,
            "platforms": ["ANDROID", "IOS"],
            "app_id": "com.example.app",
        }
        fine = await provider_checks(Channel.PUSH, settings, secrets, TIMEOUT)
        assert summary(fine) == [
            ("push.reachable", True, CheckCode.OK),
            ("push.credentials", True, CheckCode.OK),
            ("push.dry_run.android", True, CheckCode.OK),
            ("push.dry_run.ios", True, CheckCode.OK),
        ]
        # Each platform's part of the message, as sends carry it (the app id pinned), never delivered.
        assert [(m["topic"], m.get("android"), m.get("apns")) for m in state.dry_runs] == [
            ("herald-preset-check", {"restricted_package_name": "com.example.app"}, None),
            ("herald-preset-check", None, {"headers": {"apns-topic": "com.example.app"}}),
        ]
        assert state.push == []

        # A project without an APNs key: the IOS dry run is refused, named as the APNs credentials.
        state.no_apns_key = True
        no_apns = await provider_checks(Channel.PUSH, settings, secrets, TIMEOUT)
        assert summary(no_apns)[-2:] == [
            ("push.dry_run.android", True, CheckCode.OK),
            ("push.dry_run.ios", False, CheckCode.AUTH_FAILED),
        ]
        assert "APNs credentials" in no_apns[-1].message and "THIRD_PARTY_AUTH_ERROR" in no_apns[-1].message
        state.no_apns_key = False

        other_project = await provider_checks(
            Channel.PUSH, {**settings, "fcm_project_id": "not-ours"}, secrets, TIMEOUT
        )
        assert summary(other_project)[-1] == ("push.dry_run.ios", False, CheckCode.AUTH_FAILED)

        state.token_script.append(Scripted(400, {"error": "invalid_grant", "error_description": "Invalid JWT"}))
        refused = await provider_checks(Channel.PUSH, settings, secrets, TIMEOUT)
        assert summary(refused) == [
            ("push.reachable", True, CheckCode.OK),
            ("push.credentials", False, CheckCode.AUTH_FAILED),
        ]
        assert "invalid_grant" in refused[-1].message or "Invalid JWT" in refused[-1].message
