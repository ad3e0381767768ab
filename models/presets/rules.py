"""Pure rules for message presets: enums, the status machine and per-channel settings validation.

Imports neither Tortoise nor Strawberry. Settings are plain dicts with snake_case keys (as stored);
problems name the API field in camelCase under the given path prefix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from models.campaigns.rules import Category as _Category
from models.campaigns.rules import Channel as _Channel
from models.egress_rules import EgressPolicy, host_problem, numeric_ipv4

# One vocabulary for presets and campaigns: a preset and its campaign must agree on channel and category.
Channel = _Channel
PresetCategory = _Category


class PresetStatus(StrEnum):
    DRAFT = "DRAFT"
    PROCESSING = "PROCESSING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    DEACTIVATED = "DEACTIVATED"


class PresetUpdateStatus(StrEnum):
    """State of an edit to an ACTIVE preset; the previous settings stay in force meanwhile."""

    PROCESSING = "PROCESSING"
    FAILED = "FAILED"


class PresetAction(StrEnum):
    UPDATE = "UPDATE"
    VALIDATE = "VALIDATE"
    ACTIVATE = "ACTIVATE"
    DEACTIVATE = "DEACTIVATE"
    DELETE = "DELETE"


class TlsMode(StrEnum):
    NONE = "NONE"
    STARTTLS = "STARTTLS"
    TLS = "TLS"


class PushPlatform(StrEnum):
    IOS = "IOS"
    ANDROID = "ANDROID"


class CheckCode(StrEnum):
    """Reason codes of provider checks run by the validation job."""

    OK = "OK"
    TIMEOUT = "TIMEOUT"
    DNS_FAILED = "DNS_FAILED"
    CONNECTION_REFUSED = "CONNECTION_REFUSED"
    CONNECTION_FAILED = "CONNECTION_FAILED"
    PROTOCOL_ERROR = "PROTOCOL_ERROR"
    STARTTLS_UNAVAILABLE = "STARTTLS_UNAVAILABLE"
    TLS_FAILED = "TLS_FAILED"
    AUTH_UNAVAILABLE = "AUTH_UNAVAILABLE"
    AUTH_FAILED = "AUTH_FAILED"
    HTTP_SERVER_ERROR = "HTTP_SERVER_ERROR"
    SECRETS_UNREADABLE = "SECRETS_UNREADABLE"
    ADDRESS_NOT_ALLOWED = "ADDRESS_NOT_ALLOWED"  # refused by the egress policy before any connection
    # Recorded by a run that paused on this preset (models.presets.lifecycle.record_sending_failure).
    PROVIDER_CONFIGURATION = "PROVIDER_CONFIGURATION"
    SENDER_REFUSED = "SENDER_REFUSED"


# Which settings are secrets: write-only in the API, encrypted at rest.
SECRET_FIELDS: dict[Channel, tuple[str, ...]] = {
    # The webhook credentials of the email feedback providers (api/feedback/) are secrets of the email preset.
    Channel.EMAIL: (
        "smtp_password",
        "sendgrid_webhook_public_key",
        "mailgun_webhook_signing_key",
        "postmark_webhook_password",
    ),
    Channel.SMS: ("auth_token",),
    Channel.PUSH: ("service_account_json",),
    Channel.IN_APP: (),
}

DEFAULT_EXECUTION_FIELD = {Channel.EMAIL: "personalEmail.address", Channel.SMS: "mobilePhone.number"}


def execution_path(settings: dict[str, Any] | None, channel: Channel) -> str | None:
    """The profile attribute holding the address for this channel: the preset's execution field, else the default."""
    return (settings or {}).get("execution_field") or DEFAULT_EXECUTION_FIELD.get(channel)


DEFAULT_FCM_BASE_URL = "https://fcm.googleapis.com"

