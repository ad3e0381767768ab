from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers.campaigns.enums import CampaignType, Category, Channel, Frequency, Weekday


@strawberry.input(description="The channel and message preset the campaign sends with.")
class CampaignActionInput:
    channel: Channel = strawberry.field(description="Channel of the message.")
    preset_id: strawberry.ID | None = strawberry.field(
        default=None, description="An ACTIVE preset of the same channel and category."
    )


@strawberry.input(description="Email content. Every text may use `{{profile.…}}` personalization.")
class EmailContentInput:
    subject: str | None = strawberry.field(default=None, description="Subject line (required to activate).")
    preheader: str | None = strawberry.field(default=None, description="Preview text shown after the subject.")
    html: str | None = strawberry.field(default=None, description="HTML body (required to activate).")
    text: str | None = strawberry.field(default=None, description="Plain-text body (recommended).")


@strawberry.input(description="SMS content.")
class SmsContentInput:
    text: str | None = strawberry.field(default=None, description="Message text (required to activate).")


@strawberry.input(description="Push notification content.")
class PushContentInput:
    title: str | None = strawberry.field(default=None, description="Notification title.")
    body: str | None = strawberry.field(default=None, description="Notification body.")
    deep_link: str | None = strawberry.field(default=None, description="URL or deep link opened on tap.")
    custom_data: strawberry.scalars.JSON | None = strawberry.field(
        default=None,
        description="Key/value pairs delivered with the notification. Values must be strings (FCM data is "
        "string to string): numbers, booleans and objects are refused, send them as JSON text. Keys `from`, "
        "`message_type`, `google*` and `gcm*` are reserved by FCM.",
    )


@strawberry.input(description="A button of an in-app message.")
class InAppButtonInput:
    label: str = strawberry.field(description="Button text.")
    url: str | None = strawberry.field(default=None, description="Where the button leads.")


@strawberry.input(description="In-app message content.")
class InAppContentInput:
    title: str | None = strawberry.field(default=None, description="Message title.")
    body: str | None = strawberry.field(default=None, description="Message body.")
    buttons: list[InAppButtonInput] | None = strawberry.field(default=None, description="Up to 3 buttons.")


@strawberry.input(description="Content of the campaign's message; only the campaign's channel is used.")
class CampaignContentInput:
    email: EmailContentInput | None = strawberry.field(default=None, description="Email content.")
    sms: SmsContentInput | None = strawberry.field(default=None, description="SMS content.")
    push: PushContentInput | None = strawberry.field(default=None, description="Push content.")
    in_app: InAppContentInput | None = strawberry.field(default=None, description="In-app content.")


@strawberry.input(description="Which recipient reactions are tracked.")
class CampaignTrackingInput:
    opens: bool = strawberry.field(default=True, description="Email opens (a tracking pixel).")
    clicks: bool = strawberry.field(default=True, description="Email and SMS link clicks.")


@strawberry.input(description="Who receives the campaign.")
class CampaignAudienceInput:
    segment_id: strawberry.ID | None = strawberry.field(default=None, description="The audience segment.")
    namespace_code: str | None = strawberry.field(
        default=None, description="Identity namespace (code, e.g. `Email`) identifying the recipients."
    )


@strawberry.input(description="When the campaign runs.")
class CampaignScheduleInput:
    start_at: datetime | None = strawberry.field(default=None, description="First run; null = at activation.")
    end_at: datetime | None = strawberry.field(default=None, description="No run after; null = after one run.")
    frequency: Frequency = strawberry.field(default=Frequency.ONCE, description="How often it runs.")
    time_of_day: str | None = strawberry.field(
        default=None, description="Local time of recurring runs, `HH:MM` (24 h)."
    )
    days_of_week: list[Weekday] | None = strawberry.field(default=None, description="WEEKLY: which days.")
    days_of_month: list[int] | None = strawberry.field(default=None, description="MONTHLY: which days (1 to 31).")
    time_zone: str = strawberry.field(default="UTC", description="IANA time zone of `timeOfDay`.")


