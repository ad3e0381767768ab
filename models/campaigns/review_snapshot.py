"""The frozen snapshot of plain values that `models.review.review` judges. Pure.

Whoever builds it (the review query, the activate mutation, the run job) loads the campaign, its preset,
segment, namespace and audience estimate, and copies plain values in; nothing here touches a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from models.campaigns.rules import CampaignStatus, CampaignType, Category, Channel
from models.campaigns.schedule import Schedule
from models.campaigns.waves import Waves


@dataclass(frozen=True)
class PresetFacts:
    """The selected preset as found in the database; exists=False when the id points nowhere."""

    exists: bool
    status: str | None = None  # a preset status value; only "ACTIVE" passes
    channel: Channel | None = None
    category: Category | None = None
    # A push preset's platforms, and those its last validation's dry run passed for (None: unknown, not checked).
    platforms: tuple[str, ...] = ()
    verified_platforms: frozenset[str] | None = None


@dataclass(frozen=True)
class EmailContent:
    subject: str = ""
    preheader: str = ""
    html: str = ""
    text: str = ""


@dataclass(frozen=True)
class SmsContent:
    text: str = ""


@dataclass(frozen=True)
class PushContent:
    title: str = ""
    body: str = ""
    deep_link: str = ""
    data: tuple[tuple[str, str], ...] = ()  # custom data, key/value pairs


@dataclass(frozen=True)
class InAppButton:
    label: str = ""
    url: str = ""


@dataclass(frozen=True)
class InAppContent:
    title: str = ""
    body: str = ""
    buttons: tuple[InAppButton, ...] = ()


@dataclass(frozen=True)
class Content:
    email: EmailContent | None = None
    sms: SmsContent | None = None
    push: PushContent | None = None
    in_app: InAppContent | None = None


@dataclass(frozen=True)
class AudienceEstimate:
    qualified: int
    with_identity: int
    contactable: int
    excluded_by_reason: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class AudienceFacts:
    segment_id: str | None = None
    segment_exists: bool = False
    namespace_code: str | None = None
    namespace_exists: bool = False
    estimate: AudienceEstimate | None = None  # None: not estimated, the estimate checks are skipped
    # Dotted attribute paths present in at least one audience profile ("person.name.firstName"; arrays
    # contribute their items' paths without indexes). None: unknown, TEMPLATE_PATH_UNSEEN is skipped.
    profile_paths_seen: frozenset[str] | None = None


@dataclass(frozen=True)
class RuleEstimate:
    """What the campaign's business rules would do to its contactable audience if it sent now (from a sample of
    it, scaled): sends capped, skipped by quiet hours, and delayed by them."""

    rule_set_name: str
    capped: int = 0
    quiet_skipped: int = 0
    delayed: int = 0


@dataclass(frozen=True)
class LinkFacts:
    """Where links in messages (tracking, unsubscribe) point: the server's PUBLIC_URL, and whether it runs in
    production, where recipients cannot reach a loopback origin."""

    public_url: str
    production: bool


@dataclass(frozen=True)
class CampaignSnapshot:
    name: str = ""
    status: CampaignStatus = CampaignStatus.DRAFT
    version: int = 0
    type: CampaignType = CampaignType.SCHEDULED
    category: Category = Category.MARKETING
    channel: Channel | None = None
    preset: PresetFacts | None = None  # None: no preset selected
    content: Content = field(default_factory=Content)
    audience: AudienceFacts = field(default_factory=AudienceFacts)
    schedule: Schedule = field(default_factory=Schedule)
    throttle: int | None = None  # messages per second; None = as fast as the channel goes
    waves: Waves | None = None  # None: a run is sent at once
    activated_at: datetime | None = None
    tracking: bool = False  # opens or clicks tracked: messages carry links to PUBLIC_URL
    links: LinkFacts | None = None  # None: unknown, LINKS_TO_LOOPBACK is skipped
    # API-triggered: {"trigger": {...}, "recipient": {...}}, what templates may read under context.
    trigger_context_sample: dict[str, Any] | None = None
    business_rules: RuleEstimate | None = None  # None: no rule set applies (or no estimate)
    # A content experiment's treatments, (key, content) in order: each is checked instead of `content`.
    treatments: tuple[tuple[str, Content], ...] = ()
    # The stored experiment (models/campaigns/experiment_rules.py reads it for the plan's arm sizes).
    experiment: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)


def content_variants(s: CampaignSnapshot) -> list[tuple[str, CampaignSnapshot]]:
    """(field prefix, snapshot with that content) of every content the campaign sends: its own, or each
    treatment's (`experiment.treatments[i].`)."""
    if not s.treatments:
        return [("", s)]
    return [(f"experiment.treatments[{i}].", replace(s, content=c)) for i, (_key, c) in enumerate(s.treatments)]
