"""The channel adapter of a campaign's preset (runs and proofs), built from the preset's settings and secrets."""

from __future__ import annotations

from typing import Any

import orjson
from tortoise import connections

from jobs.channels.base import Backoff, ChannelAdapter
from jobs.context import worker_context
from models.campaigns.campaign import Campaign
from models.campaigns.rules import Category, Channel
from models.presets.preset import MessagePreset
from models.presets.secret_box import SecretBox
from models.sql.params import Dialect
from models.sql.reads import dialect_of
from models.tenancy.identity import IdentityNamespace


def build_adapter(
    ctx: dict[str, Any], campaign: Campaign, preset: MessagePreset, namespace: IdentityNamespace
) -> ChannelAdapter:
    from jobs.channels.email import EmailAdapter, EmailSender, SmtpPools, SmtpTransport, TlsMode

    settings = worker_context(ctx).settings
    values = preset.settings or {}
    secrets = SecretBox(settings.secret_key.get_secret_value()).open(preset.secrets, sandbox_id=preset.sandbox_id)
    channel = Channel(campaign.channel)
    backoff = Backoff(base=settings.send_retry_base_seconds)
    if channel is Channel.IN_APP:
        from jobs.channels.inapp import InAppAdapter

        conn = connections.get("default")
        return InAppAdapter(
            conn.execute_query,
            dialect="postgres" if dialect_of() is Dialect.POSTGRES else "sqlite",
            sandbox_id=campaign.sandbox_id,
            namespace=namespace.code,
            campaign_id=campaign.id,
        )
    if channel is Channel.EMAIL:
        transport = SmtpTransport(
            host=values["smtp_host"],
            port=int(values.get("smtp_port") or 25),
            tls=TlsMode(values.get("tls_mode") or "NONE"),
            username=values.get("smtp_username") or None,
            password=secrets.get("smtp_password") or None,
            max_connections=int(values.get("max_connections") or 5),
            egress=settings.egress_policy,
        )
        sender = EmailSender(
            from_address=values["sender_address"],
            from_name=values.get("sender_name"),
            reply_to_address=values.get("reply_to_address"),
            reply_to_name=values.get("reply_to_name"),
            error_address=values.get("error_address"),
            bcc_address=values.get("bcc_address"),
            marketing=Category(campaign.category) is Category.MARKETING,
            list_unsubscribe=bool(values.get("list_unsubscribe", True)),
        )
        pools: SmtpPools = ctx.setdefault("smtp_pools", SmtpPools())
        return EmailAdapter(transport, sender, pool=pools.get(transport), backoff=backoff)
    if channel is Channel.SMS:
        from jobs.channels.sms import SmsAdapter, TwilioConfig

        sender_id = values.get("sender") or ""
        return SmsAdapter(
            TwilioConfig(
                account_sid=values.get("account_sid") or "",
                auth_token=secrets.get("auth_token") or "",
                from_number=sender_id or None,
                messaging_service_sid=values.get("messaging_service_sid") or None,
                base_url=values.get("provider_base_url") or "https://api.twilio.com",
                status_callback=settings.public_url + "/webhooks/sms/twilio",
                timeout=settings.provider_timeout_seconds,
                egress=settings.egress_policy,
            ),
            backoff=backoff,
        )
    from jobs.channels.push import FcmConfig, PushAdapter

    return PushAdapter(
        FcmConfig(
            project_id=values.get("fcm_project_id") or "",
            service_account=orjson.loads(secrets.get("service_account_json") or "{}"),
            base_url=values.get("provider_base_url") or "https://fcm.googleapis.com",
            timeout=settings.provider_timeout_seconds,
            app_id=values.get("app_id") or None,
            platforms=tuple(values.get("platforms") or ()),
            egress=settings.egress_policy,
        ),
        backoff=backoff,
    )
