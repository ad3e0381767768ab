"""Review to activate (DESIGN §5): one pure function over a frozen snapshot of plain values; each area's checks
live in a module of this package (alerts.py has the codes), `review` runs them in a stable order.

Three callers: the review query, the activate mutation (inside its transaction, after locking) and the
run job (before sending). `now` is always passed in. Field paths name the GraphQL input fields.

Conventions decided here:
- Opt-out link: a marketing email's HTML needs an `<a href="{{ context.unsubscribeUrl }}">` (the href
  references UNSUBSCRIBE_VARIABLE; the sender fills it per recipient).
- Sizes: EMAIL_TOO_LARGE counts the UTF-8 bytes of the HTML and text sources; PUSH_PAYLOAD_TOO_LARGE the
  compact JSON of {title, body, deepLink, data}; both before rendering.
- Time checks (START_IN_PAST, END_BEFORE_START against now) only apply to a DRAFT: once activated, the
  start has legitimately passed.
- API_TRIGGERED campaigns get their recipients from the API call: no segment, schedule or 12 h checks;
  they still need an identity namespace.
- In-app content is required too (IN_APP_CONTENT_MISSING): DESIGN §5 lists no code for it, and an
  empty in-app message should not go live.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from models.campaigns.review.action import PRESET_ACTIVE, check_action
from models.campaigns.review.alerts import WARNINGS, Alert, AlertCode, Severity, alert, blank, severity_of
from models.campaigns.review.audience import check_audience
from models.campaigns.review.business_rules import check_business_rules
from models.campaigns.review.content import EMAIL_SIZE_LIMIT, PUSH_PAYLOAD_LIMIT, UNSUBSCRIBE_VARIABLE
from models.campaigns.review.experiments import per_content, variant_key
from models.campaigns.review.links import check_links
from models.campaigns.review.plan import Plan, estimated_duration, next_run_times, plan
from models.campaigns.review.push_platforms import NAMESPACE_PLATFORM
from models.campaigns.review.schedule import THROTTLE_MAX, THROTTLE_MIN, THROTTLE_WINDOW, check_schedule, check_throttle
from models.campaigns.review.templates import template_fields
from models.campaigns.review.trigger_context import TRIGGER_CONTEXT_ROOTS
from models.campaigns.review.waves import check_waves
from models.campaigns.review_snapshot import CampaignSnapshot

# What callers import from models.campaigns.review (it was one module).
__all__ = [
    "EMAIL_SIZE_LIMIT",
    "NAMESPACE_PLATFORM",
    "PRESET_ACTIVE",
    "PUSH_PAYLOAD_LIMIT",
    "THROTTLE_MAX",
    "THROTTLE_MIN",
    "THROTTLE_WINDOW",
    "TRIGGER_CONTEXT_ROOTS",
    "UNSUBSCRIBE_VARIABLE",
    "WARNINGS",
    "Alert",
    "AlertCode",
    "Plan",
    "Severity",
    "can_activate",
    "estimated_duration",
    "next_run_times",
    "plan",
    "review",
    "severity_of",
    "template_fields",
    "variant_key",
]


def check_identity(s: CampaignSnapshot) -> Iterator[Alert]:
    if blank(s.name):
        yield alert(AlertCode.NAME_MISSING, "name", "The campaign needs a name.")


def review(snapshot: CampaignSnapshot, now: datetime) -> list[Alert]:
    """Every alert of the campaign, errors and warnings, in a stable order."""
    return [
        *check_identity(snapshot),
        *check_action(snapshot),
        *per_content(snapshot),
        *check_audience(snapshot),
        *check_schedule(snapshot, now),
        *check_throttle(snapshot),
        *check_links(snapshot),
        *check_waves(snapshot, now),
        *check_business_rules(snapshot),
    ]


def can_activate(alerts: list[Alert]) -> bool:
    return not any(alert.severity is Severity.ERROR for alert in alerts)
