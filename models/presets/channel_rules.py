"""Pure per-channel validation of preset settings (email, SMS, push, in-app), on the field rules of
models.presets.rules. Imports neither Tortoise nor Strawberry."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from models.egress_rules import EgressPolicy, host_problem
from models.presets.rules import (
    ACCOUNT_SID_RE,
    ALPHA_SENDER_RE,
    APP_ID_RE,
    E164_RE,
    FCM_PROJECT_RE,
    MAX_CONNECTIONS_MAX,
    MESSAGING_SERVICE_SID_RE,
    PATH_RE,
    RETRY_MINUTES_MAX,
    RETRY_MINUTES_MIN,
    SECRET_FIELDS,
    SECRET_MAX,
    SERVICE_ACCOUNT_MAX,
    SNS_TOPIC_ARN_RE,
    Channel,
    PresetCategory,
    Problem,
    PushPlatform,
    TlsMode,
    _Checker,
    url_problem,
)


def validate_settings(
    channel: Channel,
    category: PresetCategory,
    settings: Mapping[str, Any],
    secrets: Mapping[str, str | None],
    *,
    prefix: str,
    egress: EgressPolicy | None = None,
) -> list[Problem]:
    """Check a channel's settings together with its secrets as they will be stored (after the patch);
    hosts and provider URLs also against `egress` when given."""
    checker = _Checker(prefix, egress)
    checker.unknown_keys(settings, set(_SETTINGS_KEYS[channel]))
    checker.unknown_keys({k: v for k, v in secrets.items() if v is not None}, set(SECRET_FIELDS[channel]))
    _CHANNEL_RULES[channel](checker, category, settings, secrets)
    return checker.problems


def _execution_field(checker: _Checker, settings: Mapping[str, Any]) -> None:
    checker.pattern(
        settings,
        "execution_field",
        PATH_RE,
        "A profile attribute path such as `personalEmail.address` (at most 10 segments).",
        required=True,
        max_len=200,
    )


def _email_rules(
    checker: _Checker,
    category: PresetCategory,
    settings: Mapping[str, Any],
    secrets: Mapping[str, str | None],
) -> None:
    checker.text(settings, "sender_name", required=True)
    checker.email(settings, "sender_address", required=True)
    checker.text(settings, "reply_to_name", required=False)
    checker.email(settings, "reply_to_address", required=False)
    checker.email(settings, "error_address", required=False)
    checker.email(settings, "bcc_address", required=False)
    checker.boolean(settings, "list_unsubscribe")
    _execution_field(checker, settings)
    checker.host(settings, "smtp_host")
    checker.integer(settings, "smtp_port", 1, 65535, "Port must be between 1 and 65535.")
    checker.choice(settings, "tls_mode", TlsMode)
    username = checker.text(settings, "smtp_username", required=False, max_len=256)
    checker.integer(
        settings,
        "max_connections",
        1,
        MAX_CONNECTIONS_MAX,
        f"Between 1 and {MAX_CONNECTIONS_MAX} connections.",
    )
    low = RETRY_MINUTES_MIN[category]
    checker.integer(
        settings,
        "retry_period_minutes",
        low,
        RETRY_MINUTES_MAX,
        f"A {category.value.lower()} preset retries for {low} to {RETRY_MINUTES_MAX} minutes "
        f"({_hours(low)} to {_hours(RETRY_MINUTES_MAX)}).",
    )
    password = _secret(checker, secrets, "smtp_password", SECRET_MAX)
    if username and password is None:
        checker.add("smtp_password", "REQUIRED", "A password is required when a username is set.")
    if password and not username:
        checker.add("smtp_username", "REQUIRED", "A username is required when a password is set.")
    _feedback_rules(checker, settings, secrets)


def _feedback_rules(checker: _Checker, settings: Mapping[str, Any], secrets: Mapping[str, str | None]) -> None:
    """Credentials of the provider feedback webhooks; each provider is off until its own are set."""
    checker.pattern(
        settings,
        "ses_topic_arn",
        SNS_TOPIC_ARN_RE,
        "An SNS topic ARN such as `arn:aws:sns:us-east-1:123456789012:ses-feedback`.",
        required=False,
        max_len=400,
    )
    key = _secret(checker, secrets, "sendgrid_webhook_public_key", SECRET_MAX)
    if key and ec_public_key_problem(key):
        checker.add("sendgrid_webhook_public_key", "INVALID_FORMAT", ec_public_key_problem(key) or "")
    _secret(checker, secrets, "mailgun_webhook_signing_key", SECRET_MAX)
    user = checker.text(settings, "postmark_webhook_username", required=False, max_len=256)
    postmark_password = _secret(checker, secrets, "postmark_webhook_password", SECRET_MAX)
    if user and postmark_password is None:
        checker.add("postmark_webhook_password", "REQUIRED", "A password is required when a username is set.")
    if postmark_password and not user:
        checker.add("postmark_webhook_username", "REQUIRED", "A username is required when a password is set.")
    if user and ":" in user:
        checker.add("postmark_webhook_username", "INVALID_CHARACTERS", "Basic auth user names cannot contain ':'.")


def ec_public_key_problem(value: str) -> str | None:
    """Why `value` is not SendGrid's verification key (an ECDSA P-256 public key, base64 DER or PEM)."""
    try:
        load_ec_public_key(value)
    except ValueError:
        return "The Event Webhook verification key as SendGrid shows it: a base64 ECDSA P-256 public key."
    return None


def load_ec_public_key(value: str) -> ec.EllipticCurvePublicKey:
    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise ValueError("not a public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 key")
    return key


