"""GraphQL output types of message presets. Secrets never appear: only whether each is set."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

import strawberry
from strawberry import relay

from models.presets.preset import MessagePreset as MessagePresetModel
from models.presets.rules import Channel as ChannelEnum
from models.presets.rules import CheckCode as CheckCodeEnum
from models.presets.rules import PresetAction as PresetActionEnum
from models.presets.rules import PresetStatus as PresetStatusEnum
from models.presets.rules import PresetUpdateStatus as PresetUpdateStatusEnum
from models.presets.rules import PushPlatform as PushPlatformEnum
from models.presets.rules import TlsMode as TlsModeEnum
from models.presets.rules import allowed_actions
from resolvers.errors import Error
from resolvers.nodes import SandboxNode
from resolvers.projection import Projection
from resolvers.vocabulary import Category, Channel, described_enum

MessageChannel = Channel
PresetCategory = Category
MessagePresetStatus = described_enum(
    PresetStatusEnum,
    name="MessagePresetStatus",
    description="DRAFT → PROCESSING (provider checks running) → ACTIVE | FAILED; ACTIVE ↔ DEACTIVATED.",
)
PresetUpdateStatus = described_enum(
    PresetUpdateStatusEnum,
    description="State of an edit to an ACTIVE preset; the previous settings stay in force until it passes.",
)
PresetAction = described_enum(PresetActionEnum, description="An action on a preset.")
SmtpTlsMode = described_enum(
    TlsModeEnum,
    name="SmtpTlsMode",
    description="NONE: plain SMTP; STARTTLS: upgrade after EHLO (required); TLS: implicit TLS from the start.",
)
PushPlatform = described_enum(PushPlatformEnum, description="A mobile platform push messages target.")
PresetCheckCode = described_enum(
    CheckCodeEnum, name="PresetCheckCode", description="Outcome of one provider check: OK or why it failed."
)


@strawberry.type(description="Email settings: sender, routing, and the SMTP connection. The password is write-only.")
class EmailPresetSettings:
    sender_name: str = strawberry.field(description="Display name of the sender.")
    sender_address: str = strawberry.field(description="Address messages are sent from.")
    reply_to_name: str | None = strawberry.field(description="Display name for replies.")
    reply_to_address: str | None = strawberry.field(description="Address replies go to.")
    error_address: str | None = strawberry.field(description="Address bounces go to (envelope sender).")
    bcc_address: str | None = strawberry.field(description="Address that receives a blind copy of each message.")
    list_unsubscribe: bool = strawberry.field(description="Add List-Unsubscribe headers.")
    execution_field: str = strawberry.field(
        description="Profile attribute path holding the address; the Email identity is the fallback."
    )
    smtp_host: str = strawberry.field(description="SMTP server host name or IP address.")
    smtp_port: int = strawberry.field(description="SMTP server port.")
    tls_mode: SmtpTlsMode = strawberry.field(description="How the connection is encrypted.")
    smtp_username: str | None = strawberry.field(description="User name for SMTP AUTH, if any.")
    smtp_password_set: bool = strawberry.field(description="A password is stored (it is never returned).")
    max_connections: int = strawberry.field(description="Concurrent SMTP connections at most.")
    retry_period_minutes: int = strawberry.field(description="How long temporary failures are retried.")
    ses_topic_arn: str | None = strawberry.field(description="SNS topic accepted for Amazon SES feedback.")
    sendgrid_webhook_public_key_set: bool = strawberry.field(
        description="A SendGrid Event Webhook verification key is stored (it is never returned)."
    )
    mailgun_webhook_signing_key_set: bool = strawberry.field(
        description="A Mailgun webhook signing key is stored (it is never returned)."
    )
    postmark_webhook_username: str | None = strawberry.field(description="Postmark webhook basic-auth user name.")
    postmark_webhook_password_set: bool = strawberry.field(
        description="A Postmark webhook password is stored (it is never returned)."
    )


@strawberry.type(description="SMS settings for a Twilio-style messages API. The auth token is write-only.")
class SmsPresetSettings:
    sender: str | None = strawberry.field(description="Sender number (E.164) or alphanumeric sender id.")
    messaging_service_sid: str | None = strawberry.field(description="Twilio Messaging Service SID, if any.")
    provider_base_url: str = strawberry.field(description="Base URL of the provider's API.")
    account_sid: str = strawberry.field(description="Provider account id (the API user name).")
    auth_token_set: bool = strawberry.field(description="An auth token is stored (it is never returned).")
    execution_field: str = strawberry.field(
        description="Profile attribute path holding the number; the Phone identity is the fallback."
    )


@strawberry.type(description="Push settings for FCM HTTP v1. The service-account key is write-only.")
class PushPresetSettings:
    platforms: list[PushPlatform] = strawberry.field(description="Platforms the app runs on.")
    app_id: str = strawberry.field(description="Application id, e.g. `com.example.app`.")
    fcm_project_id: str = strawberry.field(description="Firebase project id.")
    provider_base_url: str = strawberry.field(description="Base URL of the FCM API.")
    service_account_set: bool = strawberry.field(description="A service-account key is stored (never returned).")


@strawberry.type(description="In-app settings: messages land in Herald's inbox for this app.")
class InAppPresetSettings:
    app_id: str = strawberry.field(description="Application id, e.g. `com.example.app`.")


PresetSettings = Annotated[
    EmailPresetSettings | SmsPresetSettings | PushPresetSettings | InAppPresetSettings,
    strawberry.union("PresetSettings", description="The settings of a preset, by channel."),
]


def settings_type(channel: ChannelEnum, values: dict[str, Any], secret_names: list[str]) -> Any:
    names = set(secret_names or [])
    if channel is ChannelEnum.EMAIL:
        return EmailPresetSettings(
            sender_name=values.get("sender_name", ""),
            sender_address=values.get("sender_address", ""),
            reply_to_name=values.get("reply_to_name"),
            reply_to_address=values.get("reply_to_address"),
            error_address=values.get("error_address"),
            bcc_address=values.get("bcc_address"),
            list_unsubscribe=values.get("list_unsubscribe", True),
            execution_field=values.get("execution_field", ""),
            smtp_host=values.get("smtp_host", ""),
            smtp_port=values.get("smtp_port", 0),
            tls_mode=TlsModeEnum(values.get("tls_mode", "STARTTLS")),
            smtp_username=values.get("smtp_username"),
            smtp_password_set="smtp_password" in names,
            max_connections=values.get("max_connections", 0),
            retry_period_minutes=values.get("retry_period_minutes", 0),
            ses_topic_arn=values.get("ses_topic_arn"),
            sendgrid_webhook_public_key_set="sendgrid_webhook_public_key" in names,
            mailgun_webhook_signing_key_set="mailgun_webhook_signing_key" in names,
            postmark_webhook_username=values.get("postmark_webhook_username"),
            postmark_webhook_password_set="postmark_webhook_password" in names,
        )
    if channel is ChannelEnum.SMS:
        return SmsPresetSettings(
            sender=values.get("sender"),
            messaging_service_sid=values.get("messaging_service_sid"),
            provider_base_url=values.get("provider_base_url", ""),
            account_sid=values.get("account_sid", ""),
            auth_token_set="auth_token" in names,
            execution_field=values.get("execution_field", ""),
        )
    if channel is ChannelEnum.PUSH:
        return PushPresetSettings(
            platforms=[PushPlatformEnum(p) for p in values.get("platforms", [])],
            app_id=values.get("app_id", ""),
            fcm_project_id=values.get("fcm_project_id", ""),
            provider_base_url=values.get("provider_base_url", ""),
            service_account_set="service_account_json" in names,
        )
    return InAppPresetSettings(app_id=values.get("app_id", ""))


@strawberry.type(description="One provider check of a validation.")
class PresetCheck:
    check: str = strawberry.field(description="Which check, e.g. `smtp.connect`, `smtp.auth`, `sms.reachable`.")
    ok: bool = strawberry.field(description="The check passed.")
    code: PresetCheckCode = strawberry.field(description="OK, or the reason it failed.")
    message: str = strawberry.field(description="What happened, for a person to read.")
    duration_ms: int = strawberry.field(description="How long the check took, in milliseconds.")

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Self:
        return cls(
            check=value["check"],
            ok=value["ok"],
            code=CheckCodeEnum(value["code"]),
            message=value["message"],
            duration_ms=value.get("durationMs", 0),
        )


@strawberry.type(
    description="A message preset (channel surface): the technical settings a campaign's messages are sent "
    "with. Secrets are write-only."
)
class MessagePreset(SandboxNode):
    model = MessagePresetModel

    pk: relay.NodeID[int]
    name: str = strawberry.field(description="Unique in the sandbox; read-only once ACTIVE.")
    description: str = strawberry.field(description="Free text.")
    channel: MessageChannel = strawberry.field(description="The channel; read-only once ACTIVE.")
    category: PresetCategory = strawberry.field(description="MARKETING or TRANSACTIONAL.")
    status: MessagePresetStatus = strawberry.field(description="Lifecycle status.")
    update_status: PresetUpdateStatus | None = strawberry.field(
        description="For an ACTIVE preset whose settings were edited: the edit's validation state."
    )
    settings: PresetSettings = strawberry.field(description="The settings in force.")
    pending_settings: PresetSettings | None = strawberry.field(
        description="Edited settings of an ACTIVE preset, waiting for validation before they apply."
    )
    checks: list[PresetCheck] = strawberry.field(description="The checks of the last validation.")
    validated_at: datetime | None = strawberry.field(description="When the last validation finished.")
    version: int = strawberry.field(description="Increments on every change (optimistic concurrency).")
    created_at: datetime = strawberry.field(description="When the preset was created.")
    updated_at: datetime = strawberry.field(description="When the preset last changed.")

    @strawberry.field(description="The checks of the last validation that failed.")
    def failed_checks(self) -> list[PresetCheck]:
        return [check for check in self.checks if not check.ok]

    @strawberry.field(description="Which actions the preset's status allows now.")
    def available_actions(self) -> list[PresetAction]:
        return allowed_actions(self.status, self.update_status)

    @classmethod
    def from_model(cls, row: MessagePresetModel) -> Self:
        return cls.from_values(vars(row))

    @classmethod
    def from_values(cls, row: dict[str, Any]) -> Self:
        """From the model's attributes (a list page may read only those its query selects: `projection`);
        an attribute not read is None, and what is built from it is not built."""
        get = row.get
        channel = get("channel")
        pending = None
        if get("pending_settings") is not None:
            pending = settings_type(channel, row["pending_settings"], get("pending_secret_names") or [])
        return cls(
            pk=row["id"],
            name=get("name"),
            description=get("description"),
            channel=channel,
            category=get("category"),
            status=get("status"),
            update_status=get("update_status"),
            settings=settings_type(channel, row["settings"], get("secret_names") or []) if "settings" in row else None,
            pending_settings=pending,
            checks=[PresetCheck.from_dict(check) for check in get("checks") or []],
            validated_at=get("validated_at"),
            version=get("version"),
            created_at=get("created_at"),
            updated_at=get("updated_at"),
        )


# The model attributes each field reads (resolvers/projection.py).
MessagePreset.projection = Projection(
    always=("id",),
    reads={
        "id": (),
        "name": ("name",),
        "description": ("description",),
        "channel": ("channel",),
        "category": ("category",),
        "status": ("status",),
        "updateStatus": ("update_status",),
        "settings": ("channel", "settings", "secret_names"),
        "pendingSettings": ("channel", "pending_settings", "pending_secret_names"),
        "checks": ("checks",),
        "failedChecks": ("checks",),
        "availableActions": ("status", "update_status"),
        "validatedAt": ("validated_at",),
        "version": ("version",),
        "createdAt": ("created_at",),
        "updatedAt": ("updated_at",),
    },
)


@strawberry.type(description="The preset is used by campaigns that are not drafts; nothing was changed.")
class PresetInUseError(Error):
    campaigns: list[str] = strawberry.field(description="Names of the campaigns using the preset.")
