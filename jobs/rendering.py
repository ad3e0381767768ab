"""Rendering a campaign's message for one profile: its templates compiled once per run (runs and proofs)."""

from __future__ import annotations

from typing import Any

from jobs.channels.base import EmailContent, InAppContent, MessageContent, PushContent, SmsContent
from models.campaigns.campaign import Campaign
from models.campaigns.email_html import with_preheader
from models.campaigns.experiments import treatment_content
from models.campaigns.previews import RENDERED_PARTS, render_context
from models.campaigns.rules import Channel
from models.campaigns.templates import CompiledTemplate, TemplateRenderError, parse_template, render


class RenderFailed(Exception):
    pass


class Renderer:
    """The campaign's templates compiled once per run; an experiment's treatments each compiled once, on first use."""

    def __init__(self, campaign: Campaign, treatment: str | None = None) -> None:
        self.campaign = campaign
        self.channel = Channel(campaign.channel)
        self.parts: dict[str, CompiledTemplate] = {}
        self.problem: str | None = None
        self.treatment = treatment
        self.content = campaign.content or {}
        prefix = "content"
        if treatment is not None:
            found = treatment_content(campaign.experiment, treatment)
            if found is None:
                self.problem = f"experiment: no treatment {treatment!r}"
            self.content = found or {}
            prefix = f"treatment {treatment}: content"
        self._variants: dict[str, Renderer] = {}
        for key, (channel_key, part) in RENDERED_PARTS[self.channel.value]:
            source = (self.content.get(channel_key) or {}).get(part)
            if not source:
                continue
            compiled = parse_template(source, f"{prefix}.{channel_key}.{part}")
            if not isinstance(compiled, CompiledTemplate):
                self.problem = f"{prefix}.{channel_key}.{part}: line {compiled.line}: {compiled.message}"
                continue
            self.parts[key] = compiled

    def variant(self, treatment: str | None) -> Renderer:
        """The renderer of a delivery's treatment (None: the campaign's own content)."""
        if treatment is None or treatment == self.treatment:
            return self
        if treatment not in self._variants:
            self._variants[treatment] = Renderer(self.campaign, treatment)
        return self._variants[treatment]

    def render(
        self,
        attributes: dict[str, Any],
        unsubscribe_url: str | None,
        trigger: dict[str, Any] | None = None,
        recipient: dict[str, Any] | None = None,
    ) -> MessageContent:
        if self.problem:
            raise RenderFailed(self.problem)
        context = render_context(self.campaign, attributes, unsubscribe_url or "", trigger, recipient)
        out: dict[str, str] = {}
        for key, compiled in self.parts.items():
            try:
                out[key] = render(compiled, context)
            except TemplateRenderError as exc:
                raise RenderFailed(f"{key}: {exc}") from None
        content = self.content
        if self.channel is Channel.EMAIL:
            return EmailContent(
                subject=out.get("subject", ""),
                html=with_preheader(out.get("html"), out.get("preheader")),
                text=out.get("text"),
                unsubscribe_url=unsubscribe_url,
            )
        if self.channel is Channel.SMS:
            return SmsContent(body=out.get("text", ""))
        if self.channel is Channel.PUSH:
            push = content.get("push") or {}
            data = {str(k): str(v) for k, v in (push.get("customData") or {}).items()}
            if push.get("deepLink"):
                data["deepLink"] = push["deepLink"]
            return PushContent(title=out.get("title", ""), body=out.get("body", ""), data=data)
        in_app = content.get("inApp") or {}
        return InAppContent(
            title=out.get("title", ""), body=out.get("body", ""), data={"buttons": in_app.get("buttons") or []}
        )
