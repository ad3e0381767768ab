"""Versions of activated campaigns (issue 20): which edits make a draft version, and the diff of two versions.
Pure: imports neither Tortoise nor Strawberry.

A campaign version (`CampaignVersion.number`: 1, 2, 3 …) is a numbered copy of the campaign's
message-defining fields. It is not the campaign's `version` column, which counts every edit for optimistic
concurrency (send it back with an update) and keeps doing so.

Decided here:
- Versioned fields: the message and how it goes out, nothing else: `content` (every channel part: subject,
  preheader, HTML, text, push, in-app), `tracking`, the preset (`action.presetId`, same channel) and the
  `throttle`. A published version changes what the next run sends, never who gets it or when.
- Refused while activated, as before: name, type, category, channel, audience (segment, namespace) and
  schedule. They decide who receives the campaign and when; the dispatcher, the calendar, the legal basis of
  the send (category: consent and suppression) and the campaign's end read them from the campaign itself.
  Changing them makes another campaign: duplicate it and stop this one. Tags and description stay editable in
  any status, outside versions.
- Versions apply to campaigns whose message goes out again after activation: recurring SCHEDULED campaigns and
  API_TRIGGERED ones, while SCHEDULED or LIVE. A one-shot campaign's message went out (or is going out) once:
  edits stay refused there; duplicate it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from models.campaigns.rules import ALWAYS_EDITABLE_FIELDS, CampaignStatus, CampaignType

# Campaign columns a version holds.
VERSIONED_FIELDS: tuple[str, ...] = ("content", "tracking", "preset_id", "throttle_per_second")
# Statuses in which an edit of a versioned field makes (or changes) the draft version.
VERSIONED_STATUSES = frozenset({CampaignStatus.SCHEDULED, CampaignStatus.LIVE})
# How the diff names the columns: as the GraphQL input does.
FIELD_NAMES = {
    "content": "content",
    "tracking": "tracking",
    "preset_id": "action.presetId",
    "throttle_per_second": "throttle",
}


class VersionState(StrEnum):
    DRAFT = "DRAFT"  # edited, not yet published: at most one open (DRAFT, IN_REVIEW, APPROVED) per campaign
    IN_REVIEW = "IN_REVIEW"  # approval requested (an approval policy matched): read-only
    APPROVED = "APPROVED"  # every matched policy approved: read-only, ready to publish
    PUBLISHED = "PUBLISHED"  # the version the next run uses: exactly one per activated campaign
    SUPERSEDED = "SUPERSEDED"  # was published, replaced by a later one
    DISCARDED = "DISCARDED"  # a draft discarded (or replaced by a rollback) before it was published


# The states of the one version not yet published; only a DRAFT takes edits.
OPEN_STATES = frozenset({VersionState.DRAFT, VersionState.IN_REVIEW, VersionState.APPROVED})


def versions_apply(status: CampaignStatus, campaign_type: CampaignType, recurring: bool) -> bool:
    """Whether an edit of this campaign goes into a draft version (rather than the campaign, or refused)."""
    if CampaignStatus(status) not in VERSIONED_STATUSES:
        return False
    return CampaignType(campaign_type) is CampaignType.API_TRIGGERED or recurring


def refused_while_versioned(fields: Iterable[str]) -> list[str]:
    """The edited columns neither a version nor the always-editable fields hold: they refuse the edit."""
    allowed = set(VERSIONED_FIELDS) | ALWAYS_EDITABLE_FIELDS
    return sorted(field for field in fields if field not in allowed)


@dataclass(frozen=True)
class FieldChange:
    field: str  # dotted path as the GraphQL input names it: "content.email.subject", "action.presetId"
    before: Any
    after: Any


def _leaves(value: Any, path: str) -> dict[str, Any]:
    """Dotted path → value of every leaf; objects are walked, lists are leaves (buttons compare whole)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in value:
            out.update(_leaves(value[key], f"{path}.{key}"))
        return out
    return {path: value}


def flatten(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in VERSIONED_FIELDS:
        value = values.get(column)
        if isinstance(value, Mapping) and not value:
            continue  # an empty object holds nothing: the same as absent
        out.update(_leaves(value, FIELD_NAMES[column]))
    return out


def diff_versions(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    """Fields whose value differs between two versions' values, by path; absent reads as null (a part not
    set and a part set to null are the same message)."""
    old, new = flatten(before), flatten(after)
    changes = []
    for path in sorted(set(old) | set(new)):
        if old.get(path) != new.get(path):
            changes.append(FieldChange(path, old.get(path), new.get(path)))
    return changes
