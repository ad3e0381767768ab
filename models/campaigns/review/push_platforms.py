"""Push campaigns: the preset sends to the platform of the audience's tokens, and each of its platforms passed
its dry run."""

from __future__ import annotations

from collections.abc import Iterator

from models.campaigns.review.alerts import Alert, AlertCode, alert
from models.campaigns.review_snapshot import CampaignSnapshot, PresetFacts

# Identity namespaces whose tokens belong to one platform (models/tenancy/identity.py defaults); FCM tokens
# exist for every platform the preset lists.
NAMESPACE_PLATFORM = {"APNS": "IOS"}


def check_push_platforms(s: CampaignSnapshot, preset: PresetFacts) -> Iterator[Alert]:
    """The platform the audience's tokens belong to is one the preset sends to; each platform the preset lists
    passed its dry run at the preset's last validation (jobs/preset_checks.push_checks)."""
    target = NAMESPACE_PLATFORM.get(s.audience.namespace_code or "")
    if target is not None and target not in preset.platforms:
        yield alert(
            AlertCode.PUSH_PLATFORM_NOT_IN_PRESET,
            "audience.namespace",
            f"The {s.audience.namespace_code} tokens are {target} devices; the message preset's platforms are "
            f"{', '.join(preset.platforms) or 'none'}.",
        )
    if preset.verified_platforms is None:
        return
    for platform in preset.platforms:
        if platform not in preset.verified_platforms:
            yield alert(
                AlertCode.PUSH_PLATFORM_UNVERIFIED,
                "action.preset",
                f"The message preset lists {platform}, but its last validation did not try a {platform} message: "
                "run messagePresetValidate.",
            )
