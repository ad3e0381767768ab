"""GraphQL inputs of message presets: typed settings per channel, one of them per request."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

import strawberry

from models.presets.actions import SettingsChange
from models.presets.rules import DEFAULT_EXECUTION_FIELD, DEFAULT_FCM_BASE_URL, RETRY_MINUTES_MAX, SECRET_FIELDS
from models.presets.rules import Channel as ChannelEnum
from models.presets.rules import PresetCategory as PresetCategoryEnum
from models.presets.rules import TlsMode as TlsModeEnum
from resolvers.presets.types import MessageChannel, PresetCategory, PushPlatform, SmtpTlsMode

SECRET_NOTE = "Write-only: omit to keep the stored value, null to clear it."


@strawberry.input(description="Email settings. Every address is checked; the SMTP connection is tried on validation.")
class EmailPresetSettingsInput:
    sender_name: str = strawberry.field(description="Display name of the sender (at most 100 characters).")
    sender_address: str = strawberry.field(description="Address messages are sent from.")
    reply_to_name: str | None = strawberry.field(default=None, description="Display name for replies.")
    reply_to_address: str | None = strawberry.field(default=None, description="Address replies go to.")
    error_address: str | None = strawberry.field(default=None, description="Address bounces go to.")
    bcc_address: str | None = strawberry.field(default=None, description="Blind-copy address for every message.")
    list_unsubscribe: bool = strawberry.field(default=True, description="Add List-Unsubscribe headers.")
    execution_field: str = strawberry.field(
        default=DEFAULT_EXECUTION_FIELD[ChannelEnum.EMAIL],
        description="Profile attribute path holding the address; the Email identity is the fallback.",
    )
    smtp_host: str = strawberry.field(description="SMTP server host name or IP address.")
    smtp_port: int = strawberry.field(default=587, description="SMTP server port, 1-65535.")
    tls_mode: SmtpTlsMode = strawberry.field(default=TlsModeEnum.STARTTLS, description="How to encrypt.")
    smtp_username: str | None = strawberry.field(default=None, description="User name for SMTP AUTH, if any.")
    smtp_password: strawberry.Maybe[str | None] = strawberry.field(description=f"Password for SMTP AUTH. {SECRET_NOTE}")
    max_connections: int = strawberry.field(default=10, description="Concurrent SMTP connections, 1-100.")
    retry_period_minutes: int = strawberry.field(
        default=RETRY_MINUTES_MAX,
        description="How long temporary failures are retried: marketing 360-5040 (6-84 h), "
        "transactional 10-5040 minutes.",
    )
    ses_topic_arn: str | None = strawberry.field(
        default=None,
        description="Amazon SES feedback: the SNS topic whose signed notifications "
        "`/webhooks/email/{preset}/ses` accepts (others are refused).",
    )
    sendgrid_webhook_public_key: strawberry.Maybe[str | None] = strawberry.field(
        description=f"SendGrid Event Webhook verification key (base64 ECDSA public key). {SECRET_NOTE}"
    )
    mailgun_webhook_signing_key: strawberry.Maybe[str | None] = strawberry.field(
        description=f"Mailgun HTTP webhook signing key. {SECRET_NOTE}"
    )
    postmark_webhook_username: str | None = strawberry.field(
        default=None, description="Postmark webhook basic-auth user name."
    )
    postmark_webhook_password: strawberry.Maybe[str | None] = strawberry.field(
        description=f"Postmark webhook basic-auth password. {SECRET_NOTE}"
    )


@strawberry.input(description="SMS settings for a Twilio-style messages API.")
class SmsPresetSettingsInput:
    sender: str | None = strawberry.field(
        default=None,
        description="Sender number (E.164) or alphanumeric sender id (<= 11); required without a messaging service.",
    )
    messaging_service_sid: str | None = strawberry.field(
        default=None,
        description="Twilio Messaging Service SID (MG…): the service picks the sender from its pool "
        "(with `sender`, that number of the pool).",
    )
    provider_base_url: str = strawberry.field(description="Base URL of the provider's API (http or https).")
    account_sid: str = strawberry.field(description="Provider account id (the API user name).")
    auth_token: strawberry.Maybe[str | None] = strawberry.field(description=f"Provider auth token. {SECRET_NOTE}")
    execution_field: str = strawberry.field(
        default=DEFAULT_EXECUTION_FIELD[ChannelEnum.SMS],
        description="Profile attribute path holding the number; the Phone identity is the fallback.",
    )


@strawberry.input(description="Push settings for FCM HTTP v1.")
class PushPresetSettingsInput:
    platforms: list[PushPlatform] = strawberry.field(description="At least one platform.")
    app_id: str = strawberry.field(description="Application id, e.g. `com.example.app`.")
    fcm_project_id: str = strawberry.field(description="Firebase project id.")
    provider_base_url: str = strawberry.field(default=DEFAULT_FCM_BASE_URL, description="Base URL of the FCM API.")
    service_account_json: strawberry.Maybe[str | None] = strawberry.field(
        description=f"The service-account key file (JSON). {SECRET_NOTE}"
    )


@strawberry.input(description="In-app settings.")
class InAppPresetSettingsInput:
    app_id: str = strawberry.field(description="Application id, e.g. `com.example.app`.")


@strawberry.input(one_of=True, description="The settings of exactly one channel; it must match the preset's.")
class PresetSettingsInput:
    email: EmailPresetSettingsInput | None = strawberry.field(default=strawberry.UNSET, description="Email.")
    sms: SmsPresetSettingsInput | None = strawberry.field(default=strawberry.UNSET, description="SMS.")
    push: PushPresetSettingsInput | None = strawberry.field(default=strawberry.UNSET, description="Push.")
    in_app: InAppPresetSettingsInput | None = strawberry.field(default=strawberry.UNSET, description="In-app.")


_BY_KEY = (
    ("email", ChannelEnum.EMAIL),
    ("sms", ChannelEnum.SMS),
    ("push", ChannelEnum.PUSH),
    ("in_app", ChannelEnum.IN_APP),
)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def settings_change(value: PresetSettingsInput) -> SettingsChange:
    """Split the one-of input into plain settings and the secrets patch (absent keys keep stored secrets)."""
    given = [(channel, getattr(value, key)) for key, channel in _BY_KEY]
    # The @oneOf directive guarantees exactly one.
    channel, chosen = next((c, v) for c, v in given if v is not None and v is not strawberry.UNSET)
    settings: dict[str, Any] = {}
    secrets_patch: dict[str, str | None] = {}
    for field in dataclasses.fields(chosen):
        item = getattr(chosen, field.name)
        if field.name in SECRET_FIELDS[channel]:
            if item is not None and item is not strawberry.UNSET:  # Some(value) or Some(None)
                secrets_patch[field.name] = item.value
        elif item is not None and item is not strawberry.UNSET:
            settings[field.name] = _plain(item)
    return SettingsChange(channel=channel, settings=settings, secrets_patch=secrets_patch)


@strawberry.input(description="A new preset; it starts as DRAFT. Submit it with `messagePresetValidate`.")
class MessagePresetCreateInput:
    name: str = strawberry.field(description="Starts with a letter; letters, digits, `_ . -`; unique here.")
    description: str = strawberry.field(default="", description="Free text (at most 2000 characters).")
    channel: MessageChannel = strawberry.field(description="The channel; the settings must be of this channel.")
    category: PresetCategory = strawberry.field(
        default=PresetCategoryEnum.MARKETING, description="MARKETING or TRANSACTIONAL."
    )
    settings: PresetSettingsInput = strawberry.field(description="The channel's settings.")


@strawberry.input(
    description="Changes to a preset; omitted fields stay. On an ACTIVE preset name and channel are "
    "read-only, and new settings are validated while the previous ones stay in force."
)
class MessagePresetUpdateInput:
    id: strawberry.ID = strawberry.field(description="The preset.")
    version: int | None = strawberry.field(
        default=None, description="The version you read; a different current version is refused (CONFLICT)."
    )
    name: strawberry.Maybe[str] = strawberry.field(description="New name.")
    description: strawberry.Maybe[str] = strawberry.field(description="New description.")
    category: strawberry.Maybe[PresetCategory] = strawberry.field(description="New category.")
    channel: strawberry.Maybe[MessageChannel] = strawberry.field(
        description="New channel (DRAFT or FAILED only); needs `settings` of that channel."
    )
    settings: strawberry.Maybe[PresetSettingsInput] = strawberry.field(
        description="The complete new settings of the channel; secrets omitted are kept."
    )


@strawberry.input(description="Submit a preset for validation (the provider checks run in the background).")
class MessagePresetValidateInput:
    id: strawberry.ID = strawberry.field(description="The preset.")


@strawberry.input(description="Put a DEACTIVATED preset back into service.")
class MessagePresetActivateInput:
    id: strawberry.ID = strawberry.field(description="The preset.")


@strawberry.input(description="Take an ACTIVE preset out of service.")
class MessagePresetDeactivateInput:
    id: strawberry.ID = strawberry.field(description="The preset.")


@strawberry.input(description="Delete a DRAFT, FAILED or DEACTIVATED preset.")
class MessagePresetDeleteInput:
    id: strawberry.ID = strawberry.field(description="The preset.")
