"""The message of a campaign as GraphQL shows it (the campaign's and its versions')."""

from __future__ import annotations

from typing import Any, Self

import strawberry
from strawberry.scalars import JSON


@strawberry.type(description="Email content; texts are Liquid templates (`{{ profile.person.name.firstName }}`).")
class EmailContent:
    subject: str | None = strawberry.field(description="Subject line.")
    preheader: str | None = strawberry.field(description="Preview text.")
    html: str | None = strawberry.field(description="HTML body.")
    text: str | None = strawberry.field(description="Plain-text body.")


@strawberry.type(description="SMS content.")
class SmsContent:
    text: str | None = strawberry.field(description="Message text.")


@strawberry.type(description="Push notification content.")
class PushContent:
    title: str | None = strawberry.field(description="Notification title.")
    body: str | None = strawberry.field(description="Notification body.")
    deep_link: str | None = strawberry.field(description="Opened on tap.")
    custom_data: JSON | None = strawberry.field(description="Key/value data delivered with the notification.")


@strawberry.type(description="A button of an in-app message.")
class InAppButton:
    label: str = strawberry.field(description="Button text.")
    url: str | None = strawberry.field(description="Where it leads.")


@strawberry.type(description="In-app message content.")
class InAppContent:
    title: str | None = strawberry.field(description="Title.")
    body: str | None = strawberry.field(description="Body.")
    buttons: list[InAppButton] = strawberry.field(description="Buttons.")


@strawberry.type(description="The message of a campaign, per channel.")
class CampaignContent:
    email: EmailContent | None = strawberry.field(description="Email content.")
    sms: SmsContent | None = strawberry.field(description="SMS content.")
    push: PushContent | None = strawberry.field(description="Push content.")
    in_app: InAppContent | None = strawberry.field(description="In-app content.")

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Self:
        email, sms, push, in_app = (stored.get(k) for k in ("email", "sms", "push", "inApp"))
        return cls(
            email=EmailContent(**{k: email.get(k) for k in ("subject", "preheader", "html", "text")})
            if email
            else None,
            sms=SmsContent(text=sms.get("text")) if sms else None,
            push=PushContent(
                title=push.get("title"),
                body=push.get("body"),
                deep_link=push.get("deepLink"),
                custom_data=push.get("customData"),
            )
            if push
            else None,
            in_app=InAppContent(
                title=in_app.get("title"),
                body=in_app.get("body"),
                buttons=[InAppButton(label=b["label"], url=b.get("url")) for b in in_app.get("buttons") or []],
            )
            if in_app
            else None,
        )


@strawberry.type(description="Which reactions are tracked.")
class CampaignTracking:
    opens: bool = strawberry.field(description="Email opens.")
    clicks: bool = strawberry.field(description="Link clicks.")


def tracking_from_stored(stored: dict[str, Any]) -> CampaignTracking:
    """Opens and clicks are tracked unless switched off (the sender's defaults)."""
    return CampaignTracking(opens=stored.get("opens", True), clicks=stored.get("clicks", True))
