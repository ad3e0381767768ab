"""Pure preset rules: names, channel settings, retry bounds by category, status machine, sealed secrets."""

from __future__ import annotations

import json

import pytest

from models.presets.channel_rules import validate_settings
from models.presets.rules import (
    Channel,
    PresetAction,
    PresetCategory,
    PresetStatus,
    PresetUpdateStatus,
    allowed_actions,
    channel_mismatch,
    validate_name,
)
from models.presets.secret_box import SecretBox, SecretsUnreadableError

EMAIL = {
    "sender_name": "Acme News",
    "sender_address": "news@example.com",
    "list_unsubscribe": True,
    "execution_field": "personalEmail.address",
    "smtp_host": "smtp.example.com",
    "smtp_port": 587,
    "tls_mode": "STARTTLS",
    "max_connections": 10,
    "retry_period_minutes": 5040,
}
SMS = {
    "sender": "+14155550100",
    "provider_base_url": "https://api.sms.example.com",
    "account_sid": "AC123",
    "execution_field": "mobilePhone.number",
}
SERVICE_ACCOUNT = json.dumps(
    {
        "type": "service_account",
        "client_email": "push@proj.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    }
)
PUSH = {
    "platforms": ["IOS", "ANDROID"],
    "app_id": "com.example.app",
    "fcm_project_id": "acme-push-1",
    "provider_base_url": "https://fcm.googleapis.com",
}


def problems(channel, settings, secrets=None, category=PresetCategory.MARKETING) -> dict[str, str]:
    found = validate_settings(channel, category, settings, secrets or {}, prefix="s")
    return {p.field: p.code for p in found}


@pytest.mark.parametrize("name", ["Newsletter", "n", "a_b.c-d", "A1", "x" * 100])
def test_good_names(name: str) -> None:
    assert validate_name(name) == []


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("", "REQUIRED"),
        ("1abc", "INVALID_NAME"),
        ("_abc", "INVALID_NAME"),
        ("has space", "INVALID_NAME"),
        ("émail", "INVALID_NAME"),
        ("a/b", "INVALID_NAME"),
        ("x" * 101, "TOO_LONG"),
        ("a\x00b", "INVALID_CHARACTERS"),
    ],
)
def test_bad_names(name: str, code: str) -> None:
    assert [(p.field, p.code) for p in validate_name(name)] == [("input.name", code)]


def test_valid_settings_of_every_channel() -> None:
    assert problems(Channel.EMAIL, EMAIL) == {}
    assert problems(Channel.SMS, SMS, {"auth_token": "tok"}) == {}
    assert problems(Channel.PUSH, PUSH, {"service_account_json": SERVICE_ACCOUNT}) == {}
    assert problems(Channel.IN_APP, {"app_id": "com.example.app"}) == {}


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"sender_address": "not-an-address"}, "s.senderAddress", "INVALID_EMAIL"),
        ({"sender_address": "a@b"}, "s.senderAddress", "INVALID_EMAIL"),
        ({"reply_to_address": "x@@example.com"}, "s.replyToAddress", "INVALID_EMAIL"),
        ({"bcc_address": "bcc@localhost"}, "s.bccAddress", "INVALID_EMAIL"),
        ({"error_address": "e" * 250 + "@example.com"}, "s.errorAddress", "TOO_LONG"),
        ({"sender_name": "Evil\r\nBcc: x@example.com"}, "s.senderName", "INVALID_CHARACTERS"),
        ({"sender_name": ""}, "s.senderName", "REQUIRED"),
        ({"smtp_port": 0}, "s.smtpPort", "OUT_OF_RANGE"),
        ({"smtp_port": 65536}, "s.smtpPort", "OUT_OF_RANGE"),
        ({"smtp_port": "25"}, "s.smtpPort", "INVALID_TYPE"),
        ({"smtp_host": "bad_host!"}, "s.smtpHost", "INVALID_HOST"),
        ({"smtp_host": "-leading.example.com"}, "s.smtpHost", "INVALID_HOST"),
        ({"smtp_host": "a" * 64 + ".example.com"}, "s.smtpHost", "INVALID_HOST"),
        ({"smtp_host": "999.1.1.1"}, "s.smtpHost", "INVALID_HOST"),
        ({"tls_mode": "SSLv3"}, "s.tlsMode", "INVALID_CHOICE"),
        ({"max_connections": 0}, "s.maxConnections", "OUT_OF_RANGE"),
        ({"max_connections": 101}, "s.maxConnections", "OUT_OF_RANGE"),
        ({"execution_field": "personalEmail..address"}, "s.executionField", "INVALID_FORMAT"),
        ({"retry_period_minutes": 5041}, "s.retryPeriodMinutes", "OUT_OF_RANGE"),
        ({"retry_period_minutes": 359}, "s.retryPeriodMinutes", "OUT_OF_RANGE"),
        ({"smtp_username": "u"}, "s.smtpPassword", "REQUIRED"),
        ({"sms_sender": "+1"}, "s.smsSender", "UNKNOWN_FIELD"),
    ],
)
def test_bad_email_settings(change: dict, field: str, code: str) -> None:
    assert problems(Channel.EMAIL, {**EMAIL, **change}) == {field: code}


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "smtp.example.com", "bücher.example", "mx1."])
def test_hosts_accepted(host: str) -> None:
    assert problems(Channel.EMAIL, {**EMAIL, "smtp_host": host}) == {}


