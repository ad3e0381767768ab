"""Links in the messages: in production, none to a loopback origin."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from urllib.parse import urlsplit

from models.campaigns.review.alerts import Alert, AlertCode, alert
from models.campaigns.review_snapshot import CampaignSnapshot
from models.campaigns.rules import Category, Channel


def check_links(s: CampaignSnapshot) -> Iterator[Alert]:
    """In production, tracking and unsubscribe links to a loopback origin are dead for every recipient."""
    if s.links is None or not s.links.production or not _is_loopback(s.links.public_url):
        return
    unsubscribe = s.channel is Channel.EMAIL and s.category is Category.MARKETING
    if s.tracking or unsubscribe:
        what = "tracked links" if s.tracking else "unsubscribe links"
        yield alert(
            AlertCode.LINKS_TO_LOOPBACK,
            "tracking" if s.tracking else "content.email.html",
            f"The messages would carry {what} to {s.links.public_url}, which recipients cannot reach: set "
            "PUBLIC_URL to the server's public https origin.",
        )


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
