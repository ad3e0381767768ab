"""Rendering a campaign's message for one profile (campaignPreview; the run executor uses the same context)."""

from __future__ import annotations

from typing import Any

from models.audience.entities import Profile
from models.campaigns.campaign import Campaign
from models.campaigns.email_html import with_preheader
from models.campaigns.templates import CompiledTemplate, TemplateRenderError, parse_template, render

PREVIEW_UNSUBSCRIBE_URL = "https://unsubscribe.invalid/preview"

# (output key, path in stored content) per channel.
RENDERED_PARTS: dict[str, list[tuple[str, tuple[str, str]]]] = {
    "EMAIL": [
        ("subject", ("email", "subject")),
        ("preheader", ("email", "preheader")),
        ("html", ("email", "html")),
        ("text", ("email", "text")),
    ],
    "SMS": [("text", ("sms", "text"))],
    "PUSH": [("title", ("push", "title")), ("body", ("push", "body"))],
    "IN_APP": [("title", ("inApp", "title")), ("body", ("inApp", "body"))],
}


class PreviewError(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def render_context(
    campaign: Campaign,
    profile_attributes: dict[str, Any],
    unsubscribe_url: str,
    trigger: dict[str, Any] | None = None,
    recipient: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What templates read. An API trigger's message also has `context.trigger` (the call's context) and
    `context.recipient` (the recipient's)."""
    context: dict[str, Any] = {"unsubscribeUrl": unsubscribe_url}
    if trigger is not None or recipient is not None:
        context["trigger"] = trigger or {}
        context["recipient"] = recipient or {}
    return {
        "profile": profile_attributes,
        "campaign": {"name": campaign.name, "id": campaign.id},
        "context": context,
    }


def preview_campaign(campaign: Campaign, profile: Profile) -> dict[str, str | None]:
    """Every part of the campaign's channel rendered for `profile`; PreviewError names the failing field."""
    rendered: dict[str, str | None] = {
        "subject": None,
        "preheader": None,
        "html": None,
        "text": None,
        "title": None,
        "body": None,
    }
    context = render_context(campaign, profile.attributes or {}, PREVIEW_UNSUBSCRIBE_URL)
    for key, (channel_key, part) in RENDERED_PARTS.get(campaign.channel.value if campaign.channel else "", []):
        source = ((campaign.content or {}).get(channel_key) or {}).get(part)
        if not source:
            continue
        field = f"content.{channel_key}.{part}"
        compiled = parse_template(source, field)
        if not isinstance(compiled, CompiledTemplate):
            raise PreviewError(field, f"Line {compiled.line}, column {compiled.column}: {compiled.message}")
        try:
            rendered[key] = render(compiled, context)
        except TemplateRenderError as exc:
            raise PreviewError(field, str(exc)) from None
    rendered["html"] = with_preheader(rendered["html"], rendered["preheader"])
    return rendered
