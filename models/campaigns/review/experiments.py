"""Content experiments: every treatment's content is checked as the campaign's would be, its alerts named."""

from __future__ import annotations

from collections.abc import Iterator

from models.campaigns.review.alerts import Alert
from models.campaigns.review.content import check_content
from models.campaigns.review.templates import check_templates
from models.campaigns.review_snapshot import CampaignSnapshot, content_variants


def per_content(snapshot: CampaignSnapshot) -> Iterator[Alert]:
    """The content checks of each content sent: the campaign's, or every treatment's with its field path and
    key named (`experiment.treatments[1].content.email.subject`, "Treatment B: …")."""
    for prefix, variant in content_variants(snapshot):
        key = variant_key(snapshot, prefix)
        for alert in (*check_content(variant), *check_templates(variant)):
            if not prefix:
                yield alert
            else:
                yield Alert(alert.severity, alert.code, prefix + alert.field, f"Treatment {key}: {alert.message}")


def variant_key(snapshot: CampaignSnapshot, prefix: str) -> str:
    index = int(prefix.split("[", 1)[1].split("]", 1)[0]) if prefix else -1
    return snapshot.treatments[index][0] if prefix else ""
