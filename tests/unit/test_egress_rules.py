"""The pure egress rules: address classification, numeric host forms, EGRESS_ALLOW parsing, input checks."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from models.egress_rules import (
    DEV_POLICY,
    REFUSED_MESSAGE,
    EgressPolicy,
    address_category,
    host_problem,
    numeric_ipv4,
    parse_allow,
)
from models.presets.channel_rules import validate_settings
from models.presets.rules import Channel, PresetCategory, is_valid_host

PRODUCTION = EgressPolicy()


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "private"),  # reserved 240/4: ipaddress files it under is_private
        ("255.255.255.255", "private"),
        ("192.0.2.1", "private"),  # documentation
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 around 127.0.0.1
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 around 169.254.169.254
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 around 127.0.0.1
        ("64:ff9b::a00:1", "private"),
        ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2001:4860:4860::8888", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_address_categories(address: str, category: str | None) -> None:
    assert address_category(ip_address(address)) == category
    assert PRODUCTION.address_allowed(ip_address(address)) is (category is None)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.0x1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("10.0.0.1", "10.0.0.1"),
        ("0", "0.0.0.0"),
    ],
)
def test_numeric_forms_are_read_as_inet_aton_reads_them(host: str, address: str) -> None:
    assert numeric_ipv4(host) == ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "4294967296", "256.1.1.1", "08", "1.2.3.4.5", "0x", "a.0x1"])
def test_names_and_out_of_range_numbers_are_not_numeric_addresses(host: str) -> None:
    assert numeric_ipv4(host) is None


def test_parse_allow_reads_cidrs_addresses_and_names() -> None:
    policy = parse_allow(" 10.20.0.0/16, 192.168.5.7 smtp.corp.internal,*.relay.example, [fd00::/8] ")
    assert [str(n) for n in policy.networks] == ["10.20.0.0/16", "192.168.5.7/32", "fd00::/8"]
    assert policy.hosts == ("smtp.corp.internal", "*.relay.example")
    assert policy.address_allowed(ip_address("10.20.3.4"))
    assert policy.address_allowed(ip_address("::ffff:10.20.3.4"))  # the mapped form of an allowed address
    assert not policy.address_allowed(ip_address("10.21.0.1"))
    assert policy.host_allowed("SMTP.corp.internal.")
    assert policy.host_allowed("a.relay.example")
    assert not policy.host_allowed("relay.example.evil.com")
    assert parse_allow("") == EgressPolicy()


@pytest.mark.parametrize("text", ["10.0.0.0/33", "not_a_host", "2130706433", "-bad.example"])
def test_parse_allow_names_a_bad_entry(text: str) -> None:
    with pytest.raises(ValueError, match="EGRESS_ALLOW"):
        parse_allow(text)


REFUSED_INPUTS = [
    "127.0.0.1",
    "::1",
    "[::1]",
    "localhost",
    "localhost.",
    "api.localhost",
    "169.254.169.254",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "::ffff:127.0.0.1",
    "[::ffff:127.0.0.1]",
    "0.0.0.0",
]


@pytest.mark.parametrize("host", REFUSED_INPUTS)
def test_internal_hosts_are_refused_in_production(host: str) -> None:
    assert host_problem(host, PRODUCTION) == ("ADDRESS_NOT_ALLOWED", REFUSED_MESSAGE)


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "017700000001", "127.1", "0x7f.0x1"])
def test_non_canonical_numeric_hosts_are_refused_everywhere(host: str) -> None:
    assert host_problem(host, PRODUCTION) is not None
    assert host_problem(host, DEV_POLICY) is not None
    assert not is_valid_host(host)


def test_dev_allows_loopback_only_and_exceptions_are_honoured() -> None:
    assert host_problem("127.0.0.1", DEV_POLICY) is None
    assert host_problem("localhost", DEV_POLICY) is None
    assert host_problem("::1", DEV_POLICY) is None
    assert host_problem("10.0.0.1", DEV_POLICY) is not None
    relay = parse_allow("10.0.0.0/24,mail.internal")
    assert host_problem("10.0.0.1", relay) is None
    assert host_problem("10.0.1.1", relay) is not None
    assert host_problem("mail.internal", relay) is None


def test_public_addresses_and_names_pass_without_resolving() -> None:
    # Names are resolved (and checked again) at connect time; here only what is written is judged.
    for host in ("8.8.8.8", "2001:4860:4860::8888", "smtp.example.com", "api.twilio.com"):
        assert host_problem(host, PRODUCTION) is None


EMAIL = {
    "sender_name": "Acme",
    "sender_address": "news@example.com",
    "list_unsubscribe": True,
    "execution_field": "personalEmail.address",
    "smtp_port": 25,
    "tls_mode": "NONE",
    "max_connections": 2,
    "retry_period_minutes": 600,
}
SMS = {"sender": "+15550001111", "account_sid": "AC1", "execution_field": "mobilePhone.number"}


@pytest.mark.parametrize("host", [*REFUSED_INPUTS, "2130706433", "0x7f000001"])
def test_settings_name_the_field_and_the_setting(host: str) -> None:
    email = validate_settings(
        Channel.EMAIL,
        PresetCategory.MARKETING,
        {**EMAIL, "smtp_host": host},
        {},
        prefix="input.settings.email",
        egress=PRODUCTION,
    )
    url_host = f"[{host.strip('[]')}]" if ":" in host else host
    sms = validate_settings(
        Channel.SMS,
        PresetCategory.MARKETING,
        {**SMS, "provider_base_url": f"https://{url_host}:8443"},
        {"auth_token": "t"},
        prefix="input.settings.sms",
        egress=PRODUCTION,
    )
    for problems, field in ((email, "input.settings.email.smtpHost"), (sms, "input.settings.sms.providerBaseUrl")):
        assert [p.field for p in problems] == [field]
        assert problems[0].code in {"ADDRESS_NOT_ALLOWED", "INVALID_HOST", "INVALID_URL"}
        if problems[0].code == "ADDRESS_NOT_ALLOWED":
            assert "EGRESS_ALLOW" in problems[0].message


def test_a_service_account_token_uri_is_under_the_policy() -> None:
    account = '{"type": "service_account", "client_email": "a@b.c", "private_key": "-----BEGIN PRIVATE KEY-----"'
    settings = {
        "platforms": ["ANDROID"],
        "app_id": "com.example.app",
        "fcm_project_id": "herald-test",
        "provider_base_url": "https://fcm.googleapis.com",
    }

    def problems(token_uri: str) -> list[tuple[str, str]]:
        found = validate_settings(
            Channel.PUSH,
            PresetCategory.MARKETING,
            settings,
            {"service_account_json": account + f', "token_uri": "{token_uri}"}}'},
            prefix="p",
            egress=PRODUCTION,
        )
        return [(p.field, p.code) for p in found]

    assert problems("https://oauth2.googleapis.com/token") == []
    assert problems("http://169.254.169.254/token") == [("p.serviceAccountJson", "ADDRESS_NOT_ALLOWED")]
    assert problems("file:///etc/passwd") == [("p.serviceAccountJson", "INVALID_SERVICE_ACCOUNT")]
