"""The action: a channel, and an active preset of the same channel and category."""

from __future__ import annotations

from collections.abc import Iterator

from models.campaigns.review.alerts import Alert, AlertCode, alert
from models.campaigns.review.push_platforms import check_push_platforms
from models.campaigns.review_snapshot import CampaignSnapshot
from models.campaigns.rules import Channel

PRESET_ACTIVE = "ACTIVE"


def check_action(s: CampaignSnapshot) -> Iterator[Alert]:
    if s.channel is None:
        yield alert(AlertCode.ACTION_MISSING, "action.channel", "Choose the channel of the message.")
        return
    preset = s.preset
    if preset is None:
        yield alert(AlertCode.PRESET_MISSING, "action.preset", "Choose the message preset to send with.")
        return
    if not preset.exists:
        yield alert(AlertCode.PRESET_NOT_FOUND, "action.preset", "The selected message preset no longer exists.")
        return
    if preset.status != PRESET_ACTIVE:
        yield alert(AlertCode.PRESET_NOT_ACTIVE, "action.preset", f"The message preset is {preset.status}, not ACTIVE.")
    if preset.channel != s.channel:
        yield alert(
            AlertCode.PRESET_CHANNEL_MISMATCH,
            "action.preset",
            f"The message preset is for {preset.channel}, the campaign sends {s.channel}.",
        )
    if preset.category != s.category:
        yield alert(
            AlertCode.PRESET_CATEGORY_MISMATCH,
            "action.preset",
            f"The message preset is {preset.category}, the campaign is {s.category}.",
        )
    if s.channel is Channel.PUSH and preset.channel is Channel.PUSH:
        yield from check_push_platforms(s, preset)
