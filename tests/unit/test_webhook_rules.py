"""Webhook rules: the retry schedule spans about three days, event types from outbox topics, URL shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.webhooks.rules import (
    RETRY_DELAYS,
    disable_reason,
    event_type,
    new_secret,
    next_attempt_after,
    url_problem,
)


def test_retries_back_off_exponentially_over_about_three_days() -> None:
    assert RETRY_DELAYS[:4] == tuple(timedelta(seconds=s) for s in (30, 60, 120, 240))
    assert max(RETRY_DELAYS) == timedelta(hours=12)
    assert timedelta(days=3) <= sum(RETRY_DELAYS, timedelta()) < timedelta(days=3, hours=12)
    assert next_attempt_after(len(RETRY_DELAYS)) == RETRY_DELAYS[-1]
    assert next_attempt_after(len(RETRY_DELAYS) + 1) is None


def test_endpoints_are_disabled_by_410_or_three_days_of_failure() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    assert disable_reason(410, None, now) == "GONE"
    assert disable_reason(500, now - timedelta(days=3), now) == "FAILING_FOR_3_DAYS"
    assert disable_reason(500, now - timedelta(days=2, hours=23), now) is None
    assert disable_reason(None, None, now) is None


def test_event_types_of_outbox_events() -> None:
    assert event_type("campaign.status", {}) == "campaign.status_changed"
    assert event_type("campaign.run.progress", {"final": True}) == "run.finished"
    assert event_type("campaign.run.progress", {"final": False}) is None
    assert event_type("campaign.version.published", {"number": 2}) == "campaign.version_published"
    assert event_type("something.else", {}) is None


def test_url_shapes_and_secrets() -> None:
    assert url_problem("https://partner.example/hook") is None
    assert url_problem("ftp://partner.example/") == "must be an http(s) URL with a host"
    assert url_problem("https://user:pw@partner.example/") == "must not hold credentials"
    assert url_problem("https://partner.example:99999/") == "is not a URL"
    assert new_secret().startswith("whsec_") and new_secret() != new_secret()
