"""Push campaigns: the audience's tokens are FCM registration tokens, the preset sends to their platform, and each
of its platforms passed its dry run."""

from __future__ import annotations

from collections.abc import Iterator

from models.campaigns.review.alerts import Alert, AlertCode, alert
from models.campaigns.review_snapshot import CampaignSnapshot, PresetFacts

# Identity namespaces whose tokens belong to one platform (models/tenancy/identity.py defaults); FCM tokens
# exist for every platform the preset lists.
NAMESPACE_PLATFORM = {"APNS": "IOS"}
# Namespaces whose values are not FCM registration tokens: Herald sends push only through FCM (no direct APNs
# sender), and FCM refuses them, so every message would fail. Code → what the values are.
NOT_FCM_TOKENS = {"APNS": "APNs device tokens"}


def check_push_platforms(s: CampaignSnapshot, preset: PresetFacts) -> Iterator[Alert]:
    """The audience's tokens are FCM's; the platform they belong to is one the preset sends to; each platform the
    preset lists passed its dry run at the preset's last validation (jobs/preset_checks.push_checks)."""
    namespace = s.audience.namespace_code or ""
    if namespace in NOT_FCM_TOKENS:
        yield alert(
            AlertCode.PUSH_NAMESPACE_NOT_FCM,
            "audience.namespace",
            f"The {namespace} namespace holds {NOT_FCM_TOKENS[namespace]}; Herald sends push through FCM, which "
            "only accepts FCM registration tokens: choose a namespace of FCM tokens (FCM).",
        )
    target = NAMESPACE_PLATFORM.get(namespace)
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
