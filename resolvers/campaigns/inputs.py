from __future__ import annotations

from datetime import datetime

import strawberry

from models.campaigns.experiment_rules import ExperimentFallback as ExperimentFallbackEnum
from models.campaigns.experiment_rules import ExperimentMetric as ExperimentMetricEnum
from models.campaigns.experiment_rules import ExperimentMode as ExperimentModeEnum
from resolvers.campaigns.enums import (
    CampaignType,
    Category,
    Channel,
    DeliverAt,
    ExperimentFallback,
    ExperimentMetric,
    ExperimentMode,
    Frequency,
    PassedTime,
    WaveSizing,
    Weekday,
)


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
    deliver_at: DeliverAt = strawberry.field(
        default=DeliverAt.CAMPAIGN_TIME_ZONE,
        description="PROFILE_TIME_ZONE: each recipient gets the message at the schedule's wall-clock time in their "
        "own time zone (the run starts up to 26 h early and stays open until the last zone's time).",
    )
    on_passed_time: PassedTime = strawberry.field(
        default=PassedTime.SEND_NOW,
        description="With PROFILE_TIME_ZONE: recipients whose local time had passed when the run started get it "
        "at once (SEND_NOW) or at that time the next day (NEXT_DAY).",
    )


@strawberry.input(
    description="Send each run in 2 to 10 waves; a wave starts at its time, and only once the previous one is "
    "finished. Give either `intervalMinutes` or `startTimes`."
)
class CampaignWavesInput:
    count: int = strawberry.field(description="Number of waves, 2 to 10.")
    sizing: WaveSizing = strawberry.field(default=WaveSizing.EQUAL, description="How recipients are split.")
    sizes: list[int] | None = strawberry.field(
        default=None, description="PERCENT: each wave's percent (adding up to 100); COUNT: each wave's recipients."
    )
    interval_minutes: int | None = strawberry.field(
        default=None, description="Minutes from one wave's start to the next's (at least 30)."
    )
    start_times: list[datetime] | None = strawberry.field(
        default=None, description="One start per wave, ascending, with UTC offsets."
    )


@strawberry.input(description="One treatment of an experiment: a whole message content of its own.")
class TreatmentInput:
    key: str = strawberry.field(description="Stable key (letters, digits, _ and -), unique in the experiment.")
    name: str = strawberry.field(default="", description="Name shown in results.")
    weight: int = strawberry.field(default=1, description="Relative share of the recipients (1 to 1000).")
    content: CampaignContentInput = strawberry.field(
        description="The message of this treatment, same shape as the campaign's content."
    )


@strawberry.input(
    description="A content experiment: 2 to 8 treatments (the first is the control), a holdout, a primary "
    "metric and a mode."
)
class ExperimentInput:
    treatments: list[TreatmentInput] = strawberry.field(description="2 to 8 treatments; the first is the control.")
    holdout_share: float = strawberry.field(
        default=0.0, description="Share of the audience (0 to 0.5) sent nothing, EXCLUDED with reason HOLDOUT."
    )
    metric: ExperimentMetric = strawberry.field(
        default=ExperimentMetricEnum.UNIQUE_OPENS, description="The primary metric the winner is chosen by."
    )
    mode: ExperimentMode = strawberry.field(default=ExperimentModeEnum.SPLIT, description="How it sends.")
    test_share: float | None = strawberry.field(
        default=None, description="TEST_THEN_WINNER: share of the audience in the test (above 0)."
    )
    test_duration_seconds: int | None = strawberry.field(
        default=None, description="TEST_THEN_WINNER: how long the test runs before the winner is chosen."
    )
    fallback: ExperimentFallback = strawberry.field(
        default=ExperimentFallbackEnum.CONTROL, description="TEST_THEN_WINNER: what the rest gets with no winner."
    )


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
    experiment: ExperimentInput | None = strawberry.field(
        default=None, description="A content experiment: treatments instead of one content."
    )
    waves: CampaignWavesInput | None = strawberry.field(default=None, description="Send each run in waves.")
    business_rule_set_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The business rule set (caps, quiet hours) its sends follow; null = the sandbox's default "
        "for MARKETING campaigns. TRANSACTIONAL campaigns are exempt.",
    )
    priority: int = strawberry.field(
        default=50,
        description="0 to 100: runs due at the same time start highest first, and the higher priority wins the "
        "last slot of a frequency cap.",
    )
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
    experiment: strawberry.Maybe[ExperimentInput | None] = strawberry.field(
        default=None, description="New experiment (replaces; its treatments keep their assignment); null removes it."
    )
    waves: strawberry.Maybe[CampaignWavesInput | None] = strawberry.field(
        default=None, description="New waves; null = one wave."
    )
    business_rule_set_id: strawberry.Maybe[strawberry.ID | None] = strawberry.field(
        default=None, description="New business rule set; null = the sandbox's default."
    )
    priority: strawberry.Maybe[int] = strawberry.field(default=None, description="New priority (0 to 100).")
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