def test_retry_period_bounds_depend_on_category() -> None:
    # AJO: marketing at least 6 h, transactional at least 10 min, both at most 84 h.
    marketing, transactional = PresetCategory.MARKETING, PresetCategory.TRANSACTIONAL
    assert problems(Channel.EMAIL, {**EMAIL, "retry_period_minutes": 360}, category=marketing) == {}
    assert problems(Channel.EMAIL, {**EMAIL, "retry_period_minutes": 10}, category=transactional) == {}
    assert problems(Channel.EMAIL, {**EMAIL, "retry_period_minutes": 9}, category=transactional) == {
        "s.retryPeriodMinutes": "OUT_OF_RANGE"
    }
    assert problems(Channel.EMAIL, {**EMAIL, "retry_period_minutes": 10}, category=marketing) == {
        "s.retryPeriodMinutes": "OUT_OF_RANGE"
    }


def test_password_without_username_is_refused() -> None:
    assert problems(Channel.EMAIL, EMAIL, {"smtp_password": "pw"}) == {"s.smtpUsername": "REQUIRED"}
    assert problems(Channel.EMAIL, {**EMAIL, "smtp_username": "u"}, {"smtp_password": "pw"}) == {}
    assert problems(Channel.EMAIL, {**EMAIL, "smtp_username": "u"}, {"smtp_password": "p" * 1025}) == {
        "s.smtpPassword": "TOO_LONG"
    }


@pytest.mark.parametrize(
    ("change", "secrets", "field", "code"),
    [
        ({"sender": "12345"}, {"auth_token": "t"}, "s.sender", "INVALID_FORMAT"),
        ({"sender": "TooLongSender1"}, {"auth_token": "t"}, "s.sender", "INVALID_FORMAT"),
        (
            {"provider_base_url": "ftp://x.example.com"},
            {"auth_token": "t"},
            "s.providerBaseUrl",
            "INVALID_URL",
        ),
        (
            {"provider_base_url": "https://u:p@x.example.com"},
            {"auth_token": "t"},
            "s.providerBaseUrl",
            "INVALID_URL",
        ),
        (
            {"provider_base_url": "https://x.example.com:99999"},
            {"auth_token": "t"},
            "s.providerBaseUrl",
            "INVALID_URL",
        ),
        (
            {"provider_base_url": "https://x.example.com/?a=1"},
            {"auth_token": "t"},
            "s.providerBaseUrl",
            "INVALID_URL",
        ),
        ({"account_sid": "AC 1"}, {"auth_token": "t"}, "s.accountSid", "INVALID_FORMAT"),
        ({}, {}, "s.authToken", "REQUIRED"),
    ],
)
def test_bad_sms_settings(change: dict, secrets: dict, field: str, code: str) -> None:
    assert problems(Channel.SMS, {**SMS, **change}, secrets) == {field: code}


def test_alphanumeric_sms_sender_is_accepted() -> None:
    assert problems(Channel.SMS, {**SMS, "sender": "ACME"}, {"auth_token": "t"}) == {}


