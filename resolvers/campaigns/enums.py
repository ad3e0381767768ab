from enum import Enum, IntEnum

import strawberry

from models.campaigns.campaign import RunStatus as RunStatusEnum
from models.campaigns.experiment_rules import FALLBACK_DESCRIPTIONS, METRIC_DESCRIPTIONS, MODE_DESCRIPTIONS
from models.campaigns.experiment_rules import Arm as ArmEnum
from models.campaigns.experiment_rules import ExperimentFallback as ExperimentFallbackEnum
from models.campaigns.experiment_rules import ExperimentMetric as ExperimentMetricEnum
from models.campaigns.experiment_rules import ExperimentMode as ExperimentModeEnum
from models.campaigns.review import AlertCode as AlertCodeEnum
from models.campaigns.review import Severity as SeverityEnum
from models.campaigns.rules import CampaignAction as CampaignActionEnum
from models.campaigns.rules import CampaignStatus as CampaignStatusEnum
from models.campaigns.rules import CampaignType as CampaignTypeEnum
from models.campaigns.rules import Frequency as FrequencyEnum
from models.campaigns.run_rules import RunOutcomeReason as RunOutcomeReasonEnum
from models.campaigns.run_rules import RunPauseReason as RunPauseReasonEnum
from models.campaigns.schedule import DeliverAt as DeliverAtEnum
from models.campaigns.schedule import PassedTime as PassedTimeEnum
from models.campaigns.waves import WaveSizing as WaveSizingEnum
from resolvers.vocabulary import Category, Channel, described_enum  # noqa: F401 - re-exported for the campaign types

CampaignStatus = described_enum(
    CampaignStatusEnum,
    description="Lifecycle of a campaign: DRAFT → LIVE or SCHEDULED → STOPPED, COMPLETED or FAILED → ARCHIVED.",
)
CampaignType = described_enum(CampaignTypeEnum, description="How a campaign is triggered.")
Frequency = described_enum(FrequencyEnum, description="How often a campaign runs.")
DeliverAt = described_enum(
    DeliverAtEnum,
    description="Whose clock a campaign's schedule is read on: the campaign's time zone, or each recipient's "
    "(the profile's `timeZone`, the campaign's when it has none).",
    values={
        DeliverAtEnum.CAMPAIGN_TIME_ZONE: "Everyone at the fire time, read in the schedule's `timeZone`.",
        DeliverAtEnum.PROFILE_TIME_ZONE: "Each recipient at the schedule's wall-clock time in their own time zone.",
    },
)
PassedTime = described_enum(
    PassedTimeEnum,
    description="With PROFILE_TIME_ZONE: what happens to recipients whose local time had already passed when the "
    "run started (e.g. activated at 10:00 in New York, 09:00 has passed in Paris).",
    values={
        PassedTimeEnum.SEND_NOW: "Send to them at once.",
        PassedTimeEnum.NEXT_DAY: "Send to them at that wall-clock time on the next day, in their time zone.",
    },
)
WaveSizing = described_enum(
    WaveSizingEnum,
    description="How a run's recipients are split into waves (in profile order).",
    values={
        WaveSizingEnum.EQUAL: "Waves as equal as can be (the first waves take the remainder).",
        WaveSizingEnum.PERCENT: "`sizes` gives each wave's share in whole percent, adding up to 100.",
        WaveSizingEnum.COUNT: "`sizes` gives each wave's number of recipients; the last also takes the rest.",
    },
)
CampaignAction = described_enum(CampaignActionEnum, description="What may be done to a campaign.")
AlertSeverity = described_enum(SeverityEnum, description="ERROR blocks activation; WARNING does not.")
AlertCode = described_enum(AlertCodeEnum, description="Stable code of a review alert (see DESIGN §5).")
RunStatus = described_enum(RunStatusEnum, description="Status of one execution of a campaign.")


@strawberry.enum(description="Why a run ended as it did, when its counters alone would mislead.")
class RunOutcomeReason(Enum):
    AUDIENCE_EMPTY = strawberry.enum_value(
        RunOutcomeReasonEnum.AUDIENCE_EMPTY.value,
        description="The audience snapshot found nobody in the segment: the run succeeded with nothing to send.",
    )


@strawberry.enum(description="Why a run is PAUSED: the provider refused the preset, not the recipients.")
class RunPauseReason(Enum):
    CREDENTIALS_REFUSED = strawberry.enum_value(
        RunPauseReasonEnum.CREDENTIALS_REFUSED.value,
        description="The provider refused the preset's credentials (SMTP login, Twilio 401, FCM access token).",
    )
    PROVIDER_CONFIGURATION = strawberry.enum_value(
        RunPauseReasonEnum.PROVIDER_CONFIGURATION.value,
        description="The provider refused the connection setup (STARTTLS required, untrusted certificate).",
    )
    SENDER_REFUSED = strawberry.enum_value(
        RunPauseReasonEnum.SENDER_REFUSED.value,
        description="Most sends of a batch were refused for the sender (SMTP 5.7.x policy, relaying, DMARC).",
    )


@described_enum(description="Day of the week (ISO numbering: MONDAY = 1).")
class Weekday(IntEnum):
    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7


ExperimentMetric = described_enum(
    ExperimentMetricEnum,
    description="What an experiment compares between treatments (a rate per recipient).",
    values=METRIC_DESCRIPTIONS,
)
ExperimentMode = described_enum(ExperimentModeEnum, description="How an experiment sends.", values=MODE_DESCRIPTIONS)
ExperimentFallback = described_enum(
    ExperimentFallbackEnum,
    description="What a test-then-winner experiment sends to the rest when no treatment wins.",
    values=FALLBACK_DESCRIPTIONS,
)
ExperimentArm = described_enum(
    ArmEnum,
    name="ExperimentArm",
    description="Where a content experiment puts a profile.",
    values={
        ArmEnum.HOLDOUT: "Sent nothing: EXCLUDED with reason HOLDOUT.",
        ArmEnum.TEST: "Sent its treatment (every recipient outside the holdout in SPLIT mode).",
        ArmEnum.REST: "TEST_THEN_WINNER: waits for the winner, sent in the campaign's next run.",
    },
)
