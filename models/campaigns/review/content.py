"""The message of the campaign's channel: present, within its size limit, and (marketing email) with an opt-out
link."""

from __future__ import annotations

import json
from collections.abc import Iterator

from models.campaigns import email_html
from models.campaigns.review.alerts import Alert, AlertCode, alert, blank
from models.campaigns.review_snapshot import CampaignSnapshot, EmailContent, InAppContent, PushContent
from models.campaigns.rules import Category, Channel
from models.campaigns.templates import CompiledTemplate, parse_template, references

UNSUBSCRIBE_VARIABLE = "context.unsubscribeUrl"


PUSH_PAYLOAD_LIMIT = 4 * 1024


EMAIL_SIZE_LIMIT = 100 * 1024


def check_content(s: CampaignSnapshot) -> Iterator[Alert]:
    c = s.content
    if s.channel is Channel.EMAIL:
        email = c.email or EmailContent()
        if blank(email.subject):
            yield alert(AlertCode.EMAIL_SUBJECT_MISSING, "content.email.subject", "The subject line is missing.")
        if blank(email.html) and blank(email.text):
            yield alert(AlertCode.EMAIL_BODY_MISSING, "content.email.html", "The email has no body.")
        elif blank(email.text):
            yield alert(AlertCode.EMAIL_TEXT_MISSING, "content.email.text", "The text version of the HTML is empty.")
        yield from check_email_html(s, email)
        size = len(email.html.encode()) + len(email.text.encode())
        if size > EMAIL_SIZE_LIMIT:
            yield alert(
                AlertCode.EMAIL_TOO_LARGE,
                "content.email.html",
                f"The email is {size} bytes, over the {EMAIL_SIZE_LIMIT}-byte limit.",
            )
    elif s.channel is Channel.SMS:
        if c.sms is None or blank(c.sms.text):
            yield alert(AlertCode.SMS_TEXT_MISSING, "content.sms.text", "The SMS text is empty.")
    elif s.channel is Channel.PUSH:
        push = c.push or PushContent()
        for name, value in (("title", push.title), ("body", push.body)):
            if blank(value):
                yield alert(AlertCode.PUSH_CONTENT_MISSING, f"content.push.{name}", f"The push {name} is empty.")
        payload = {"title": push.title, "body": push.body, "deepLink": push.deep_link, "data": dict(push.data)}
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        if size > PUSH_PAYLOAD_LIMIT:
            yield alert(
                AlertCode.PUSH_PAYLOAD_TOO_LARGE,
                "content.push",
                f"The push payload is {size} bytes, over the {PUSH_PAYLOAD_LIMIT}-byte limit.",
            )
    elif s.channel is Channel.IN_APP:
        in_app = c.in_app or InAppContent()
        for name, value in (("title", in_app.title), ("body", in_app.body)):
            if blank(value):
                yield alert(AlertCode.IN_APP_CONTENT_MISSING, f"content.inApp.{name}", f"The in-app {name} is empty.")


def check_email_html(s: CampaignSnapshot, email: EmailContent) -> Iterator[Alert]:
    if blank(email.html):
        return
    found = email_html.links(email.html)
    for link in found:
        if link.empty:
            yield alert(
                AlertCode.EMAIL_EMPTY_LINK,
                "content.email.html",
                f"Empty link at line {link.line}, column {link.column}.",
            )
    if s.category is Category.MARKETING and not any(_is_opt_out(link.href) for link in found):
        yield alert(
            AlertCode.OPT_OUT_LINK_MISSING,
            "content.email.html",
            f'A marketing email needs an opt-out link: <a href="{{{{ {UNSUBSCRIBE_VARIABLE} }}}}">.',
        )


def _is_opt_out(href: str | None) -> bool:
    if not href or "{{" not in href:
        return False
    compiled = parse_template(href)
    return isinstance(compiled, CompiledTemplate) and references(compiled, UNSUBSCRIBE_VARIABLE)