def _sms_rules(
    checker: _Checker,
    category: PresetCategory,
    settings: Mapping[str, Any],
    secrets: Mapping[str, str | None],
) -> None:
    checker.pattern(
        settings,
        "messaging_service_sid",
        MESSAGING_SERVICE_SID_RE,
        "A Twilio Messaging Service SID: MG and 32 hexadecimal digits.",
        required=False,
        max_len=34,
    )
    # A Messaging Service picks the sender from its pool; without one the preset names it.
    sender = checker.text(settings, "sender", required=not settings.get("messaging_service_sid"), max_len=16)
    if sender is not None and not (E164_RE.match(sender) or ALPHA_SENDER_RE.match(sender)):
        checker.add(
            "sender",
            "INVALID_FORMAT",
            "An E.164 number (+ and 7-15 digits) or an alphanumeric sender id of at most 11 characters.",
        )
    checker.url(settings, "provider_base_url")
    checker.pattern(settings, "account_sid", ACCOUNT_SID_RE, "Letters, digits, '_' and '-' only.", required=True)
    _execution_field(checker, settings)
    if _secret(checker, secrets, "auth_token", SECRET_MAX) is None:
        checker.add("auth_token", "REQUIRED", "The provider's auth token is required.")


def _push_rules(
    checker: _Checker,
    category: PresetCategory,
    settings: Mapping[str, Any],
    secrets: Mapping[str, str | None],
) -> None:
    platforms = settings.get("platforms")
    valid = {member.value for member in PushPlatform}
    if not isinstance(platforms, list | tuple) or not platforms:
        checker.add("platforms", "REQUIRED", "At least one of IOS, ANDROID.")
    elif any(p not in valid for p in platforms) or len(set(platforms)) != len(platforms):
        checker.add("platforms", "INVALID_CHOICE", "Distinct values among IOS, ANDROID.")
    checker.pattern(
        settings,
        "app_id",
        APP_ID_RE,
        "An application id such as `com.example.app`.",
        required=True,
        max_len=255,
    )
    checker.pattern(
        settings,
        "fcm_project_id",
        FCM_PROJECT_RE,
        "A Firebase project id: 6-30 lower-case letters, digits or '-', starting with a letter.",
        required=True,
        max_len=30,
    )
    checker.url(settings, "provider_base_url")
    account = _secret(checker, secrets, "service_account_json", SERVICE_ACCOUNT_MAX)
    if account is None:
        checker.add("service_account_json", "REQUIRED", "The FCM service-account key (JSON) is required.")
    elif account and (message := service_account_problem(account)) is not None:
        checker.add("service_account_json", "INVALID_SERVICE_ACCOUNT", message)
    elif account and checker.egress is not None:
        # Herald exchanges the key for tokens at its token_uri: the same policy as the provider URL.
        token_uri = json.loads(account).get("token_uri")
        if token_uri is not None and (not isinstance(token_uri, str) or url_problem(token_uri)):
            checker.add("service_account_json", "INVALID_SERVICE_ACCOUNT", 'The "token_uri" is not an http(s) URL.')
        elif token_uri and (refused := host_problem(urlsplit(token_uri).hostname or "", checker.egress)):
            checker.add("service_account_json", *refused)


def _in_app_rules(
    checker: _Checker,
    category: PresetCategory,
    settings: Mapping[str, Any],
    secrets: Mapping[str, str | None],
) -> None:
    checker.pattern(
        settings,
        "app_id",
        APP_ID_RE,
        "An application id such as `com.example.app`.",
        required=True,
        max_len=255,
    )


def service_account_problem(text: str) -> str | None:
    """Never echoes the content: it is a secret."""
    try:
        account = json.loads(text)
    except ValueError:
        return "Not valid JSON."
    if not isinstance(account, dict) or account.get("type") != "service_account":
        return 'A JSON object with "type": "service_account" is required.'
    for key in ("client_email", "private_key"):
        if not isinstance(account.get(key), str) or not account[key]:
            return f'The key "{key}" is missing.'
    if "PRIVATE KEY" not in account["private_key"]:
        return 'The "private_key" is not a PEM private key.'
    return None


def _secret(checker: _Checker, secrets: Mapping[str, str | None], key: str, max_len: int) -> str | None:
    """The secret's value; "" when one was given but refused (so callers add no second problem)."""
    value = secrets.get(key)
    if value is None or value == "":
        return None
    if len(value) > max_len:
        checker.add(key, "TOO_LONG", f"At most {max_len} characters.")
        return ""
    if "\x00" in value:
        checker.add(key, "INVALID_CHARACTERS", "NUL characters are not allowed.")
        return ""
    return value


def _hours(minutes: int) -> str:
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


_SETTINGS_KEYS: dict[Channel, tuple[str, ...]] = {
    Channel.EMAIL: (
        "sender_name",
        "sender_address",
        "reply_to_name",
        "reply_to_address",
        "error_address",
        "bcc_address",
        "list_unsubscribe",
        "execution_field",
        "smtp_host",
        "smtp_port",
        "tls_mode",
        "smtp_username",
        "max_connections",
        "retry_period_minutes",
        "ses_topic_arn",
        "postmark_webhook_username",
    ),
    Channel.SMS: ("sender", "messaging_service_sid", "provider_base_url", "account_sid", "execution_field"),
    Channel.PUSH: ("platforms", "app_id", "fcm_project_id", "provider_base_url"),
    Channel.IN_APP: ("app_id",),
}

_CHANNEL_RULES = {
    Channel.EMAIL: _email_rules,
    Channel.SMS: _sms_rules,
    Channel.PUSH: _push_rules,
    Channel.IN_APP: _in_app_rules,
}