@pytest.mark.parametrize(
    ("change", "secrets", "field", "code"),
    [
        ({"platforms": []}, {"service_account_json": SERVICE_ACCOUNT}, "s.platforms", "REQUIRED"),
        (
            {"platforms": ["IOS", "IOS"]},
            {"service_account_json": SERVICE_ACCOUNT},
            "s.platforms",
            "INVALID_CHOICE",
        ),
        (
            {"fcm_project_id": "Bad_Project"},
            {"service_account_json": SERVICE_ACCOUNT},
            "s.fcmProjectId",
            "INVALID_FORMAT",
        ),
        ({}, {"service_account_json": "{not json"}, "s.serviceAccountJson", "INVALID_SERVICE_ACCOUNT"),
        ({}, {"service_account_json": '{"type": "user"}'}, "s.serviceAccountJson", "INVALID_SERVICE_ACCOUNT"),
        ({}, {"service_account_json": "x" * 20000}, "s.serviceAccountJson", "TOO_LONG"),
        ({}, {}, "s.serviceAccountJson", "REQUIRED"),
    ],
)
def test_bad_push_settings(change: dict, secrets: dict, field: str, code: str) -> None:
    assert problems(Channel.PUSH, {**PUSH, **change}, secrets) == {field: code}


def test_service_account_problems_never_echo_the_key() -> None:
    secret = '{"type": "service_account", "client_email": "a@b.example", "private_key": "TOPSECRET"}'
    found = validate_settings(
        Channel.PUSH, PresetCategory.MARKETING, PUSH, {"service_account_json": secret}, prefix="s"
    )
    assert found and all("TOPSECRET" not in p.message for p in found)


def test_settings_of_another_channel() -> None:
    assert problems(Channel.IN_APP, EMAIL)["s.senderName"] == "UNKNOWN_FIELD"
    mismatch = channel_mismatch(Channel.EMAIL, Channel.SMS, "input.settings")
    assert [(p.field, p.code) for p in mismatch] == [("input.settings.sms", "CHANNEL_MISMATCH")]
    assert channel_mismatch(Channel.SMS, Channel.SMS, "input.settings") == []


@pytest.mark.parametrize(
    ("status", "update_status", "expected"),
    [
        (PresetStatus.DRAFT, None, {PresetAction.UPDATE, PresetAction.VALIDATE, PresetAction.DELETE}),
        (PresetStatus.FAILED, None, {PresetAction.UPDATE, PresetAction.VALIDATE, PresetAction.DELETE}),
        (PresetStatus.PROCESSING, None, {PresetAction.VALIDATE}),
        (PresetStatus.ACTIVE, None, {PresetAction.UPDATE, PresetAction.DEACTIVATE}),
        (PresetStatus.ACTIVE, PresetUpdateStatus.FAILED, {PresetAction.UPDATE, PresetAction.DEACTIVATE}),
        (PresetStatus.ACTIVE, PresetUpdateStatus.PROCESSING, {PresetAction.VALIDATE}),
        (PresetStatus.DEACTIVATED, None, {PresetAction.ACTIVATE, PresetAction.DELETE}),
    ],
)
def test_allowed_actions(status, update_status, expected) -> None:
    assert set(allowed_actions(status, update_status)) == expected


def test_secret_box_round_trip_and_binding() -> None:
    box = SecretBox("k" * 40)
    sealed = box.seal({"smtp_password": "hunter2"}, sandbox_id=7)
    assert sealed is not None and "hunter2" not in sealed
    assert box.open(sealed, sandbox_id=7) == {"smtp_password": "hunter2"}
    # A fresh nonce each time: equal secrets do not give equal blobs.
    assert box.seal({"smtp_password": "hunter2"}, sandbox_id=7) != sealed
    assert box.seal({}, sandbox_id=7) is None and box.open(None, sandbox_id=7) == {}
    with pytest.raises(SecretsUnreadableError):
        box.open(sealed, sandbox_id=8)  # copied into another sandbox's row
    with pytest.raises(SecretsUnreadableError):
        SecretBox("another-key" * 4).open(sealed, sandbox_id=7)
    with pytest.raises(SecretsUnreadableError):
        box.open(sealed[:-4] + "AAAA", sandbox_id=7)
    assert "k" * 10 not in repr(box)


MESSAGING_SERVICE = "MG" + "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # A Messaging Service alone picks the sender; with a sender, that number of its pool.
        ({"sender": None, "messaging_service_sid": MESSAGING_SERVICE}, {}),
        ({"messaging_service_sid": MESSAGING_SERVICE}, {}),
        ({"sender": None}, {"s.sender": "REQUIRED"}),
        ({"messaging_service_sid": "MG123"}, {"s.messagingServiceSid": "INVALID_FORMAT"}),
    ],
)
def test_sms_messaging_service(change: dict, expected: dict) -> None:
    settings = {k: v for k, v in {**SMS, **change}.items() if v is not None}
    assert problems(Channel.SMS, settings, {"auth_token": "t"}) == expected