@strawberry.input(description="A new DRAFT campaign. Everything but the name can be completed later.")
class CampaignCreateInput:
    name: str = strawberry.field(description="Campaign name (required).")
    description: str = strawberry.field(default="", description="Free text.")
    tags: list[str] = strawberry.field(default_factory=list, description="Labels for filtering.")
    type: CampaignType = strawberry.field(default=CampaignType.SCHEDULED, description="Scheduled or API-triggered.")
    category: Category = strawberry.field(default=Category.MARKETING, description="Marketing or transactional.")
    action: CampaignActionInput | None = strawberry.field(default=None, description="Channel and preset.")
    content: CampaignContentInput | None = strawberry.field(default=None, description="The message.")
    tracking: CampaignTrackingInput | None = strawberry.field(default=None, description="Tracking options.")
    audience: CampaignAudienceInput | None = strawberry.field(default=None, description="Segment and namespace.")
    schedule: CampaignScheduleInput | None = strawberry.field(default=None, description="When it runs.")
    throttle: int | None = strawberry.field(default=None, description="Messages per second (1 to 2000).")
    trigger_context_sample: strawberry.scalars.JSON | None = strawberry.field(
        default=None,
        description='API-triggered: a sample `{"trigger": {…}, "recipient": {…}}` of the contexts callers send; '
        "the review refuses templates reading `context.trigger.*` or `context.recipient.*` keys it lacks.",
    )


@strawberry.input(
    description="Changes to a DRAFT campaign. Absent fields stay as they are; null clears a field. "
    "`version` must be the one read: a stale version is refused with ConflictError."
)
class CampaignUpdateInput:
    id: strawberry.ID = strawberry.field(description="The campaign.")
    version: int = strawberry.field(description="The `version` you read.")
    name: strawberry.Maybe[str] = strawberry.field(default=None, description="New name.")
    description: strawberry.Maybe[str] = strawberry.field(default=None, description="New description.")
    tags: strawberry.Maybe[list[str]] = strawberry.field(default=None, description="New tags (replaces).")
    type: strawberry.Maybe[CampaignType] = strawberry.field(default=None, description="New type.")
    category: strawberry.Maybe[Category] = strawberry.field(default=None, description="New category.")
    action: strawberry.Maybe[CampaignActionInput | None] = strawberry.field(default=None, description="New action.")
    content: strawberry.Maybe[CampaignContentInput | None] = strawberry.field(
        default=None, description="New content (replaces the given channels' content)."
    )
    tracking: strawberry.Maybe[CampaignTrackingInput] = strawberry.field(default=None, description="New tracking.")
    audience: strawberry.Maybe[CampaignAudienceInput | None] = strawberry.field(
        default=None, description="New audience."
    )
    schedule: strawberry.Maybe[CampaignScheduleInput | None] = strawberry.field(
        default=None, description="New schedule."
    )
    throttle: strawberry.Maybe[int | None] = strawberry.field(default=None, description="New throttle.")
    trigger_context_sample: strawberry.Maybe[strawberry.scalars.JSON | None] = strawberry.field(
        default=None, description="New trigger context sample (replaces)."
    )


@strawberry.input(description="Identifies a campaign.")
class CampaignIdInput:
    id: strawberry.ID = strawberry.field(description="The campaign.")


@strawberry.input(description="Stop a LIVE or SCHEDULED campaign. STOPPED is final.")
class CampaignStopInput:
    id: strawberry.ID = strawberry.field(description="The campaign.")
    abort_running: bool = strawberry.field(
        default=False, description="Also abort a run in progress: its unsent deliveries become CANCELLED."
    )


@strawberry.input(description="Copy any campaign into a new DRAFT.")
class CampaignDuplicateInput:
    id: strawberry.ID = strawberry.field(description="The campaign to copy.")
    name: str | None = strawberry.field(default=None, description="Name of the copy (default: `<name> (copy)`).")


@strawberry.input(description="Tags and description, editable in any status.")
class CampaignUpdateTagsInput:
    id: strawberry.ID = strawberry.field(description="The campaign.")
    tags: list[str] | None = strawberry.field(default=None, description="New tags (replaces); absent = unchanged.")
    description: str | None = strawberry.field(default=None, description="New description; absent = unchanged.")