NAME_MAX = 100
DESCRIPTION_MAX = 2000
TEXT_MAX = 100
HOST_MAX = 253
URL_MAX = 2048
SECRET_MAX = 1024
SERVICE_ACCOUNT_MAX = 16 * 1024
MAX_CONNECTIONS_MAX = 100
# AJO: marketing >= 6 h, transactional >= 10 min, both <= 84 h (the default).
RETRY_MINUTES_MIN = {PresetCategory.MARKETING: 6 * 60, PresetCategory.TRANSACTIONAL: 10}
RETRY_MINUTES_MAX = 84 * 60

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,9}$")
HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
ALPHA_SENDER_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
ACCOUNT_SID_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
APP_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
MESSAGING_SERVICE_SID_RE = re.compile(r"^MG[0-9a-fA-F]{32}$")
SNS_TOPIC_ARN_RE = re.compile(r"^arn:aws(-[a-z]+)*:sns:[a-z0-9-]{1,30}:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
FCM_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Problem:
    """A refused input field: API path, stable code, message."""

    field: str
    code: str
    message: str


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# --- status machine --------------------------------------------------------------------------------


def allowed_actions(status: PresetStatus, update_status: PresetUpdateStatus | None) -> list[PresetAction]:
    """What may be done to a preset now. PROCESSING (or an update being checked) locks it."""
    if status is PresetStatus.DRAFT or status is PresetStatus.FAILED:
        return [PresetAction.UPDATE, PresetAction.VALIDATE, PresetAction.DELETE]
    if status is PresetStatus.PROCESSING:
        # Validate again only re-queues the check (recovers a job lost from Redis).
        return [PresetAction.VALIDATE]
    if status is PresetStatus.ACTIVE:
        if update_status is PresetUpdateStatus.PROCESSING:
            return [PresetAction.VALIDATE]
        return [PresetAction.UPDATE, PresetAction.DEACTIVATE]
    return [PresetAction.ACTIVATE, PresetAction.DELETE]  # DEACTIVATED


# --- field rules -----------------------------------------------------------------------------------


class _Checker:
    def __init__(self, prefix: str, egress: EgressPolicy | None = None) -> None:
        self.prefix = prefix
        # Hosts and URLs are checked against the egress policy when one is given.
        self.egress = egress
        self.problems: list[Problem] = []

    def add(self, key: str, code: str, message: str) -> None:
        path = f"{self.prefix}.{camel(key)}" if key else self.prefix
        self.problems.append(Problem(path, code, message))

    def text(self, values: Mapping[str, Any], key: str, *, required: bool, max_len: int = TEXT_MAX) -> str | None:
        value = values.get(key)
        if value is None or value == "":
            if required:
                self.add(key, "REQUIRED", "A value is required.")
            return None
        if not isinstance(value, str):
            self.add(key, "INVALID_TYPE", "Must be a string.")
            return None
        if len(value) > max_len:
            self.add(key, "TOO_LONG", f"At most {max_len} characters.")
            return None
        if CONTROL_RE.search(value):
            self.add(key, "INVALID_CHARACTERS", "Control characters (including line breaks) are not allowed.")
            return None
        return value

    def pattern(
        self,
        values: Mapping[str, Any],
        key: str,
        regex: re.Pattern[str],
        message: str,
        *,
        required: bool,
        max_len: int = TEXT_MAX,
    ) -> str | None:
        value = self.text(values, key, required=required, max_len=max_len)
        if value is not None and not regex.match(value):
            self.add(key, "INVALID_FORMAT", message)
            return None
        return value

    def email(self, values: Mapping[str, Any], key: str, *, required: bool) -> None:
        value = self.text(values, key, required=required, max_len=254)
        if value is None:
            return
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError as error:
            self.add(key, "INVALID_EMAIL", f"Not a valid email address: {error}")

    def integer(self, values: Mapping[str, Any], key: str, low: int, high: int, message: str) -> int | None:
        value = values.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(key, "REQUIRED" if value is None else "INVALID_TYPE", "An integer is required.")
            return None
        if not low <= value <= high:
            self.add(key, "OUT_OF_RANGE", message)
            return None
        return value

    def choice(self, values: Mapping[str, Any], key: str, enum: type[StrEnum]) -> None:
        value = values.get(key)
        if value not in {member.value for member in enum}:
            self.add(key, "INVALID_CHOICE", f"One of {', '.join(m.value for m in enum)}.")

    def boolean(self, values: Mapping[str, Any], key: str) -> None:
        if not isinstance(values.get(key), bool):
            self.add(key, "INVALID_TYPE", "A boolean is required.")

    def host(self, values: Mapping[str, Any], key: str) -> None:
        value = self.text(values, key, required=True, max_len=HOST_MAX)
        if value is not None and not is_valid_host(value):
            self.add(key, "INVALID_HOST", "Not a valid host name or IP address.")
        elif value is not None and self.egress is not None and (refused := host_problem(value, self.egress)):
            self.add(key, *refused)

    def url(self, values: Mapping[str, Any], key: str) -> None:
        value = self.text(values, key, required=True, max_len=URL_MAX)
        if value is None:
            return
        problem = url_problem(value)
        if problem:
            self.add(key, "INVALID_URL", problem)
        elif self.egress is not None and (refused := host_problem(urlsplit(value).hostname or "", self.egress)):
            self.add(key, *refused)

    def unknown_keys(self, values: Mapping[str, Any], allowed: set[str]) -> None:
        for key in values:
            if key not in allowed:
                self.add(key, "UNKNOWN_FIELD", "Not a setting of this channel.")


def is_valid_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    try:
        ascii_host = value.encode("idna").decode("ascii") if not value.isascii() else value
    except UnicodeError:
        return False
    ascii_host = ascii_host.rstrip(".")
    if not ascii_host or len(ascii_host) > HOST_MAX:
        return False
    labels = ascii_host.split(".")
    # A numeric top label would be a malformed IPv4 address, not a name; so is 0x7f.0x1 (inet_aton reads it).
    return (
        all(HOST_LABEL_RE.match(label) for label in labels)
        and not labels[-1].isdigit()
        and numeric_ipv4(ascii_host) is None
    )


def url_problem(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "Not a valid URL (bad port or brackets)."
    if parts.scheme not in {"http", "https"}:
        return "Must be an http:// or https:// URL."
    if parts.username is not None or parts.password is not None:
        return "Credentials belong in the credential fields, not in the URL."
    if not parts.hostname or not is_valid_host(parts.hostname):
        return "The URL needs a valid host."
    if port == 0:
        return "Port must be between 1 and 65535."
    if parts.query or parts.fragment:
        return "A base URL has no query or fragment."
    return None


def validate_name(name: Any, path: str = "input.name") -> list[Problem]:
    checker = _Checker(path)
    value = checker.text({"": name}, "", required=True, max_len=NAME_MAX)
    if value is not None and not NAME_RE.match(value):
        checker.add("", "INVALID_NAME", "Must start with a letter and hold only letters, digits, '_', '.' and '-'.")
    return checker.problems


def validate_description(description: Any, path: str = "input.description") -> list[Problem]:
    if not isinstance(description, str):
        return [Problem(path, "INVALID_TYPE", "Must be a string.")]
    if len(description) > DESCRIPTION_MAX:
        return [Problem(path, "TOO_LONG", f"At most {DESCRIPTION_MAX} characters.")]
    if "\x00" in description:
        return [Problem(path, "INVALID_CHARACTERS", "NUL characters are not allowed.")]
    return []


def channel_mismatch(declared: Channel, given: Channel, path: str) -> list[Problem]:
    if declared is given:
        return []
    return [
        Problem(
            f"{path}.{camel(given.value.lower())}",
            "CHANNEL_MISMATCH",
            f"Settings for {given.value} were given to a {declared.value} preset; "
            f"give `{camel(declared.value.lower())}` settings.",
        )
    ]
